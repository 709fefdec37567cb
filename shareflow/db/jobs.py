"""Queries on our job records."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db import listing
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


def _filtered(q, *, states_in=None, operation=None, resource_id=None, project_id=None):
    if states_in:
        q = q.where(Job.state.in_(sorted(states_in)))
    if operation:
        q = q.where(Job.operation == operation)
    if resource_id:
        q = q.where(Job.resource_id == resource_id)
    if project_id is not None:
        q = q.where(Job.project_id == project_id)
    return q


def list_(
    session: Session, *, states_in=None, operation: str | None = None, resource_id: str | None = None,
    project_id: str | None = None, limit: int | None = None, offset: int = 0,
) -> list[Job]:
    """Newest first (then by id, so that pages are stable); ``project_id``
    None means every project."""
    q = _filtered(sa.select(Job), states_in=states_in, operation=operation, resource_id=resource_id,
                  project_id=project_id)
    return listing.page(session, q, Job, sort_key="created_at", sort_dir="desc", limit=limit or None,
                        offset=offset)


def count(session: Session, **filters) -> int:
    """How many jobs :func:`list_` would give with these filters and no page."""
    return session.scalar(_filtered(sa.select(sa.func.count()).select_from(Job), **filters))


def attempts(session: Session, job: Job) -> list[Job]:
    """Every attempt of the operation ``job`` belongs to, oldest first: the
    jobs it retries (``retry_of``, followed back) and those that retry it."""
    chain, seen = [job], {job.id}
    # Back to the first attempt; ``seen`` guards against a hand-made cycle.
    current = job
    while current.retry_of and current.retry_of not in seen:
        current = session.get(Job, current.retry_of)
        if current is None:
            break
        chain.insert(0, current)
        seen.add(current.id)
    # Forward: one retry per job is the rule (a conditional transition), but
    # a record edited by hand may differ: follow every branch.
    frontier = [job.id]
    while frontier:
        later = list(session.scalars(sa.select(Job).where(Job.retry_of.in_(frontier))))
        later = [j for j in later if j.id not in seen]
        chain.extend(later)
        seen.update(j.id for j in later)
        frontier = [j.id for j in later]
    return sorted(chain, key=lambda j: (j.created_at, j.id))


def set_posted(session: Session, job_id: str, board_job_id: str, *, now: datetime) -> None:
    """Record the board job posted for it - unless a conductor has claimed
    the job since it was posted (or resumed): that claim recorded the board
    job it runs (:func:`set_running`), which this must not rename."""
    session.execute(sa.update(Job).where(Job.id == job_id, Job.owner.is_(None))
                    .values(board_job_id=board_job_id, updated_at=now)
                    .execution_options(synchronize_session=False))


def set_running(session: Session, job_id: str, owner: str, *, now: datetime,
                board_job_id: str | None = None) -> bool:
    """A conductor claimed the job, from board job ``board_job_id``: whether
    it is there to run. A job being cancelled stays ``cancelling`` (its new
    owner runs it to revert it); only its owner is recorded.

    One runner at a time. The first claim since the job was posted (or
    resumed: no owner recorded) records the board job it came from; a later
    claim runs it only if it comes from that same board job - its owner died,
    its lock went with its ZooKeeper session, and the board offered it again
    (running -> running). A claim of another board job for the same record
    (a second post: :mod:`shareflow.engine.once` prevents them, this is the
    fence should one exist all the same) is refused. The owner alone cannot
    tell: the database does not know whether the owner it records is alive,
    ZooKeeper's lock on one board job does. A record with no board job
    (claimed before claims recorded it) takes any. Without ``board_job_id``
    (unknown to the caller) only the state is checked."""
    params = {"b_job_id": job_id, "b_owner": owner, "b_now": now}
    with_board = board_job_id is not None
    if with_board:
        params["b_board_job_id"] = board_job_id
    if session.execute(_set_running_statement(with_board, cancelling=False), params).rowcount:
        return True
    return session.execute(_set_running_statement(with_board, cancelling=True), params).rowcount == 1


#: (with a board job, cancelling) -> set_running's UPDATE, built once with
#: bound parameters: building it per call was most of the call's CPU (each
#: claim makes one or two).
_SET_RUNNING: dict[tuple[bool, bool], sa.Update] = {}


def _set_running_statement(with_board: bool, *, cancelling: bool) -> sa.Update:
    stmt = _SET_RUNNING.get((with_board, cancelling))
    if stmt is not None:
        return stmt
    table = Job.__table__
    now = sa.bindparam("b_now", type_=table.c.started_at.type)
    values: dict = {"owner": sa.bindparam("b_owner", type_=table.c.owner.type), "started_at": now,
                    "updated_at": now}
    stmt = sa.update(Job).where(Job.id == sa.bindparam("b_job_id")).execution_options(synchronize_session=False)
    if with_board:
        board_job_id = sa.bindparam("b_board_job_id", type_=table.c.board_job_id.type)
        stmt = stmt.where(sa.or_(Job.owner.is_(None), Job.board_job_id.is_(None), Job.board_job_id == board_job_id))
        values["board_job_id"] = board_job_id
    if cancelling:
        # Stays cancelling (its new owner runs it to revert it).
        stmt = stmt.where(Job.state == states.JOB_CANCELLING)
    else:
        stmt = stmt.where(Job.state.in_(sorted(states.sources(states.JOB, states.JOB_RUNNING))))
        values["state"] = states.JOB_RUNNING
    stmt = _SET_RUNNING[(with_board, cancelling)] = stmt.values(**values)
    return stmt


def quiet_active(session: Session, backends, *, quiet_since: datetime) -> list[Job]:
    """Active jobs of ``backends`` that reached a board and whose record has
    not changed (posted, claimed, steered) since ``quiet_since``."""
    last = sa.func.coalesce(Job.updated_at, Job.created_at)
    return list(session.scalars(sa.select(Job).where(
        Job.state.in_(sorted(states.JOB_ACTIVE)), Job.backend.in_(sorted(backends)),
        Job.board_job_id.is_not(None), last < quiet_since,
        sa.or_(Job.started_at.is_(None), Job.started_at < quiet_since),
    )))


def locked(session: Session, job_id: str) -> Job | None:
    """The job's row as it is now, held by this transaction until it ends
    (``FOR UPDATE``; SQLite's write transactions are serial already)."""
    return session.scalars(
        sa.select(Job).where(Job.id == job_id).with_for_update().execution_options(populate_existing=True)
    ).one_or_none()


def has_action_since(session: Session, job_id: str, action: str, since: datetime) -> bool:
    return session.scalar(sa.select(sa.func.count()).select_from(JobAction).where(
        JobAction.job_id == job_id, JobAction.action == action, JobAction.created_at > since)) > 0


#: Built once: the conductors ask it before each step.
_STATE_OF = sa.select(Job.state).where(Job.id == sa.bindparam("job_id"))


def state_of(session: Session, job_id: str) -> str | None:
    """The job's stored state (one small read: the conductors ask it before
    each step). ``session`` may also be a Connection."""
    return session.scalar(_STATE_OF, {"job_id": job_id})


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


def drop_actions(session: Session, job_id: str, *, note: str | None = None) -> None:
    """Forget steering rows of ``job_id`` (those with ``note`` only, when
    given): of a retry whose new job could not be posted, nothing happened."""
    stmt = sa.delete(JobAction).where(JobAction.job_id == job_id)
    if note is not None:
        stmt = stmt.where(JobAction.note == note)
    session.execute(stmt)


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


def withdraw(session: Session, job_id: str) -> bool:
    """Delete a job that no conductor has started (still ``posted``), because
    the request that recorded it could not post it. False when a conductor
    marked it running first: then it runs and must not be undone."""
    stmt = sa.delete(Job).where(Job.id == job_id, Job.state == states.JOB_POSTED)
    return session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1
