"""Listeners the conductor attaches to every job's engine."""

from __future__ import annotations

import json
import logging
import threading

from kazoo import exceptions as k_exc
from kazoo.client import KazooClient
from kazoo.protocol.states import KazooState
from taskflow import exceptions as tf_exc
from taskflow import states as tf_states
from taskflow.engines.action_engine import compiler as tf_compiler
from taskflow.listeners import base as listeners_base
from taskflow.listeners.claims import CheckingClaimListener
from taskflow.listeners.timing import DurationListener

from shareflow.engine.outcomes import (
    OutcomeRecorder,
    first_failure,
    operator_text,
    user_reason,
)
from shareflow.engine.storage import DeferringStorage
from shareflow.exceptions import FlowUnwritable, JobCancelled, ShareflowError

LOG = logging.getLogger(__name__)


class JobRecordListener(listeners_base.Listener):
    """Mirrors the flow's state into our job record (``succeeded``,
    ``reverted`` or ``cancelled``, ``revert_failed``); on a FAILURE (a revert
    that itself failed) also fails the resource, which the flow could not do,
    with a message naming the step whose undo failed."""

    def __init__(self, engine, job_id: str, recorder: OutcomeRecorder):
        super().__init__(
            engine,
            task_listen_for=(),
            retry_listen_for=(),
            flow_listen_for=(tf_states.SUCCESS, tf_states.REVERTED, tf_states.FAILURE),
        )
        self._job_id = job_id
        self._recorder = recorder
        #: Whether the flow's SUCCESS was recorded in its own transaction.
        self._succeeded = False

    def record_success_in(self, connection) -> None:
        """For the engine's storage (``DeferringStorage.on_flow_success``):
        record the job succeeded in the transaction that records the flow's
        SUCCESS - one transaction instead of two, and never a flow recorded
        done whose job is not."""
        self._recorder.job_succeeded(self._job_id, connection=connection)
        self._succeeded = True

    def _flow_receiver(self, state, details):
        stopped = getattr(self._engine.storage, "stopped", None)
        if stopped is not None:
            # Another conductor runs the job (``DeferringStorage.taken_over``),
            # or the database failed a write and the job goes back to the
            # board (``DeferringStorage.unwritable``): this engine's end is
            # none of the job's, nor of its resource's.
            LOG.info("job %s: flow %s ended here after its engine stopped writing (%s); not recorded",
                     self._job_id, state, stopped)
            return
        try:
            if state == tf_states.SUCCESS:
                if not self._succeeded:
                    self._recorder.job_succeeded(self._job_id)
                return
            storage = self._engine.storage
            failed = first_failure(storage.get_execute_failures(), ignore=None)
            step, failure = failed if failed else (None, None)
            text = operator_text(failure) if failure else f"flow ended {state}"
            if state == tf_states.REVERTED:
                self._recorder.job_failed(self._job_id, step, text)
                return
            # FAILURE: undoing failed too. The flow's first step could not
            # report it (the revert stopped before it), so it is done here.
            undo = first_failure(storage.get_revert_failures(), ignore=None)
            undo_step, undo_failure = undo if undo else (None, None)
            if undo_failure is not None:
                text = f"{text}\nundoing step '{undo_step}' failed:\n{operator_text(undo_failure)}"
            self._recorder.job_revert_failed(self._job_id, step, text)
            reason = user_reason(failure) if failure else "the job failed and could not be undone"
            self._recorder.resource_failed(
                self._job_id, step, reason, failure,
                undo=(undo_step, user_reason(undo_failure)) if undo_failure is not None else None,
                cancelled=bool(failure is not None and failure.check(JobCancelled)),
            )
        except ShareflowError:
            # A listener must never break the engine; the record is best effort
            # and the resource's own status is written by the flow.
            LOG.exception("could not record state %s of job %s", state, self._job_id)


def _lock_owner(data: bytes | None) -> str | None:
    try:
        return json.loads(data.decode("utf-8")).get("owner")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None


