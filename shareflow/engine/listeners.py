"""Listeners the conductor attaches to every job's engine."""

from __future__ import annotations

import json
import logging
import threading

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
from shareflow.exceptions import JobCancelled, ShareflowError

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

    def _flow_receiver(self, state, details):
        try:
            if state == tf_states.SUCCESS:
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


class ClaimWatchListener(listeners_base.Listener):
    """Suspends the engine at the next atom boundary once this conductor's
    claim on the job is gone - what TaskFlow's CheckingClaimListener does,
    but that one asks ZooKeeper at every atom and flow transition (sync + get
    of the lock node, then again with the job node: five round trips, about
    80 per create_share job). This one learns of a loss from ZooKeeper
    itself: a data watch on the job's lock node (deleted, or another owner)
    and the session state (LOST). While the connection is down (SUSPENDED)
    the watch cannot be trusted, so it asks as CheckingClaimListener does."""

    def __init__(self, engine, job, board, client: KazooClient, owner: str):
        super().__init__(engine)
        self._job = job
        self._client = client
        self._owner = owner
        #: Set once ZooKeeper has told us the claim is gone.
        self.lost = threading.Event()
        self._watching = False
        self._asking = CheckingClaimListener(engine, job, board, owner)

    def register(self):
        super().register()
        self._watching = True
        self._client.add_listener(self._on_session)
        # Calls _on_lock now (one round trip) and on every change of the node.
        self._client.DataWatch(self._job.lock_path, self._on_lock)

    def deregister(self):
        self._watching = False
        self._client.remove_listener(self._on_session)
        super().deregister()

    def _on_lock(self, data, _stat, _event=None):
        if not self._watching:
            return False  # ends the watch
        if data is None or _lock_owner(data) != self._owner:
            self.lost.set()
        return None

    def _on_session(self, state):
        if state == KazooState.LOST:
            self.lost.set()

    def _check(self, state, details):
        if self.lost.is_set():
            LOG.warning("job %s: claim of %s lost; suspending its engine", self._job, self._owner)
            self._engine.suspend()
        elif self._client.state != KazooState.CONNECTED:
            self._asking._claim_checker(state, details)

    _task_receiver = _check
    _retry_receiver = _check
    _flow_receiver = _check


class DeferredDurationListener(DurationListener):
    """TaskFlow's DurationListener writes each atom's duration in a
    transaction of its own as the atom finishes - on the critical path,
    before the next atom starts. This one keeps them and writes them when
    the flow finishes (or the engine stops); our job records read them
    afterwards (``JobService.show``)."""

    def __init__(self, engine):
        super().__init__(engine)
        self._pending: list[tuple] = []

    def _record_ending(self, timer, item_type, item_name, state):
        if item_type != tf_compiler.FLOW:
            self._pending.append((timer, item_type, item_name, state))
            return
        self._flush()
        super()._record_ending(timer, item_type, item_name, state)

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
            except tf_exc.StorageFailure:
                LOG.warning("could not write the step durations", exc_info=True)
        super().deregister()
