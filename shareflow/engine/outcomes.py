"""Writing the outcome of a job back to our records and to its resource.

A job's resource must never stay in a transitional status. The flows do this
themselves: each begins with a task whose revert marks the resource failed and
leaves a user message naming the failed step. This module is what they call,
and the conductor calls it too as a safety net for what a flow cannot report
itself: a revert that failed, or a job whose flow could not even be loaded.
Every resource change is conditional, so recording twice is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from taskflow.types.failure import Failure

from shareflow import exceptions as exc
from shareflow.db import jobs as jobs_db
from shareflow.db import messages as messages_db
from shareflow.db import resources
from shareflow.db.engine import Database
from shareflow.domain import states

LOG = logging.getLogger(__name__)

#: Manila's detail id for "an unknown error occurred"; our text says more.
DETAIL_UNKNOWN = "001"
MESSAGE_RESOURCE_SHARE = "SHARE"
MESSAGE_RESOURCE_SNAPSHOT = "SHARE_SNAPSHOT"
MESSAGE_RESOURCE_GROUP_SNAPSHOT = "SHARE_GROUP_SNAPSHOT"

#: What a tenant may read about an error whose object did not survive a
#: reload from persistence (only its type names did). Most specific first.
_GENERIC_REASONS: tuple[tuple[type[exc.ShareflowError], str], ...] = (
    (exc.ShrinkWouldLoseData, "the data in use exceeds the requested size"),
    (exc.NetworkError, "network allocation failed"),
    (exc.ExportError, "the NFS export server failed"),
    (exc.NoValidHost, exc.NO_VALID_HOST_MESSAGE),
    (exc.CapacityExceeded, "the storage pool has no room for the share"),
    (exc.StorageError, "the storage backend failed"),
    (exc.CoordinationError, "the coordination service was unavailable"),
    (exc.DatabaseError, "the database was unavailable"),
    (exc.ResourceStateChanged, "the resource changed status while the job ran"),
    (exc.BackendError, "the backend failed"),
)


#: Kept importable from here: they are declared with their operations now.
DRIVER_FAILED_EXTEND = states.DRIVER_FAILED_EXTEND
FailureOutcome = states.FailureOutcome
#: Known failures of every operation, most specific first; the first match
#: applies, and a failure none matches gets its operation's failed status
#: and detail 001.
FAILURE_OUTCOMES: tuple[FailureOutcome, ...] = tuple(
    o for op in states.OPERATIONS.values() for o in op.outcomes
)


def failure_outcome(operation: str, step: str | None, failure: Failure | None) -> FailureOutcome | None:
    return next((o for o in FAILURE_OUTCOMES if o.matches(operation, step, failure)), None)


def user_reason(failure: Failure) -> str:
    """A reason fit for a user message: our own errors carry one; anything
    else is an internal error whose details are for operators only."""
    error = failure.exception
    if isinstance(error, exc.ShareflowError):
        return error.user_message
    if failure.check(exc.InjectedFault):
        return failure.exception_str
    for cls, text in _GENERIC_REASONS:
        if failure.check(cls):
            return text
    return "an internal error occurred"


def operator_text(failure: Failure) -> str:
    try:
        return failure.pformat(traceback=True)
    except Exception:  # a reloaded failure may lack a traceback
        return failure.exception_str


def first_failure(failures: dict[str, Failure], *, ignore: str | None = None) -> tuple[str, Failure] | None:
    """The step that failed (flows are linear, so there is one that matters)."""
    for name, failure in failures.items():
        if name != ignore:
            return name, failure
    return None


def message_subject(session, op: states.Operation, resource_id: str) -> tuple[str, str | None] | None:
    """(resource type, id) a user message about a job of ``op`` on
    ``resource_id`` is about: the share, or the snapshot for snapshot jobs.
    None for share servers: they are admins' business - the status says it,
    and the job record has the step and the reason (Manila leaves no user
    message for them either)."""
    if op.resource_kind == states.SHARE_SERVER:
        return None
    if op.resource_kind == states.SNAPSHOT:
        return MESSAGE_RESOURCE_SNAPSHOT, resource_id
    if op.resource_kind == states.SHARE_GROUP_SNAPSHOT:
        return MESSAGE_RESOURCE_GROUP_SNAPSHOT, resource_id
    return MESSAGE_RESOURCE_SHARE, resources.share_of(session, op, resource_id)


class OutcomeRecorder:
    def __init__(self, db: Database, clock: Callable[[], datetime]):
        self._db = db
        self._clock = clock

    def job_running(self, job_id: str, owner: str, board_job_id: str | None = None, *,
                    connection=None) -> bool:
        """Mark the job running (again, when resumed). False when there is no
        job to run: its request withdrew it, it has already finished, or
        another board job of it runs (``jobs_db.set_running``). Its
        statements each stand alone (``Database.write_each``): on
        PostgreSQL no BEGIN and COMMIT round trips on a job's way to its
        first step. With ``connection``, in that (open) transaction."""
        if connection is not None:
            return jobs_db.set_running(connection, job_id, owner, now=self._clock(), board_job_id=board_job_id)
        with self._db.write_each() as s:
            return jobs_db.set_running(s, job_id, owner, now=self._clock(), board_job_id=board_job_id)

    def job_succeeded(self, job_id: str, *, connection=None) -> None:
        """With ``connection``, in that (open) transaction."""
        if connection is not None:
            jobs_db.finish(connection, job_id, states.JOB_SUCCEEDED, now=self._clock())
            return
        with self._db.write() as s:
            jobs_db.finish(s, job_id, states.JOB_SUCCEEDED, now=self._clock())

    def job_failed(self, job_id: str, step: str | None, failure: str, *, trashed: bool = False) -> None:
        """The job's flow ended REVERTED (everything undone): ``cancelled``
        if an operator had cancelled it, else ``reverted``; or, with
        ``trashed``, it never ran (housekeeping gave up on it)."""
        now = self._clock()
        with self._db.write() as s:
            if trashed:
                jobs_db.finish(s, job_id, states.JOB_TRASHED, now=now, failed_step=step, failure=failure)
                return
            if not jobs_db.finish(s, job_id, states.JOB_CANCELLED, now=now, failed_step=step, failure=failure,
                                  expected={states.JOB_CANCELLING}):
                jobs_db.finish(s, job_id, states.JOB_REVERTED, now=now, failed_step=step, failure=failure)

    def job_revert_failed(self, job_id: str, step: str | None, failure: str) -> None:
        """A step failed and undoing failed too (the flow ended FAILURE); the
        logbook keeps the flow for ``jobs resume``."""
        with self._db.write() as s:
            jobs_db.finish(s, job_id, states.JOB_REVERT_FAILED, now=self._clock(), failed_step=step,
                           failure=failure)

    def job_set_aside(self, job_id: str, failure: str) -> None:
        """The job could not be loaded and was set aside; its logbook stays."""
        with self._db.write() as s:
            jobs_db.finish(s, job_id, states.JOB_TRASHED, now=self._clock(), failure=failure)

    def is_cancelling(self, job_id: str) -> bool:
        # One statement: asked before a step whose start is not written.
        with self._db.snapshot() as conn:
            return jobs_db.state_of(conn, job_id) == states.JOB_CANCELLING

    def resource_failed(self, job_id: str, step: str | None, reason: str,
                        failure: Failure | None = None, *, undo: tuple[str, str] | None = None,
                        cancelled: bool = False) -> bool:
        """Move the job's resource from its working status to its failed one and,
        if this call did, leave a user message. Returns whether it did.
        ``failure`` (what failed ``step``) may select a more specific outcome
        from the operation's declared outcomes. ``undo``: (step, reason) of
        an undo that failed too - the resource gets the operation's status
        for a failed revert and the message names that step. ``cancelled``:
        an operator cancelled the job."""
        now = self._clock()
        with self._db.write() as s:
            job = jobs_db.get(s, job_id)
            op = states.operation(job.operation)
            outcome = None if cancelled or undo else failure_outcome(op.name, step, failure)
            if undo:
                target = op.failed_after_revert_failure
            else:
                target = outcome.status if outcome and outcome.status else op.failed
            if not resources.fail(s, op, job.resource_id, target, now=now):
                return False
            subject = message_subject(s, op, job.resource_id)
            if subject is None:
                return True
            message_resource, subject_id = subject
            if cancelled:
                text = f"{op.action}: {exc.CANCELLED_MESSAGE}."
            else:
                what = f"step '{step}' failed" if step else "the job could not be run"
                text = f"{op.action}: {what}: {reason}"
            if undo:
                text = (f"{text.rstrip('.')}; undoing step '{undo[0]}' failed too: {undo[1]}. Something may "
                        f"be left on the backend until an administrator resumes job {job.id}.")
            if outcome and outcome.detail and outcome.detail != reason:
                text = f"{text.rstrip('.')}. {outcome.detail}"
            messages_db.create(
                s, now=now, project_id=job.project_id or "",
                request_id=job.request_id, resource_type=message_resource,
                resource_id=subject_id, action_id=op.action_id,
                detail_id=outcome.detail_id if outcome else DETAIL_UNKNOWN,
                user_message=text,
            )
            return True