class ClaimWatch:
    """Whether this conductor still holds a job's claim, as ZooKeeper tells
    it: a data watch on the job's lock node (deleted, or another owner).

    :meth:`start` sends the read that sets the watch and returns without
    waiting for the answer, so it travels while the conductor records and
    loads the job (kazoo's DataWatch waits for it: one round trip on the way
    to the first step). Once stopped, a later change of the node reads
    nothing more (DataWatch reads the node again, and asks whether it
    exists, when the job is consumed)."""

    def __init__(self, client: KazooClient, lock_path: str, owner: str):
        self._client = client
        self._path = lock_path
        self._owner = owner
        #: Set once ZooKeeper has told us the claim is gone.
        self.lost = threading.Event()
        self._stopped = False
        self._pending = None
        #: Whether a watch is known to be set (its read answered).
        self.watching = False

    def start(self) -> ClaimWatch:
        self._read()
        return self

    def stop(self) -> None:
        self._stopped = True

    def _read(self) -> None:
        if self._stopped:
            return
        try:
            pending = self._client.get_async(self._path, watch=self._on_event)
        except Exception:  # noqa: BLE001 - closed client: nothing is watched
            self.watching = False
            return
        self._pending = pending
        pending.rawlink(self._on_answer)

    def _on_answer(self, result) -> None:
        try:
            data, _stat = result.get(block=False)
        except k_exc.NoNodeError:
            self.lost.set()
            return
        except Exception:  # noqa: BLE001 - connection loss, expiry: no watch is set
            self.watching = False
            return
        self.watching = True
        if _lock_owner(data) != self._owner:
            self.lost.set()

    def _on_event(self, _event) -> None:
        # The node changed or went: read it again (and watch again).
        self._read()

    @property
    def in_flight(self) -> bool:
        """Whether the read that sets the watch is still unanswered."""
        pending = self._pending
        return pending is not None and not pending.ready()

    def settle(self, timeout: float) -> bool:
        """Wait for the read in flight, if any; whether a watch is set."""
        pending = self._pending
        if pending is not None:
            pending.wait(timeout)
            if pending.ready():
                # Its callback may not have run yet: read the answer here too.
                self._on_answer(pending)
        return self.watching


def _atoms_before(graph, node, atoms) -> bool:
    """Whether an atom precedes ``node`` in the execution graph (through
    the flows' own nodes)."""
    seen, todo = set(), list(graph.predecessors(node))
    while todo:
        n = todo.pop()
        if n in atoms:
            return True
        if n not in seen:
            seen.add(n)
            todo.extend(graph.predecessors(n))
    return False


def reads_only(atom) -> bool:
    """Whether ``atom`` (a task) says it only reads (``reads_only = True``):
    it may start before the claim watch's first answer
    (:class:`ClaimWatchListener`). A step with any side effect - even one
    that happens once however often it runs - must not say so."""
    return getattr(atom, "reads_only", False) is True


