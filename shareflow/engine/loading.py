"""Turning a claimed job into a runnable engine, at any instant after a crash.

TaskFlow's conductor builds the engine with ``engines.load_from_detail(...,
store=...)``, whose first injection of the store is two transactions: the flow
detail is saved with a new store atom detail whose ``results`` are still NULL,
then that atom detail is saved again with the values. A conductor killed
between the two leaves a flow detail that no conductor can load again
(``Storage.__init__`` reads ``results.keys()`` of it: ``AttributeError:
'NoneType' object has no attribute 'keys'``), and the job was trashed.

Here the store is written by :func:`save_store` before the engine is built,
as one complete atom detail in one transaction, and a store atom detail left
half-written by that older path is completed from the job's own store (which
the job always carries). The engine is then loaded without a store, so
TaskFlow never writes it in parts. What the engine changes after that and
before its first atom (flow RESUMING, all atom details, flow SUSPENDED,
RUNNING) is written in one transaction with that atom's RUNNING
(``shareflow.engine.storage``), which leaves a state TaskFlow resumes from.
"""

from __future__ import annotations

import contextlib

import sqlalchemy.exc as sa_exc
from kazoo.exceptions import KazooException
from oslo_utils import uuidutils
from taskflow import exceptions as tf_exc
from taskflow import states as tf_states
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


def save_store(persistence, flow_detail, store: dict) -> bool:
    """Persist ``store`` into ``flow_detail`` in one transaction, as the
    complete atom detail TaskFlow's storage expects (state SUCCESS, results
    a dict); complete a half-written one. Returns whether it wrote anything
    (a resumed job whose store is intact needs no write)."""
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
                conn.update_flow_detail_and(flow_detail, [], new_atoms=[ad])
            else:
                conn.update_atom_details_many([ad])
        else:
            # New atom details are inserted in the flow detail's own transaction.
            conn.update_flow_details(flow_detail)
    return True
