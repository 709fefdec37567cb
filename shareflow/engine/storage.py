"""What a job's engine writes between its steps, and when.

TaskFlow's storage writes every change of an atom in a transaction of its
own, at once: per step RUNNING, progress 0.0, SUCCESS with the result,
progress 1.0 and (at the end) the step's duration - about 40 write
transactions per create_share job, ~1 ms each on PostgreSQL, on the critical
path; and before the first step, the flow's RESUMING, its atom details,
SUSPENDED and RUNNING, one transaction each. Resuming a job needs far less,
and :class:`DeferringStorage` writes only that:

* **No engine-made progress.** The engine's automatic progress marks (0.0
  when a step starts, 1.0 when it ends) are not persisted, nor kept: nothing
  reads them back (no shareflow task reports progress, and resumption
  decides on states, intentions and results). Progress a task reports itself
  (with details) is still written.
* **A step's SUCCESS is written with the next write.** A step that succeeded
  is recorded in the same transaction as whatever the engine writes next:
  the next step's RUNNING (always written before that step starts), a
  failure, a revert, or the flow's own state. So no step's side effects ever
  begin before every step before it is recorded SUCCESS, and a conductor
  that dies in between leaves the finished step RUNNING: the next conductor
  runs it again, exactly as when a conductor dies just before TaskFlow's own
  write - steps are idempotent (DESIGN.md). Every step recorded SUCCESS
  still did complete, so a resumed job skips exactly the steps recorded
  done.

* **An engine's start is written with its first step.** Before its first
  write, an engine passes through flow states that nothing acts on: a
  resumed flow goes RESUMING, has its atom details ensured, goes SUSPENDED
  (``prepare``), then RUNNING; a fresh one has its atom details created,
  then goes RUNNING. TaskFlow writes each in a transaction of its own; here
  they wait and are written with the next write - the first step's RUNNING,
  before that step starts (or whatever the engine writes first: a failure,
  a revert, the flow's end). A conductor that dies before that write leaves
  the rows exactly as it found them, so the next one loads the same flow
  (a fresh one, or the same resumed one) and decides the same; an engine
  suspended before it (claim lost, conductor stopping) writes none of it.
  A step found RUNNING is not written again, so a resumed flow whose first
  step to run was RUNNING writes its start with the step after.

* **A step that changes nothing, or nothing a revert must undo, starts
  unrecorded.** A step's RUNNING is written before it runs so that, should
  the flow revert after its conductor died, the next conductor reverts what
  the step may have done. A step whose task says ``unrecorded_start``
  (:func:`unrecorded_start`: it only reads, or its side effect needs no
  revert and is done once however often it runs) has nothing to undo, so
  its RUNNING waits like a SUCCESS and goes with the next write, together
  with its SUCCESS: one write transaction less per such step. A conductor
  that dies meanwhile leaves it (and the step before it, whose SUCCESS
  waited too) as last written, and the next conductor runs them again, as
  after a death just before TaskFlow's own write. Every step recorded
  SUCCESS still did complete, and no step with something to revert starts
  before every step before it is recorded SUCCESS (its own RUNNING carries
  them).

* **A step's start carries a read.** :attr:`DeferringStorage.on_step_start`,
  when set, runs inside the transaction that records a step RUNNING, given
  the job's state as that write's fence read it (see below: the conductor
  learns there whether an operator cancelled the job, with no read of its
  own); :attr:`~DeferringStorage.on_flow_success` inside the one that
  records the flow's SUCCESS (the conductor records the job succeeded
  there, instead of in one of its own right after; and a job the flow
  handed to another conductor of its worker is recorded running there,
  ``shareflow.engine.conductor``), and
  :attr:`~DeferringStorage.after_flow_success` once that has committed.

Everything else (states other than SUCCESS, flow states after the start,
intentions, failures, revert results) is written as TaskFlow writes it,
together with what waits. The writes themselves are blind
(``shareflow.engine.persistence.BatchConnection``).

* **A write the database fails stops the engine's writes.** TaskFlow's
  storage tries a write again on ``StorageFailure`` (the database
  unreachable; ``RETRY_ATTEMPTS`` tries, ``[conductor] write_retry_wait``
  apart). Should
  every try fail, nothing of the write was written - what waited with it
  still waits, in memory only - and its step does not start (TaskFlow
  schedules a step after its RUNNING is saved). TaskFlow's engine then
  fails and writes the flow's FAILURE, which a database back by then would
  take: the job recorded failed and its resource failed, for an outage.
  Instead the storage is :attr:`DeferringStorage.unwritable` from that
  write on (:class:`~shareflow.exceptions.FlowUnwritable` is raised, from
  the failure): every later write of the engine (its FAILURE, durations)
  is dropped, as after a take-over (below), nothing of the job or its
  resource is recorded, and the conductor sends the job back to the board
  (``shareflow.engine.conductor``). The rows stay as the last write that
  passed left them - as if the conductor had died at the failed write - and
  the next claim, here or elsewhere, resumes the flow from them: the step
  whose start failed runs once, a step whose SUCCESS waited runs again.
  A step's start (RUNNING, REVERTING) is never dropped: it raises, so that
  no step runs unrecorded after a stop. A write failing once the flow's
  end is written (a duration) stops nothing: the job's outcome is recorded.

The engine's storage is the only writer of its flow's atoms while it holds
the job's claim (a conductor that lost it is suspended at the next atom
boundary, whose write is what TaskFlow would have written then too) - and
the database refuses the writes of an engine whose conductor lost it
without knowing yet (its ZooKeeper session expired while it was cut off),
once the conductor that took the job over recorded itself:

* **Every write is fenced on the job's record.** The conductor passes the
  engine a :class:`~shareflow.engine.persistence.JobFence` - the job, the
  conductor's name and the board job it claimed, as it recorded them in
  the job's record right after its claim, before loading the flow
  (``shareflow.db.jobs.set_running``). Every write of this storage checks,
  in its own transaction and holding the job's row, that the record still
  says so: on SQLite a read in the write transaction, which holds the
  database's write lock from its ``BEGIN IMMEDIATE``; on PostgreSQL a read
  ``FOR SHARE`` - in the one statement of a step's write, no round trip of
  its own; first in the transaction of the others. A conductor taking the
  job over records itself by updating that row, so either its record
  commits first and this engine's write
  is refused, or the write commits first (the other conductor's
  ``set_running`` waits for it) and the other conductor loads the flow
  with it. The late write of a resumed flow - an UPDATE of rows the other
  engine loaded, which no index refuses - is refused so too.

* **A flow recorded by another engine is left to it.** The database also
  holds one atom detail per flow and name
  (``shareflow.db.models.ATOMDETAILS_UNIQUE_NAME``), so of two first writes
  of a fresh flow (each inserting its atom details) the later fails too,
  fenced or not. Either way the write fails whole
  (:class:`~shareflow.exceptions.FlowTakenOver`, not retried): nothing of
  it is written, its step does not start (TaskFlow schedules a step after
  its RUNNING is saved), and this storage writes nothing more -
  :attr:`DeferringStorage.taken_over` is set, every later write (the
  flow's FAILURE, durations) is dropped, and the conductor stops the job
  without recording anything of it (``shareflow.engine.conductor``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

import tenacity
from taskflow import exceptions as tf_exc
from taskflow import states as tf_states
from taskflow import storage as tf_storage
from taskflow.engines.action_engine.engine import SerialActionEngine
from taskflow.utils import misc

from shareflow.engine.persistence import JobFence
from shareflow.exceptions import FlowTakenOver, FlowUnwritable

LOG = logging.getLogger(__name__)


class OneLock:
    """The storage's lock, as TaskFlow uses it (``read_lock()`` and
    ``write_lock()`` context managers, re-entered by nested calls).

    TaskFlow's storage takes fasteners' reader-writer lock around every
    read of it - some 260 times per create_share job, the engine's scheduling
    asking each atom's state and intention again at each step - and that
    lock is pure-Python bookkeeping (a condition, thread-ownership
    dictionaries, a generator context manager) costing more than the reads.
    A job's engine is serial: its steps, listeners and scheduling run in one
    thread, so readers never wait on each other anyway. This is one
    re-entrant lock for both: still safe if another thread does read (it
    then waits instead of sharing), a C-level acquire per call."""

    def __init__(self):
        self._lock = threading.RLock()

    def read_lock(self):
        return self._lock

    def write_lock(self):
        return self._lock


#: The task attribute (a bool, per task instance) saying that the step's
#: start need not be written before it runs: see the module docstring.
UNRECORDED_START = "unrecorded_start"


def unrecorded_start(atom) -> bool:
    """Whether ``atom`` (a task) says its start need not be recorded: it
    reads only, or its side effect needs no revert and happens once however
    often the step runs (see the module docstring)."""
    return getattr(atom, UNRECORDED_START, False) is True


def _retry_wait(retry_state: tenacity.RetryCallState) -> float:
    """The wait before a failed write's next try: its storage's (the
    decorated method's ``self``)."""
    return retry_state.args[0].retry_wait


class DeferringStorage(tf_storage.Storage):
    #: Flow states an engine passes through before its first step (prepare:
    #: RESUMING, the atoms ensured, SUSPENDED; then RUNNING), or on its way
    #: out if it stops before it (SUSPENDING, SUSPENDED: its claim was lost,
    #: its conductor stops): written with the next write, if any.
    STARTING = frozenset((tf_states.RESUMING, tf_states.SUSPENDED, tf_states.RUNNING, tf_states.SUSPENDING))
    #: A flow's ends: once one is written, the job's outcome is.
    ENDS = frozenset((tf_states.SUCCESS, tf_states.REVERTED, tf_states.FAILURE))

    def __init__(self, flow_detail, backend=None, scope_fetcher=None, *, fence: JobFence | None = None,
                 retry_wait: float = tf_storage.RETRY_WAIT_TIMEOUT):
        super().__init__(flow_detail, backend=backend, scope_fetcher=scope_fetcher)
        #: Seconds between the tries of a write the database failed
        #: (``[conductor] write_retry_wait``).
        self.retry_wait = retry_wait
        #: The job record every write checks, with the write, is still its
        #: conductor's (module docstring); None: writes unfenced (a flow
        #: without a job record). Only shareflow's persistence fences
        #: (``BatchConnection``): over another backend, TaskFlow's own
        #: writes are made, unfenced.
        self.fence = fence
        self._lock = OneLock()
        #: atom uuid -> atom detail (in memory, current) whose write waits.
        self._waiting: dict = {}
        #: atom uuid -> atom detail new to the flow (ensured), not yet inserted.
        self._unsaved: dict = {}
        #: Whether the flow's own row has a change that waits.
        self._flow_waits = False
        #: Whether this storage has written anything (the starting flow
        #: states wait only before its first write).
        self._written = False
        #: ``(job_state, atom_name)``, called in the transaction that
        #: records a step RUNNING (not for a step resumed already RUNNING,
        #: which is not written again), with the job's state as the fence
        #: read it there (None without a fence).
        self.on_step_start: Callable[[str | None, str], None] | None = None
        #: ``(connection)``, called in the transaction that records the flow
        #: SUCCESS (the job's own record, written with it).
        self.on_flow_success: Callable[[Any], None] | None = None
        #: ``()``, called once that transaction has committed.
        self.after_flow_success: Callable[[], None] | None = None
        #: Names of the steps whose RUNNING waits for the next write
        #: (:func:`unrecorded_start`; set by :meth:`ShareflowEngine.compile`).
        self.unrecorded_starts: frozenset[str] = frozenset()
        #: ``()``, called before the first write begins, outside any
        #: transaction (a test checkpoint, ``shareflow.engine.checkpoints``).
        self.before_first_write: Callable[[], None] | None = None
        #: Set when a write found the flow's atom details recorded by
        #: another engine, or the job's record another conductor's: from
        #: then on nothing is written (module docstring).
        self.taken_over: FlowTakenOver | None = None
        #: Set when the database failed a write even after its retries (an
        #: outage): from then on nothing is written either (module docstring).
        self.unwritable: FlowUnwritable | None = None
        #: Whether the flow's end (SUCCESS, REVERTED, FAILURE) is written:
        #: a write failing after it (durations) stops nothing.
        self._ended = False

    def insert_with_first_write(self, atom_detail) -> None:
        """An atom detail the flow detail holds in memory only (a fresh job's
        store, ``shareflow.engine.loading.new_store``): inserted by this
        storage's first write, with the atom details ``prepare`` ensures -
        and never if the engine stops before that write, which leaves the
        flow as posted (the next conductor adds the store from the job
        again)."""
        with self._lock.write_lock():
            if self._written:
                raise RuntimeError("the flow's first write is done already")
            self._unsaved[atom_detail.uuid] = atom_detail

    def set_task_progress(self, task_name, progress, details=None):
        if details is None:
            # The engine's own 0.0 / 1.0 around a step: see the module docstring.
            return
        super().set_task_progress(task_name, progress, details=details)

    def _can_wait(self, clone) -> bool:
        if clone.intention != tf_states.EXECUTE:
            return False
        return clone.state == tf_states.SUCCESS or (
            clone.state == tf_states.RUNNING and clone.name in self.unrecorded_starts)

    @property
    def written(self) -> bool:
        """Whether this storage has written anything yet."""
        return self._written

    @property
    def pending(self) -> bool:
        """Whether anything waits to be written."""
        return bool(self._waiting or self._unsaved or self._flow_waits)

    @property
    def stopped(self) -> FlowTakenOver | FlowUnwritable | None:
        """Why this storage writes nothing more (:attr:`taken_over`,
        :attr:`unwritable`), or None while it writes."""
        return self.taken_over or self.unwritable

    @contextlib.contextmanager
    def _stopping_on_failure(self):
        """Around a write: a conflict with another engine's atom details,
        or a job record that is no longer the fence's, marks this storage
        taken over (and is raised, once); a write the database failed even
        after its retries (``StorageFailure``) marks it unwritable
        (:class:`FlowUnwritable` raised, once, from that failure)."""
        try:
            yield
        except FlowTakenOver as error:
            LOG.info("flow %s was taken over by another engine: this one writes nothing more (%s)",
                     self._flowdetail.uuid, error)
            self.taken_over = error
            raise
        except tf_exc.StorageFailure as error:
            if self._ended:
                # The job's outcome is written: only what follows it failed.
                raise
            LOG.info("flow %s: the database failed a write after its retries: this engine writes nothing "
                     "more (%s)", self._flowdetail.uuid, error)
            self.unwritable = FlowUnwritable(self._flowdetail.uuid, str(error))
            raise self.unwritable from error

    def _before_write(self) -> None:
        if not self._written and self.before_first_write is not None:
            self.before_first_write()

    #: An atom detail entering one of these starts its atom (a step runs or
    #: reverts once it is saved so): never dropped.
    STARTS = frozenset((tf_states.RUNNING, tf_states.REVERTING))

    def _dropped(self, original, detail, what: str):
        stopped = self.stopped
        if what == "atom" and detail.state in self.STARTS and original.state != detail.state:
            # Nothing reaches here after a stop but the engine's end (its
            # FAILURE, durations); should a step start anyway (a write that
            # failed where TaskFlow swallows it, in a listener), it must not
            # run unrecorded.
            raise stopped
        LOG.debug("flow %s: %s %s not written (%s)", self._flowdetail.uuid, what, detail.name, stopped)
        original.update(detail)
        return original

    def _save_atom_detail(self, conn, original_atom_detail, atom_detail):
        # Called by Storage with its write lock held.
        if self.stopped is not None:
            return self._dropped(original_atom_detail, atom_detail, "atom")
        if self._can_wait(atom_detail):
            original_atom_detail.update(atom_detail)
            if original_atom_detail.uuid not in self._unsaved:
                self._waiting[original_atom_detail.uuid] = original_atom_detail
            return original_atom_detail
        also = None
        if (self.on_step_start is not None and atom_detail.state == tf_states.RUNNING
                and atom_detail.intention == tf_states.EXECUTE):
            also = functools.partial(_step_started, self.on_step_start, atom_detail.name)
        if not hasattr(conn, "update_atom_details_many"):
            # Another backend: TaskFlow's write, after what waits.
            self._flush_on(conn)
            return super()._save_atom_detail(conn, original_atom_detail, atom_detail)
        uuid = atom_detail.uuid
        new = [atom_detail if ad.uuid == uuid else ad for ad in self._unsaved.values()]
        updates = [ad for u, ad in self._waiting.items() if u != uuid]
        if uuid not in self._unsaved:
            updates.append(atom_detail)
        flow = self._flowdetail if (self._flow_waits or new) else None
        self._before_write()
        with self._stopping_on_failure():
            self._write_many(conn, updates, also=also, flow_detail=flow, new_atoms=new)
        original_atom_detail.update(atom_detail)
        self._written_all()
        return original_atom_detail

    def _written_all(self) -> None:
        self._waiting.clear()
        self._unsaved.clear()
        self._flow_waits = False
        self._written = True

    @tenacity.retry(
        retry=tenacity.retry_if_exception_type(exception_types=tf_exc.StorageFailure),
        stop=tenacity.stop_after_attempt(tf_storage.RETRY_ATTEMPTS),
        wait=_retry_wait,
        reraise=True,
    )
    def _write_many(self, conn, atom_details: list, also=None, flow_detail=None, new_atoms=()) -> list:
        return conn.update_atom_details_many(atom_details, also=also, flow_detail=flow_detail,
                                             new_atoms=new_atoms, fence=self.fence)

    def _save_flow_detail(self, conn, original_flow_detail, flow_detail):
        # Called by Storage with its write lock held.
        if self.stopped is not None:
            return self._dropped(original_flow_detail, flow_detail, "flow")
        if not hasattr(conn, "update_flow_detail_and"):
            # TaskFlow's save writes every atom detail the flow detail holds
            # (the same objects as this storage's, waiting ones included).
            result = super()._save_flow_detail(conn, original_flow_detail, flow_detail)
            self._written_all()
            return result
        # Every change of an atom passes through _save_atom_detail, written
        # or waiting: the atoms to write with the flow are the waiting ones
        # and those new to it (ensure_atoms, a new store).
        known = {ad.uuid for ad in original_flow_detail}
        new = [ad for ad in flow_detail if ad.uuid not in known]
        if not self._written and (flow_detail.state in self.STARTING
                                  or (flow_detail.state == original_flow_detail.state
                                      and flow_detail.meta == original_flow_detail.meta)):
            # Before the first step (a starting state, or the atoms ensured):
            # nothing acts on these until the next write, which carries them
            # (see the module docstring).
            original_flow_detail.update(flow_detail)
            self._unsaved.update((ad.uuid, ad) for ad in new)
            for ad in new:
                self._waiting.pop(ad.uuid, None)
            self._flow_waits = True
            return original_flow_detail
        new = [*self._unsaved.values(), *(ad for ad in new if ad.uuid not in self._unsaved)]
        updates = [ad for u, ad in self._waiting.items() if u not in self._unsaved]
        also = None
        if self.on_flow_success is not None and flow_detail.state == tf_states.SUCCESS:
            also = functools.partial(_flow_succeeded, self.on_flow_success)
        self._before_write()
        with self._stopping_on_failure():
            self._write_flow(conn, flow_detail, updates, new, also)
        original_flow_detail.update(flow_detail)
        self._written_all()
        if flow_detail.state in self.ENDS:
            self._ended = True
        if also is not None and self.after_flow_success is not None:
            self.after_flow_success()
        return original_flow_detail

    @tenacity.retry(
        retry=tenacity.retry_if_exception_type(exception_types=tf_exc.StorageFailure),
        stop=tenacity.stop_after_attempt(tf_storage.RETRY_ATTEMPTS),
        wait=_retry_wait,
        reraise=True,
    )
    def _write_flow(self, conn, flow_detail, atom_details: list, new_atoms: list, also=None):
        return conn.update_flow_detail_and(flow_detail, atom_details, new_atoms=new_atoms, also=also,
                                           fence=self.fence)

    def _flush_on(self, conn) -> None:
        if not self.pending or self.stopped is not None:
            return
        if hasattr(conn, "update_atom_details_many"):
            flow = self._flowdetail if (self._flow_waits or self._unsaved) else None
            with self._stopping_on_failure():
                self._write_many(conn, [ad for u, ad in self._waiting.items() if u not in self._unsaved],
                                 flow_detail=flow, new_atoms=list(self._unsaved.values()))
        else:
            conn.update_flow_details(self._flowdetail)
        self._written_all()

    def flush(self) -> None:
        """Write what waits now, in one transaction - if a step's outcome is
        among it. An engine that stops before its first write (suspended: its
        claim was lost, its conductor stops) writes nothing: its rows stay as
        it found them, as if it had been killed. (A conductor that lost its
        claim and then inserted the atom details it had made up would add a
        second set to the flow of the conductor that took the job over.)"""
        with self._lock.write_lock():
            # Before the first write only steps that started unrecorded can
            # wait: they changed nothing to revert, and are run again.
            if self._waiting and self._written:
                self._with_connection(self._flush_on)


def _step_started(on_step_start, atom_name: str, _connection, job_state: str | None) -> None:
    on_step_start(job_state, atom_name)


def _flow_succeeded(on_flow_success, connection, _job_state: str | None) -> None:
    on_flow_success(connection)


class ShareflowEngine(SerialActionEngine):
    """TaskFlow's serial engine over a :class:`DeferringStorage`.

    ``compiler``: a TaskFlow ``PatternCompiler`` of this very ``flow``,
    usually compiled already (``shareflow.engine.loading.BuiltFlows``): its
    compilation - a frozen graph - is then reused instead of compiled again.
    ``fence``: the job record its storage's writes are fenced on
    (:class:`DeferringStorage`; the conductor that claimed the job).
    ``retry_wait``: seconds between the tries of a write the database
    failed (``[conductor] write_retry_wait``).
    """

    def __init__(self, flow, flow_detail, backend, options, *, compiler=None, fence: JobFence | None = None,
                 retry_wait: float = tf_storage.RETRY_WAIT_TIMEOUT):
        self._fence = fence
        self._retry_wait = retry_wait
        super().__init__(flow, flow_detail, backend, options)
        if compiler is not None:
            if compiler._root is not flow:
                raise ValueError("the compiler given is not the flow's")
            self._compiler = compiler

    def compile(self):
        super().compile()
        storage = self.storage
        if isinstance(storage, DeferringStorage):
            storage.unrecorded_starts = frozenset(
                atom.name for atom in self._compilation.execution_graph.nodes if unrecorded_start(atom))

    def validate(self):
        """Once per engine: the conductor validates the job's engine as it
        loads it (``ShareflowConductor._load_engine``), and TaskFlow's
        dispatch then validates it again - every atom's arguments looked up
        among the providers of the flow and the store a second time - with
        nothing changed in between (the same compiled flow, the same store)."""
        if self._validated:
            return
        super().validate()

    @misc.cachedproperty
    def storage(self):
        def _scope_fetcher(atom_name):
            if self._compiled:
                return self._runtime.fetch_scopes_for(atom_name)
            return None

        return DeferringStorage(self._flow_detail, backend=self._backend, scope_fetcher=_scope_fetcher,
                                fence=self._fence, retry_wait=self._retry_wait)
