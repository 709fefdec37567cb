"""Jobs (a shareflow extension): one operation on one resource, its steps
and its attempts.

Where a job ran (backend, conductor), the operator text of its failure and
who steered it are for admins, as Manila shows a share's host only to them;
a member sees which step failed and what was done to the job, not the
backend's words or the operator's name."""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.db.models import Job, JobAction
from shareflow.engine.stalls import ClaimCheck
from shareflow.services.jobs import JobView, ListedJob, Listing

ADMIN_FIELDS = ("backend", "owner", "board_job_id")


def summary(job: Job, ctx: ViewContext, *, state: str | None = None, claim: ClaimCheck | None = None) -> dict:
    """``state``: as shown (``stalled`` when ZooKeeper says so), else the record's."""
    out = {
        "id": job.id,
        "operation": job.operation,
        "resource_type": job.resource_type,
        "resource_id": job.resource_id,
        "project_id": job.project_id,
        "request_id": job.request_id,
        "state": state or job.state,
        "failed_step": job.failed_step,
        "attempt": job.attempt,
        "retry_of": job.retry_of,
        "user_id": job.user_id,
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        "updated_at": timestamp(job.updated_at),
    }
    if ctx.is_admin:
        for name in ADMIN_FIELDS:
            out[name] = getattr(job, name)
        if claim is not None:
            # Who holds it now (the record keeps the last owner, maybe dead since).
            out["owner"] = claim.owner or None
            out["stalled_reason"] = claim.reason or None
    out["links"] = ctx.links("jobs", job.id)
    return out


def detail(view: JobView, ctx: ViewContext) -> dict:
    out = summary(view.job, ctx, state=view.state, claim=view.claim)
    out["flow_state"] = view.flow_state
    out["current_step"] = view.current_step
    out["steps"] = [
        {"name": s.name, "state": s.state, "duration": s.duration,
         "failure": s.failure if ctx.is_admin else None}
        for s in view.steps
    ]
    if ctx.is_admin:
        out["failure"] = view.job.failure
    out["attempts"] = [
        {"id": j.id, "attempt": n, "state": j.state, "retry_of": j.retry_of,
         "created_at": timestamp(j.created_at), "finished_at": timestamp(j.finished_at),
         "failed_step": j.failed_step,
         # Where each attempt ran (a rescheduled create's pools): for admins, as the job's own.
         **({"backend": j.backend} if ctx.is_admin else {})}
        for n, j in enumerate(view.attempts, 1)
    ]
    out["retried_by"] = list(view.retried_by)
    out["actions"] = [_action(a, ctx) for a in view.actions]
    return out


def _action(action: JobAction, ctx: ViewContext) -> dict:
    out = {"action": action.action, "from_state": action.from_state, "to_state": action.to_state,
           "note": action.note, "created_at": timestamp(action.created_at)}
    if ctx.is_admin:  # which operator: theirs to know, not the tenant's
        out |= {"user_id": action.user_id, "project_id": action.project_id, "request_id": action.request_id}
    return out


def list_view(listing: Listing, ctx: ViewContext, *, with_count: bool = False) -> dict:
    out: dict = {"jobs": [_listed(row, ctx) for row in listing.jobs]}
    if with_count:
        out["count"] = listing.total
    return out


def _listed(row: ListedJob, ctx: ViewContext) -> dict:
    return summary(row.job, ctx, state=row.state, claim=row.claim)
