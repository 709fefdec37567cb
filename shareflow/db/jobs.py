"""Queries on our job records."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import Job
from shareflow.db.transitions import transition
from shareflow.domain import states
from shareflow.exceptions import NotFound


def create(session: Session, *, now: datetime, **fields) -> Job:
    job = Job(created_at=now, state=states.JOB_POSTED, **fields)
    session.add(job)
    session.flush()
    return job


def get(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        # Also accept the jobboard's own id: operators see that one in ZooKeeper.
        job = session.scalars(sa.select(Job).where(Job.board_job_id == job_id)).first()
    if job is None:
        raise NotFound(f"Job {job_id} could not be found.")
    return job


def list_(session: Session, *, states_in=None, resource_id=None, limit: int | None = None) -> list[Job]:
    q = sa.select(Job)
    if states_in:
        q = q.where(Job.state.in_(sorted(states_in)))
    if resource_id:
        q = q.where(Job.resource_id == resource_id)
    q = q.order_by(Job.created_at.desc(), Job.id)
    if limit:
        q = q.limit(limit)
    return list(session.scalars(q))


def set_posted(session: Session, job_id: str, board_job_id: str, *, now: datetime) -> None:
    session.execute(sa.update(Job).where(Job.id == job_id).values(board_job_id=board_job_id, updated_at=now))


def set_running(session: Session, job_id: str, owner: str, *, now: datetime) -> bool:
    return transition(
        session, Job, job_id, states.JOB, states.JOB_RUNNING, now=now, column="state",
        values={"owner": owner, "started_at": now},
    )


def finish(
    session: Session, job_id: str, target: str, *, now: datetime,
    failed_step: str | None = None, failure: str | None = None,
) -> bool:
    values: dict = {"finished_at": now}
    if failed_step is not None:
        values["failed_step"] = failed_step
    if failure is not None:
        values["failure"] = failure
    return transition(session, Job, job_id, states.JOB, target, now=now, column="state", values=values)


def withdraw(session: Session, job_id: str) -> bool:
    """Delete a job that no conductor has started (still ``posted``), because
    the request that recorded it could not post it. False when a conductor
    marked it running first: then it runs and must not be undone."""
    stmt = sa.delete(Job).where(Job.id == job_id, Job.state == states.JOB_POSTED)
    return session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1
