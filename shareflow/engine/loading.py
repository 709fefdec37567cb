"""Turning a claimed job into a runnable engine, at any instant after a crash.

TaskFlow's conductor builds the engine with ``engines.load_from_detail(...,
store=...)``, whose first injection of the store is two transactions: the flow
detail is saved with a new store atom detail whose ``results`` are still NULL,
then that atom detail is saved again with the values. A conductor killed
between the two leaves a flow detail that no conductor can load again
(``Storage.__init__`` reads ``results.keys()`` of it: ``AttributeError:
'NoneType' object has no attribute 'keys'``), and the job was trashed.

Here a fresh job's store is one complete atom detail (:func:`new_store`),
inserted by the engine's first write - the transaction that records its
first step RUNNING, with the other atom details (``shareflow.engine.storage``)
- so a conductor that dies before it leaves the flow as posted, and the next
one adds the store from the job again (the job always carries it). A resumed
job's store is written by :func:`save_store` before the engine is built, in
one transaction, if it needs writing at all: a store atom detail left
half-written by that older path is completed from the job's own store. The
engine is loaded without a store, so TaskFlow never writes it in parts. What
the engine changes before its first atom (flow RESUMING, all atom details,
flow SUSPENDED, RUNNING) is written in one transaction with that atom's
RUNNING, which leaves a state TaskFlow resumes from.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict

import sqlalchemy.exc as sa_exc
from kazoo.exceptions import KazooException
from oslo_utils import uuidutils
from taskflow import engines
from taskflow import exceptions as tf_exc
from taskflow import states as tf_states
from taskflow.engines.action_engine import compiler as tf_compiler
from taskflow.persistence import models as tf_models
from taskflow.storage import Storage

from shareflow.exceptions import ServiceUnavailable

#: The atom detail in which TaskFlow keeps a flow's persistent store.
STORE_ATOM = Storage.injector_name

#: Errors that say "not now" rather than "never": the database or ZooKeeper
#: was unreachable. A job that meets one while loading goes back to the board.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    tf_exc.StorageFailure,
    tf_exc.JobFailure,
    KazooException,
    sa_exc.OperationalError,
    ServiceUnavailable,  # our DatabaseError and CoordinationError
)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT_ERRORS)


def job_store(job, flow_detail) -> dict:
    """The values a job's flow starts with, as TaskFlow's conductor merges
    them: the flow detail's ``store`` meta, then the job's details."""
    store: dict = {}
    store.update((flow_detail.meta or {}).get("store") or {})
    store.update((job.details or {}).get("store") or {})
    return store


def store_atom(flow_detail) -> tf_models.AtomDetail | None:
    return next((ad for ad in flow_detail if ad.name == STORE_ATOM), None)


def new_store(flow_detail, store: dict) -> tf_models.AtomDetail | None:
    """A fresh job's store (its flow has no store atom detail yet) as the
    complete atom detail TaskFlow's storage expects (state SUCCESS, results
    a dict), added to ``flow_detail`` in memory only, for the engine's first
    write to insert (``DeferringStorage.insert_with_first_write``). None for
    a flow that has one: :func:`save_store` completes it if need be."""
    if store_atom(flow_detail) is not None:
        return None
    ad = tf_models.TaskDetail(STORE_ATOM, uuidutils.generate_uuid())
    ad.results = dict(store)
    ad.state = tf_states.SUCCESS
    flow_detail.add(ad)
    return ad


def save_store(persistence, flow_detail, store: dict, *, fence=None) -> bool:
    """Persist ``store`` into ``flow_detail`` in one transaction, as the
    complete atom detail TaskFlow's storage expects (state SUCCESS, results
    a dict); complete a half-written one. Returns whether it wrote anything
    (a resumed job whose store is intact needs no write). ``fence``: the
    job record the write is fenced on, as the engine's
    (``shareflow.engine.persistence.JobFence``; ``FlowTakenOver`` if it is
    no longer the fence's)."""
    ad = store_atom(flow_detail)
    new = ad is None
    if new:
        ad = tf_models.TaskDetail(STORE_ATOM, uuidutils.generate_uuid())
        flow_detail.add(ad)
    elif (isinstance(ad.results, dict) and ad.state == tf_states.SUCCESS
          and all(k in ad.results and ad.results[k] == v for k, v in store.items())):
        return False
    results = ad.results if isinstance(ad.results, dict) else {}
    ad.results = {**results, **store}
    ad.state = tf_states.SUCCESS
    with contextlib.closing(persistence.get_connection()) as conn:
        if hasattr(conn, "update_flow_detail_and"):
            # Only this atom detail's row, without reading the flow's first
            # (shareflow.engine.persistence).
            if new:
                conn.update_flow_detail_and(flow_detail, [], new_atoms=[ad], fence=fence)
            else:
                conn.update_atom_details_many([ad], fence=fence)
        else:
            # New atom details are inserted in the flow detail's own transaction.
            conn.update_flow_details(flow_detail)
    return True


class BuiltFlows:
    """A conductor's flows, each built once per factory call and reused by
    its later jobs of the same kind.

    Every job rebuilds its flow from the factory its flow detail names (with
    the arguments saved there), and TaskFlow compiles it into a graph: per
    job, seven or eight task objects (each inspecting its ``execute`` and
    ``revert`` signatures) and a few networkx graphs merged and frozen - the
    same every time for the same factory call. What a job's engine needs of
    its own (storage, runtime, notifiers, executor) is built per engine
    anyway; a flow and its compilation carry nothing of a job: the tasks keep
    only what their constructor was given (``shareflow.tasks``), and the
    compiled graph is frozen by TaskFlow. So a flow is kept per factory call
    and lent to one engine at a time.

    A flow is lent to one job at a time (:meth:`lend`; a second job asking
    for a flow that is out gets a new one, not kept), and comes back as the
    factory made it: what a conductor set on a task for a job
    (``pre_execute``, the cancel check) is removed when it is lent again.
    Nothing of this is persisted: a resumed job is rebuilt here from its
    flow detail exactly as from a fresh factory call.
    """

    #: Per-instance overrides a conductor sets on a job's tasks.
    PER_JOB = ("pre_execute", "post_execute")

    def __init__(self, size: int = 32):
        self._size = size
        self._idle: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()
        #: How many flows were built (for tests and benchmarks).
        self.built = 0

    @staticmethod
    def _key(flow_detail) -> str | None:
        factory = (flow_detail.meta or {}).get("factory")
        if not isinstance(factory, dict):
            return None
        try:
            return json.dumps(factory, sort_keys=True)
        except (TypeError, ValueError):
            return None

    @contextlib.contextmanager
    def lend(self, flow_detail):
        """``(flow, compiler)`` for ``flow_detail``'s factory call, held for
        the block: the compiler's compilation is the flow's, compiled once.
        A factory that fails raises as ``engines.flow_from_detail`` does."""
        key = self._key(flow_detail)
        entry = None
        if key is not None:
            with self._lock:
                entry = self._idle.pop(key, None)
        if entry is None:
            flow = engines.flow_from_detail(flow_detail)
            entry = (flow, tf_compiler.PatternCompiler(flow))
            self.built += 1
        else:
            self._reset(entry[1])
        yield entry
        if key is not None:
            with self._lock:
                self._idle[key] = entry
                self._idle.move_to_end(key)
                while len(self._idle) > self._size:
                    self._idle.popitem(last=False)

    def _reset(self, compiler) -> None:
        for node, data in compiler.compile().execution_graph.nodes(data=True):
            if data["kind"] in tf_compiler.ATOMS:
                for name in self.PER_JOB:
                    node.__dict__.pop(name, None)
