"""``/jobs`` (a shareflow extension): what the conductors did and are doing,
and an operator's way to steer it. Independent of the microversion.

``GET /v2/jobs`` lists newest first, filtered by ``state`` (repeatable or
comma-separated; ``stalled`` is asked of ZooKeeper), ``operation``,
``resource_id`` and, for admins, ``project_id``; paged by ``limit`` and
``offset``; ``with_count=true`` adds how many match in all (Manila's
``with_count``: say, how many are stalled). Members see their own project's
jobs only, and another project's job is a 404. ``POST /v2/jobs/{id}/action``
takes ``{"resume": null}``, ``{"retry": null}`` or ``{"cancel": null}``
(admin only: 403 before the arguments are read) and answers 202 with the job
(for a retry, the new job); 409 when its state does not allow the action."""

from __future__ import annotations

from shareflow.api import params as qp
from shareflow.api.resources.base import PER_ACTION, Action, Actions, Resource, caller, dispatch_action, reply
from shareflow.api.views import jobs as view
from shareflow.domain import states
from shareflow.exceptions import InvalidInput

#: Every state a job can be shown in (``stalled`` included).
JOB_STATES = states.JOB_STATES


def _states(raw) -> list[str] | None:
    if raw is None:
        return None
    values = raw if isinstance(raw, list) else [raw]
    wanted = []
    for value in values:
        for name in value.split(","):
            if name not in JOB_STATES:
                raise InvalidInput(f"Invalid state filter {name[:64]!r}; "
                                   f"expected one of: {', '.join(sorted(JOB_STATES))}.")
            wanted.append(name)
    return wanted


class Jobs(Resource):
    POLICY = {"on_get": "job:index"}

    def on_get(self, req, resp) -> None:
        q = qp.flatten(req.params)
        text = {k: qp.text(q[k], k) for k in ("operation", "resource_id", "project_id") if k in q}
        with_count = qp.boolean(q["with_count"], "with_count") if "with_count" in q else False
        listing = self.services.jobs.listing(
            caller=caller(req), states_in=_states(req.params.get("state")), operation=text.get("operation"),
            resource_id=text.get("resource_id"), project_id=text.get("project_id"),
            limit=qp.limit(q.get("limit")), offset=qp.offset(q.get("offset")),
        )
        reply(resp, view.list_view(listing, self.view_context(req), with_count=with_count))


class Job(Resource):
    POLICY = {"on_get": "job:show"}

    def on_get(self, req, resp, job_id: str) -> None:
        shown = self.services.jobs.show(job_id, caller=caller(req), live=True)
        reply(resp, {"job": view.detail(shown, self.view_context(req))})


class JobActions(Resource):
    """Each action is a conditional transition in the service: of two
    operators acting on one job, one gets the 202 and the other a 409."""

    POLICY = {"on_post": PER_ACTION}

    def __init__(self, config, services):
        super().__init__(config, services)
        self.actions: Actions = {
            "resume": Action("2.0", None, self._resume, "job:resume"),
            "retry": Action("2.0", None, self._retry, "job:retry"),
            "cancel": Action("2.0", None, self._cancel, "job:cancel"),
        }

    def on_post(self, req, resp, job_id: str) -> None:
        dispatch_action(req, resp, job_id, self.actions, kind="Job")

    def _resume(self, req, resp, job_id, info) -> None:
        self._steer(req, resp, job_id, "resume", info)

    def _retry(self, req, resp, job_id, info) -> None:
        self._steer(req, resp, job_id, "retry", info)

    def _cancel(self, req, resp, job_id, info) -> None:
        self._steer(req, resp, job_id, "cancel", info)

    def _steer(self, req, resp, job_id: str, action: str, info) -> None:
        who = caller(req)
        # Manila's argument-less actions (force_delete) take null; an empty
        # object is what some clients send for "nothing".
        if info is not None and info != {}:
            raise InvalidInput(f"Invalid body for {action}: it takes no arguments (null).")
        steered = getattr(self.services.jobs, action)(job_id, who)
        shown = self.services.jobs.show(steered.id, caller=who, live=True)
        reply(resp, {"job": view.detail(shown, self.view_context(req))}, status=202)
