"""Queries on our job records."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import Job, JobAction
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
    """A conductor claimed the job. A job being cancelled stays ``cancelling``
    (its new owner reverts it); only its owner is recorded."""
    if transition(
        session, Job, job_id, states.JOB, states.JOB_RUNNING, now=now, column="state",
        values={"owner": owner, "started_at": now},
    ):
        return True
    session.execute(
        sa.update(Job).where(Job.id == job_id, Job.state == states.JOB_CANCELLING)
        .values(owner=owner, started_at=now, updated_at=now).execution_options(synchronize_session=False)
    )
    return False


def state_of(session: Session, job_id: str) -> str | None:
    """The job's stored state (one small read: the conductors ask it before each step)."""
    return session.scalar(sa.select(Job.state).where(Job.id == job_id))


def steer(session: Session, job: Job, target: str, *, now: datetime, sources: frozenset[str],
          values: dict | None = None) -> bool:
    """The one conditional write of a steering action: ``job`` moves to
    ``target`` (with ``values``) only if it is still in one of ``sources``
    *and* at the attempt the caller read (``job.attempt``): of two operators
    steering the same job, one wins."""
    stmt = (
        sa.update(Job)
        .where(Job.id == job.id, Job.state.in_(sorted(sources)), Job.attempt == job.attempt)
        .values(state=target, updated_at=now, **(values or {}))
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def record_action(session: Session, job_id: str, action: str, *, now: datetime, from_state: str | None,
                  to_state: str | None, user_id: str | None = None, project_id: str | None = None,
                  request_id: str | None = None, note: str | None = None) -> JobAction:
    row = JobAction(job_id=job_id, action=action, from_state=from_state, to_state=to_state, user_id=user_id,
                    project_id=project_id, request_id=request_id, note=note, created_at=now)
    session.add(row)
    session.flush()
    return row


def actions(session: Session, job_id: str) -> list[JobAction]:
    """The job's steering history, oldest first."""
    return list(session.scalars(
        sa.select(JobAction).where(JobAction.job_id == job_id).order_by(JobAction.id)
    ))


def others_on_resource(session: Session, job: Job) -> list[Job]:
    """Jobs on the same resource recorded after ``job``, or still active."""
    q = sa.select(Job).where(
        Job.resource_id == job.resource_id, Job.id != job.id,
        sa.or_(Job.created_at > job.created_at, Job.state.in_(sorted(states.JOB_ACTIVE))),
    )
    return list(session.scalars(q))


def finish(
    session: Session, job_id: str, target: str, *, now: datetime,
    failed_step: str | None = None, failure: str | None = None, expected=None,
) -> bool:
    """The job ended in ``target`` (conditional; ``expected`` narrows the
    states it may end from)."""
    values: dict = {"finished_at": now}
    if failed_step is not None:
        values["failed_step"] = failed_step
    if failure is not None:
        values["failure"] = failure
    return transition(session, Job, job_id, states.JOB, target, now=now, column="state", values=values,
                      expected=expected)


def delete(session: Session, job_id: str) -> None:
    session.execute(sa.delete(Job).where(Job.id == job_id))
