"""Jobs (a shareflow extension): one operation on one resource, its steps
and its attempts.

Where a job ran (backend, conductor) and the operator text of its failure
are for admins, as Manila shows a share's host only to them; a member sees
which step failed, not the backend's words for it."""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.db.models import Job
from shareflow.services.jobs import JobView

#: Record fields that only exist once the schema has them (attempt, steering
#: history, ...): shown when the model has the column.
OPTIONAL_FIELDS = ("step", "attempt", "user_id", "retry_of")
ADMIN_FIELDS = ("backend", "owner", "board_job_id")


def summary(job: Job, ctx: ViewContext) -> dict:
    out = {
        "id": job.id,
        "operation": job.operation,
        "resource_type": job.resource_type,
        "resource_id": job.resource_id,
        "project_id": job.project_id,
        "request_id": job.request_id,
        "state": job.state,
        "failed_step": job.failed_step,
        "created_at": timestamp(job.created_at),
        "started_at": timestamp(job.started_at),
        "finished_at": timestamp(job.finished_at),
        "updated_at": timestamp(job.updated_at),
    }
    for name in OPTIONAL_FIELDS:
        if hasattr(Job, name):
            out[name] = getattr(job, name)
    if ctx.is_admin:
        for name in ADMIN_FIELDS:
            out[name] = getattr(job, name)
    out["links"] = ctx.links("jobs", job.id)
    return out


def detail(view: JobView, ctx: ViewContext) -> dict:
    out = summary(view.job, ctx)
    out["flow_state"] = view.flow_state
    out["steps"] = [
        {"name": s.name, "state": s.state, "duration": s.duration,
         "failure": s.failure if ctx.is_admin else None}
        for s in view.steps
    ]
    if ctx.is_admin:
        out["failure"] = view.job.failure
    out["attempts"] = [
        {"id": j.id, "state": j.state, "created_at": timestamp(j.created_at),
         "finished_at": timestamp(j.finished_at), "failed_step": j.failed_step}
        for j in view.attempts
    ]
    return out


def list_view(jobs: list[Job], ctx: ViewContext) -> dict:
    return {"jobs": [summary(j, ctx) for j in jobs]}
