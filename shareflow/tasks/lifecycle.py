"""The first and last atoms of every flow: the resource's status in and out.

Both read the operation's declaration (``shareflow.domain.states.OPERATIONS``)
and move the resource through ``shareflow.db.resources``, the one transition
path for a job's resource. The atoms are named ``begin`` and ``finish`` in
every flow; a logbook knows them by those names only, so these classes may
change without stranding jobs in flight.
"""

from __future__ import annotations

from taskflow import task

from shareflow.db import access as access_db
from shareflow.db import jobs as jobs_db
from shareflow.db import resources
from shareflow.domain import states
from shareflow.engine import placement, reschedule
from shareflow.engine.outcomes import first_failure, user_reason
from shareflow.exceptions import JobCancelled, ResourceStateChanged

BEGIN = "begin"
#: The scheduling operation (``shareflow.tasks.scheduling``).
SCHEDULE = "schedule_share"
FINISH = "finish"


def cancelled(flow_failures: dict) -> bool:
    """Whether the flow reverts because an operator cancelled the job."""
    return any(f.check(JobCancelled) for f in flow_failures.values())


class BeginOperation(task.Task):
    """Check that the resource is still this job's to work on, and take it.

    A share, snapshot or share server must be in the operation's working
    status (the API set it before posting): this only looks. An access rule
    is moved from queued to in-progress (or found there, when the job is
    resumed). A create's share that a later attempt moved to another backend
    (a reschedule) is no longer this job's either. Anything else means the
    resource moved on without this job -
    it was reset, or this is a reverted flow being run forward again - and
    the job must not touch it. Its start is not written
    (``shareflow.engine.storage.unrecorded_start``): except for an access
    rule it only reads, and a rule's move to in progress is found done when
    the step runs again; nothing after it starts before its SUCCESS is
    written (with the next step's start), so its revert - the failure's
    record - always has it. Except for an access rule it does not wait for
    the claim watch's first answer (``shareflow.engine.listeners.reads_only``).

    Revert: a create whose volume could not be made on its pool is
    rescheduled to the next pool instead (``shareflow.engine.reschedule``:
    the share moved and the next attempt's job posted there) while
    ``[scheduler] max_attempts`` allows; a scheduling job whose share was
    handed to its create job leaves the share to that job; otherwise marks the resource failed (its operation's failed status: share
    ``error``/``error_deleting``/..., snapshot ``error``/``error_deleting``,
    server ``error``, rule ``error``) and leaves a user message naming the
    step that failed and why, or saying an administrator cancelled the job;
    does nothing when this task itself failed (other than by a cancel),
    because then the resource was not this job's to change.
    """

    def __init__(self, operation: str):
        self._op = states.operation(operation)
        super().__init__(name=BEGIN)
        self.unrecorded_start = True
        # (shareflow.engine.listeners.ClaimWatchListener: may start before
        # the claim watch's first answer.)
        self.reads_only = self._op.resource_kind != states.ACCESS_RULE

    def execute(self, runtime, resource_id, backend=None):
        kind = self._op.resource_kind.replace("_", " ")
        if self._op.resource_kind != states.ACCESS_RULE:
            # One statement (status, and a share's backend) outside any
            # transaction: it is its own consistent snapshot.
            with runtime.db.snapshot() as conn:
                status, on_backend = resources.status_and_backend(conn, self._op, resource_id)
            moved_to = self._moved(on_backend, backend)
            if status not in self._op.working:
                raise ResourceStateChanged(
                    f"{kind} {resource_id} is {status}, not {sorted(self._op.working)}",
                    user_message=f"the {kind} changed status to {status} before the job ran",
                )
            if moved_to is not None:
                raise ResourceStateChanged(
                    f"{kind} {resource_id} was rescheduled to {moved_to}, not {backend}",
                    user_message=f"the {kind} was rescheduled to another pool",
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

    def _moved(self, on_backend: str | None, backend) -> str | None:
        """A create's share rescheduled to another backend than this job's
        (an earlier attempt's flow run forward again): that backend.
        ``on_backend``: the share's, as read with its status."""
        if self._op.name != reschedule.OPERATION or not backend or "@" not in backend:
            return None
        if not on_backend or on_backend == backend:
            return None
        return on_backend

    def revert(self, runtime, job_id, flow_failures, **kwargs):
        if cancelled(flow_failures):
            step = next(name for name, f in flow_failures.items() if f.check(JobCancelled))
            runtime.recorder.resource_failed(job_id, step, "", cancelled=True)
            return
        failed = first_failure(flow_failures, ignore=BEGIN)
        if failed is None:
            return
        step, failure = failed
        if self._op.name == SCHEDULE and placement.handed_over(runtime, job_id):
            # The share went to its pool's create job, which finishes it.
            return
        reason = user_reason(failure)
        if reschedule.reschedulable(self._op.name, step, failure):
            # Everything after this step is undone by now: try the next pool.
            if reschedule.reschedule(runtime, job_id) is not None:
                return
            with runtime.db.read() as s:
                reason += reschedule.tried_text(reschedule.tried_pools(s, jobs_db.get(s, job_id)))
        runtime.recorder.resource_failed(job_id, step, reason, failure)


class Finish(task.Task):
    """The operation's success status, with what goes with it (a share's
    export locations or new size, a snapshot's provider location; a deleted
    resource's soft delete; an access rule's share's rules status), in one
    conditional write from the working status. Resumed after it had
    committed, it finds the work done and does nothing.

    Revert: nothing to undo; this is the last step and its one transaction
    either committed (and the flow succeeded) or did not happen.
    """

    def __init__(self, operation: str):
        self._op = states.operation(operation)
        super().__init__(name=FINISH)

    def execute(self, runtime, resource_id, share_id=None, export_locations=None, new_size=None,
                snapshot_id=None, snapshot_size=None, provider_location=None):
        outputs = {"share_id": share_id, "export_locations": export_locations, "new_size": new_size,
                   "snapshot_id": snapshot_id, "snapshot_size": snapshot_size,
                   "provider_location": provider_location}
        with runtime.db.write() as s:
            resources.succeed(s, self._op, resource_id, outputs, now=runtime.clock())
