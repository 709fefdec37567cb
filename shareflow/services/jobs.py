"""Jobs for operators and their tenants: our records joined with TaskFlow's
atom states.

Who may see what: ``caller`` None is the operator on the service's own host
(the ``shareflow`` command, in-process tests) and sees everything; an admin
caller sees every project's jobs; a member sees only the jobs of their own
project, and another project's job does not exist for them (404, as any
other resource of another project)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import datetime

from taskflow import engines

from shareflow.db import jobs as jobs_db
from shareflow.db.engine import Database
from shareflow.db.models import Job
from shareflow.engine.persistence import make_persistence
from shareflow.exceptions import NotFound
from shareflow.services.context import Caller


@dataclass(frozen=True)
class StepView:
    name: str
    state: str
    duration: float | None
    failure: str | None


@dataclass(frozen=True)
class JobView:
    job: Job
    flow_state: str | None
    steps: list[StepView]
    #: Every attempt of the same operation, oldest first, this job included
    #: (jobs linked by ``retry_of``).
    attempts: list[Job] = field(default_factory=list)


class JobService:
    def __init__(self, db: Database):
        self._db = db
        self._persistence = make_persistence(db)

    def list(self, *, caller: Caller | None = None, states_in=None, operation: str | None = None,
             resource_id: str | None = None, project_id: str | None = None, limit: int | None = None,
             offset: int = 0) -> list[Job]:
        """Newest first. ``project_id`` filters for admins and operators; a
        member's list is their own project's whatever they ask."""
        with self._db.read() as s:
            return jobs_db.list_(s, **self._filters(caller, states_in, operation, resource_id, project_id),
                                 limit=limit, offset=offset)

    def count(self, *, caller: Caller | None = None, states_in=None, operation: str | None = None,
              resource_id: str | None = None, project_id: str | None = None) -> int:
        """How many jobs :meth:`list` finds, whatever the page."""
        with self._db.read() as s:
            return jobs_db.count(s, **self._filters(caller, states_in, operation, resource_id, project_id))

    @staticmethod
    def _filters(caller, states_in, operation, resource_id, project_id) -> dict:
        if caller is not None and not caller.is_admin:
            project_id = caller.project_id
        return {"states_in": states_in, "operation": operation, "resource_id": resource_id,
                "project_id": project_id}

    def get(self, job_id: str, *, caller: Caller | None = None) -> Job:
        with self._db.read() as s:
            return self._visible(jobs_db.get(s, job_id), caller, job_id)

    def show(self, job_id: str, *, caller: Caller | None = None) -> JobView:
        with self._db.read() as s:
            job = self._visible(jobs_db.get(s, job_id), caller, job_id)
            attempts = jobs_db.attempts(s, job)
        flow_state, steps = None, []
        with contextlib.closing(self._persistence.get_connection()) as conn:
            try:
                flow = conn.get_flow_details(job.flow_detail_id)
            except Exception:  # the logbook was never written (post failed) or was cleaned
                flow = None
        if flow is not None:
            flow_state = flow.state
            for atom in _in_flow_order(flow):
                failure = atom.failure or atom.revert_failure
                steps.append(StepView(
                    name=atom.name, state=atom.state,
                    duration=(atom.meta or {}).get("duration"),
                    failure=failure.exception_str if failure else None,
                ))
        return JobView(job=job, flow_state=flow_state, steps=steps, attempts=attempts)

    @staticmethod
    def _visible(job: Job, caller: Caller | None, job_id: str) -> Job:
        if caller is not None and not caller.is_admin and job.project_id != caller.project_id:
            raise NotFound(f"Job {job_id} could not be found.")
        return job

    @staticmethod
    def age(job: Job, now: datetime) -> float:
        return (now - job.created_at).total_seconds()


def _in_flow_order(flow_detail) -> list:
    """The flow's own atoms (not TaskFlow's store injector) in the order the
    flow runs them; the persisted details keep no order."""
    atoms = {a.name: a for a in flow_detail if not a.name.startswith("_TaskFlow_")}
    try:
        order = [atom.name for atom, _ in engines.flow_from_detail(flow_detail).iter_nodes()]
    except Exception:  # the factory no longer imports: fall back to storage order
        return list(atoms.values())
    return [atoms[n] for n in order if n in atoms]
