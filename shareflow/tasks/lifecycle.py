"""The first and last atoms of every flow: resource status in and out."""

from __future__ import annotations

from taskflow import task

from shareflow.db import access as access_db
from shareflow.db import shares as shares_db
from shareflow.db.models import AccessRule
from shareflow.domain import states
from shareflow.engine.outcomes import first_failure, user_reason
from shareflow.exceptions import ResourceStateChanged

BEGIN = "begin"
FINISH = "finish"


class BeginOperation(task.Task):
    """Check that the resource is still this job's to work on, and take it.

    A share must be in the operation's working status (the API set it before
    posting). An access rule is moved from queued to in-progress (or found
    there, when the job is resumed). Anything else means the resource moved
    on without this job - it was reset, or this is a reverted flow being run
    forward again - and the job must not touch it.

    Revert: marks the resource failed (its operation's failed status: share
    ``error``/``error_deleting``, rule ``error``) and leaves a user message
    naming the step that failed and why; does nothing when this task itself
    failed, because then the resource was not this job's to change.
    """

    def __init__(self, operation: str):
        self._op = states.operation(operation)
        super().__init__(name=BEGIN)

    def execute(self, runtime, resource_id):
        if self._op.resource_kind == states.SHARE:
            # The API already set the working status: only look.
            with runtime.db.read() as s:
                share = shares_db.get_any(s, resource_id)
                if share is None or share.status not in self._op.working:
                    status = share.status if share else "gone"
                    raise ResourceStateChanged(
                        f"share {resource_id} is {status}, not {sorted(self._op.working)}",
                        user_message=f"the share changed status to {status} before the job ran",
                    )
            return
        now = runtime.clock()
        with runtime.db.write() as s:
            rule = access_db.get(s, resource_id)
            in_progress = states.APPLYING if self._op.name == "allow_access" else states.DENYING
            if rule.state != in_progress and not access_db.set_state(s, rule.id, in_progress, now=now):
                raise ResourceStateChanged(
                    f"access rule {rule.id} is {rule.state}",
                    user_message=f"the access rule changed state to {rule.state} before the job ran",
                )
            access_db.refresh_share_rules_status(s, rule.share_id, now=now)

    def revert(self, runtime, job_id, flow_failures, **kwargs):
        failed = first_failure(flow_failures, ignore=BEGIN)
        if failed is None:
            return
        step, failure = failed
        runtime.recorder.resource_failed(job_id, step, user_reason(failure), failure)


class FinishCreateShare(task.Task):
    """Make the share ``available`` with its export locations.

    Revert: nothing to undo; this is the last step and its one write either
    committed (and the flow succeeded) or did not happen.
    """

    def __init__(self):
        super().__init__(name=FINISH)

    def execute(self, runtime, share_id, export_locations):
        now = runtime.clock()
        with runtime.db.write() as s:
            if not shares_db.set_status(s, share_id, states.AVAILABLE, now=now, expected={states.CREATING}):
                share = shares_db.get_any(s, share_id)
                if share is not None and share.status == states.AVAILABLE:
                    return  # resumed after this step had committed
                raise ResourceStateChanged(f"share {share_id} left 'creating' while it was being created")
            shares_db.replace_export_locations(s, share_id, export_locations, now=now)


class FinishDeleteShare(task.Task):
    """Mark the share deleted (soft delete: the row stays for the record).

    Revert: nothing to undo (last step, one write).
    """

    def __init__(self):
        super().__init__(name=FINISH)

    def execute(self, runtime, share_id):
        with runtime.db.write() as s:
            share = shares_db.get_any(s, share_id)
            if share is not None and share.deleted_at is None:
                if not shares_db.mark_deleted(s, share_id, now=runtime.clock()):
                    raise ResourceStateChanged(f"share {share_id} left 'deleting' while it was being deleted")


class FinishAccess(task.Task):
    """Settle the rule: ``active`` after allow, gone after deny; then the
    share's ``access_rules_status`` follows from all its rules.

    Revert: nothing to undo (last step, one write).
    """

    def __init__(self, operation: str):
        self._op = states.operation(operation)
        super().__init__(name=FINISH)

    def execute(self, runtime, resource_id, share_id):
        now = runtime.clock()
        with runtime.db.write() as s:
            rule = s.get(AccessRule, resource_id)
            if rule is None:
                raise ResourceStateChanged(f"access rule {resource_id} vanished while being applied")
            if self._op.succeeded == states.DELETED:
                done = rule.deleted_at is not None or access_db.mark_deleted(s, resource_id, now=now)
            else:
                done = rule.state == self._op.succeeded or access_db.set_state(
                    s, resource_id, self._op.succeeded, now=now
                )
            if not done:
                raise ResourceStateChanged(f"access rule {resource_id} changed state while being applied")
            access_db.refresh_share_rules_status(s, share_id, now=now)