class ClaimWatchListener(listeners_base.Listener):
    """Suspends the engine at the next atom boundary once this conductor's
    claim on the job is gone - what TaskFlow's CheckingClaimListener does,
    but that one asks ZooKeeper at every atom and flow transition (sync + get
    of the lock node, then again with the job node: five round trips, about
    80 per create_share job). This one learns of a loss from ZooKeeper
    itself: a :class:`ClaimWatch` on the job's lock node (the conductor starts
    it right after the claim) and the session state (LOST). While the
    connection is down (SUSPENDED), or no watch could be set, the watch
    cannot be trusted, so it asks as CheckingClaimListener does."""

    def __init__(self, engine, job, board, client: KazooClient, owner: str,
                 watch: ClaimWatch | None = None, *, settle_timeout: float = 10.0):
        super().__init__(engine)
        self._job = job
        self._client = client
        self._owner = owner
        self._watch = watch
        self._settle_timeout = settle_timeout
        self._asking = CheckingClaimListener(engine, job, board, owner)
        #: Names of the engine's steps that only read (:func:`reads_only`),
        #: once it is compiled.
        self._reads_only_names: frozenset[str] | None = None

    @property
    def lost(self) -> threading.Event:
        return self._watch.lost

    def register(self):
        super().register()
        if self._watch is None:
            self._watch = ClaimWatch(self._client, self._job.lock_path, self._owner).start()
        self._client.add_listener(self._on_session)

    def deregister(self):
        self._watch.stop()
        self._client.remove_listener(self._on_session)
        super().deregister()

    def _may_start_unchecked(self, details) -> bool:
        """A reading step's start (its end is checked, and a suspension
        there keeps the next step from starting), or the flow's start when
        what it runs first only reads: a check at a step's start does not
        keep that step from running (the engine stops at the next atom
        boundary), so the flow's start is checked whenever its first step
        has an effect."""
        if "task_name" in details:
            return details["task_name"] in self._reads_only()
        return "flow_name" in details and self._starts_by_reading()

    def _starts_by_reading(self) -> bool:
        """Whether the flow is fresh (no step has run) and each of its first
        steps only reads."""
        storage = self._engine.storage
        graph = self._engine.compilation.execution_graph
        atoms = {n for n, data in graph.nodes(data=True) if data.get("kind") in tf_compiler.ATOMS}
        if any(storage.get_atom_state(a.name) != tf_states.PENDING for a in atoms):
            return False
        firsts = [a for a in atoms if not _atoms_before(graph, a, atoms)]
        return bool(firsts) and all(a.name in self._reads_only() for a in firsts)

    def _reads_only(self) -> frozenset[str]:
        if self._reads_only_names is None:
            self._reads_only_names = frozenset(
                atom.name for atom in self._engine.compilation.execution_graph.nodes if reads_only(atom))
        return self._reads_only_names

    def _on_session(self, state):
        if state == KazooState.LOST:
            self._watch.lost.set()

    def _check(self, state, details):
        if (state == tf_states.RUNNING and not self._watch.lost.is_set() and self._watch.in_flight
                and self._may_start_unchecked(details)):
            # The flow's start, or a step that only reads, goes on without
            # waiting for the watch's first answer (it comes meanwhile): a
            # conductor whose claim is already gone may run such a step, to
            # no effect, and the next check - at the first step's start, or
            # at the reading step's end: before anything with an effect, and
            # before the run writes anything - waits for the answer and
            # stops the engine. (That wait was 1.4-2.2 ms on most jobs' way
            # to their first step.)
            return
        # The watch's first read may still be in flight: waiting for its
        # answer is cheaper than asking again.
        trusted = self._client.state == KazooState.CONNECTED and self._watch.settle(self._settle_timeout)
        if self._watch.lost.is_set():
            LOG.warning("job %s: claim of %s lost; suspending its engine", self._job, self._owner)
            self._engine.suspend()
        elif not trusted:
            self._asking._claim_checker(state, details)

    _task_receiver = _check
    _retry_receiver = _check
    _flow_receiver = _check


class DeferredDurationListener(DurationListener):
    """TaskFlow's DurationListener writes each atom's duration in a
    transaction of its own as the atom finishes - on the critical path,
    before the next atom starts - and the flow's own at its end, in one more.

    Here a step that succeeded hands its duration to the engine's storage,
    where (like its SUCCESS) it waits for the next write: the next step's
    RUNNING, or the flow's end (``shareflow.engine.storage``). Other
    durations (a step that failed or was reverted) are kept and written when
    the flow ends or the engine stops. The flow's own duration is not
    recorded: nothing reads it (a job's record has its start and end; our
    job views read the steps')."""

    def __init__(self, engine):
        super().__init__(engine)
        self._pending: list[tuple] = []

    def _record_ending(self, timer, item_type, item_name, state):
        if item_type == tf_compiler.FLOW:
            self._flush()
        elif state == tf_states.SUCCESS and isinstance(self._engine.storage, DeferringStorage):
            super()._record_ending(timer, item_type, item_name, state)
        else:
            self._pending.append((timer, item_type, item_name, state))

    def _flow_receiver(self, state, details):
        # No timer on the flow (see above); what was kept is written at its end.
        if state in (tf_states.SUCCESS, tf_states.FAILURE, tf_states.REVERTED):
            self._flush()

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for args in pending:
            super()._record_ending(*args)

    def deregister(self):
        self._flush()
        # A flow that stopped early (suspended) saved no state after these.
        flush = getattr(self._engine.storage, "flush", None)
        if flush is not None:
            try:
                flush()
            except (tf_exc.StorageFailure, FlowUnwritable):
                LOG.warning("could not write the step durations", exc_info=True)
        super().deregister()
