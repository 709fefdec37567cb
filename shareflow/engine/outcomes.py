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
from shareflow.db import access as access_db
from shareflow.db import jobs as jobs_db
from shareflow.db import messages as messages_db
from shareflow.db import shares as shares_db
from shareflow.db import snapshots as snapshots_db
from shareflow.db.engine import Database
from shareflow.db.models import ShareServer, ShareSnapshot
from shareflow.db.transitions import transition
from shareflow.domain import states

LOG = logging.getLogger(__name__)

#: Manila's detail id for "an unknown error occurred"; our text says more.
DETAIL_UNKNOWN = "001"
MESSAGE_RESOURCE_SHARE = "SHARE"
MESSAGE_RESOURCE_SNAPSHOT = "SHARE_SNAPSHOT"

#: What a tenant may read about an error whose object did not survive a
#: reload from persistence (only its type names did). Most specific first.
_GENERIC_REASONS: tuple[tuple[type[exc.ShareflowError], str], ...] = (
    (exc.ShrinkWouldLoseData, "the data in use exceeds the requested size"),
    (exc.NetworkError, "network allocation failed"),
    (exc.ExportError, "the NFS export server failed"),
    (exc.CapacityExceeded, "the storage pool has no room for the share"),
    (exc.StorageError, "the storage backend failed"),
    (exc.CoordinationError, "the coordination service was unavailable"),
    (exc.DatabaseError, "the database was unavailable"),
    (exc.ResourceStateChanged, "the resource changed status while the job ran"),
    (exc.BackendError, "the backend failed"),
)


#: Manila's detail 015 (DRIVER_FAILED_EXTEND).
DRIVER_FAILED_EXTEND = (
    "Share Driver failed to extend share, The share status has been set to extending_error. "
    "This action cannot be re-attempted until the status has been rectified. Contact your "
    "administrator to determine the cause of this failure."
)


@dataclass(frozen=True)
class FailureOutcome:
    """Where a failed job leaves its resource when it failed in a known way:
    the job's ``operation``, failed at ``step`` (None: any step) with an
    error of type ``error`` (None: any error), ends in ``status`` (None: the
    operation's failed status) with a user message of Manila's ``detail_id``
    whose ``detail`` text follows the reason."""

    operation: str
    step: str | None
    error: type[exc.ShareflowError] | None
    status: str | None
    detail_id: str
    detail: str | None = None

    def matches(self, operation: str, step: str | None, failure: Failure | None) -> bool:
        if operation != self.operation or (self.step is not None and step != self.step):
            return False
        return self.error is None or (failure is not None and bool(failure.check(self.error)))


#: Known failures, most specific first; the first match applies, and a failure
#: none matches gets its operation's failed status and detail 001.
FAILURE_OUTCOMES: tuple[FailureOutcome, ...] = (
    # Refused because the data in use exceeds the new size: nothing changed,
    # no data lost (Manila's ShareShrinkingPossibleDataLoss, detail 018).
    FailureOutcome("shrink_share", "resize_volume", exc.ShrinkWouldLoseData,
                   states.SHRINKING_POSSIBLE_DATA_LOSS_ERROR, "018", exc.SHRINK_REFUSED_MESSAGE),
    FailureOutcome("extend_share", "resize_volume", None, None, "015", DRIVER_FAILED_EXTEND),
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


class OutcomeRecorder:
    def __init__(self, db: Database, clock: Callable[[], datetime]):
        self._db = db
        self._clock = clock

    def job_running(self, job_id: str, owner: str) -> bool:
        """Mark the job running (again, when resumed). False when there is no
        job to run: its request withdrew it, or it has already finished."""
        with self._db.write() as s:
            return jobs_db.set_running(s, job_id, owner, now=self._clock())

    def job_succeeded(self, job_id: str) -> None:
        with self._db.write() as s:
            jobs_db.finish(s, job_id, states.JOB_SUCCEEDED, now=self._clock())

    def job_failed(self, job_id: str, step: str | None, failure: str, *, trashed: bool = False) -> None:
        target = states.JOB_TRASHED if trashed else states.JOB_FAILED
        with self._db.write() as s:
            jobs_db.finish(s, job_id, target, now=self._clock(), failed_step=step, failure=failure)

    def job_set_aside(self, job_id: str, failure: str) -> None:
        """The job could not be loaded and was set aside; its logbook stays."""
        with self._db.write() as s:
            jobs_db.finish(s, job_id, states.JOB_TRASHED, now=self._clock(), failure=failure)

    def resource_failed(self, job_id: str, step: str | None, reason: str,
                        failure: Failure | None = None) -> bool:
        """Move the job's resource from its working status to its failed one and,
        if this call did, leave a user message. Returns whether it did.
        ``failure`` (what failed ``step``) may select a more specific outcome
        from :data:`FAILURE_OUTCOMES`."""
        now = self._clock()
        with self._db.write() as s:
            job = jobs_db.get(s, job_id)
            op = states.operation(job.operation)
            outcome = failure_outcome(op.name, step, failure)
            failed_status = outcome.status if outcome and outcome.status else op.failed
            # The message is about the share, or the snapshot for snapshot jobs.
            message_resource = MESSAGE_RESOURCE_SHARE
            if op.resource_kind == states.SHARE:
                subject_id = job.resource_id
                moved = shares_db.set_status(s, subject_id, failed_status, now=now, expected=op.working,
                                             pending_size=None)
            elif op.resource_kind == states.SHARE_SERVER:
                # Share servers are admins' business: the status says it, and
                # the job record has the step and the reason (Manila leaves
                # no user message for them either).
                return transition(s, ShareServer, job.resource_id, states.SHARE_SERVER, op.failed,
                                  now=now, expected=op.working)
            elif op.resource_kind == states.SNAPSHOT:
                subject_id = job.resource_id
                message_resource = MESSAGE_RESOURCE_SNAPSHOT
                moved = transition(s, ShareSnapshot, job.resource_id, states.SNAPSHOT, op.failed,
                                   now=now, expected=op.working)
            else:
                rule = access_db.get(s, job.resource_id)
                subject_id = rule.share_id
                moved = access_db.set_state(s, rule.id, states.ERROR, now=now, expected=op.working)
                if moved:
                    access_db.refresh_share_rules_status(s, subject_id, now=now)
            if not moved:
                return False
            if op.name == "revert_to_snapshot":
                # The snapshot the share was reverted to is available again
                # (Manila's manager does both); also for a flow that never ran.
                snapshots_db.release_restoring(s, subject_id, now=now)
            what = f"step '{step}' failed" if step else "the job could not be run"
            text = f"{op.action}: {what}: {reason}"
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
