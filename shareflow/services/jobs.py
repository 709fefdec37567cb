"""Job inspection for operators: our records joined with TaskFlow's atom states."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from taskflow import engines

from shareflow.db import jobs as jobs_db
from shareflow.db.engine import Database
from shareflow.db.models import Job
from shareflow.engine.persistence import make_persistence


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


class JobService:
    def __init__(self, db: Database):
        self._db = db
        self._persistence = make_persistence(db)

    def list(self, *, states_in=None, resource_id=None, limit=None) -> list[Job]:
        with self._db.read() as s:
            return jobs_db.list_(s, states_in=states_in, resource_id=resource_id, limit=limit)

    def show(self, job_id: str) -> JobView:
        with self._db.read() as s:
            job = jobs_db.get(s, job_id)
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
        return JobView(job=job, flow_state=flow_state, steps=steps)

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
