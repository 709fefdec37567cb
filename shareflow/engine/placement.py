"""Handing a share to a pool: the conductor's half of placement, shared by
the first placement (``shareflow.tasks.scheduling``, the ``schedule_share``
job) and a reschedule (``shareflow.engine.reschedule``).

Both do the same three things, and only the guard on the share differs:

* :func:`move_and_record` - in the caller's transaction, move the share to
  the chosen pool (``host`` and ``backend``, conditionally: only while it is
  ``creating`` on ``from_host``, None for a share not placed yet) and record
  the ``create_share`` job that makes it there, linked by ``retry_of`` to the
  job it follows (the scheduling job, or the failed attempt), so that
  ``GET /v2/jobs/{id}`` and ``shareflow jobs show`` of any of them list the
  chain. The share's pool allocation follows the ``host`` column (database
  triggers, ``shareflow.db.quotas``): counted once it is placed, moved with
  it, given back when it is deleted.
* :func:`following` - the job recorded after ``job_id`` that way, found by
  its link: a resumed step finds what it recorded before it died instead of
  placing the share again.
* :func:`post_following` - post that job if it never was (a job given up by
  the housekeeping of unposted jobs meanwhile is left alone: its share was
  failed with it). When this worker's conductor of the chosen pool is idle
  the job is handed to it: posted already claimed for it, in one ZooKeeper
  transaction (``shareflow.engine.boards.ConductorJobBoard.post_claimed``).
  A worker that dies between the post and its record leaves the job on the
  board unrecorded; the step resumed elsewhere posts it again, and finds it
  there instead of posting a second one (``shareflow.engine.once``).
"""

from __future__ import annotations

import dataclasses
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db import jobs as jobs_db
from shareflow.db.models import Job, Share
from shareflow.domain import states
from shareflow.engine import checkpoints, operations
from shareflow.engine.posting import spec_of
from shareflow.scheduler.scheduler import Placement

LOG = logging.getLogger(__name__)

CREATE = "create_share"
#: The store key listing the pools earlier attempts ran on.
TRIED_POOLS = "tried_pools"


def following(session: Session, job_id: str) -> Job | None:
    """The ``create_share`` job recorded after ``job_id`` (by its ``retry_of``), if any."""
    return session.scalars(sa.select(Job).where(Job.retry_of == job_id, Job.operation == CREATE)
                           .order_by(Job.created_at)).first()


def with_following(session: Session, job_id: str) -> tuple[Job, Job | None]:
    """The job ``job_id`` and the create job recorded after it (as
    :func:`following`, None if none), in one statement: ``place_share``
    reads both first, and each is a round trip on PostgreSQL. The job found
    by the jobboard's id instead (as ``jobs.get`` also accepts) costs the
    second statement it always did."""
    rows = session.scalars(sa.select(Job).where(
        sa.or_(Job.id == job_id, sa.and_(Job.retry_of == job_id, Job.operation == CREATE))
    ).order_by(Job.created_at)).all()
    own = next((j for j in rows if j.id == job_id), None)
    after = next((j for j in rows if j.id != job_id), None)
    return (own if own is not None else jobs_db.get(session, job_id)), after


def handed_over(runtime, job_id: str) -> bool:
    """Whether the scheduling job ``job_id`` left a create job that runs (or
    will): then the share is that job's, and a failure of the scheduling job
    must not fail the share."""
    with runtime.db.read_one() as s:
        return following(s, job_id) is not None


def create_kwargs(placement: Placement, *, from_snapshot: bool = False) -> dict:
    """The create flow's factory arguments for a share on ``placement``."""
    from shareflow.flows.delete_share import share_flow_kwargs

    return {**({"from_snapshot": True} if from_snapshot else {}), **share_flow_kwargs(placement)}


def move_and_record(runtime, session: Session, share: Share, placement: Placement, *, after: Job,
                    from_host: str | None, tried: list[str] | None = None) -> Job | None:
    """Move ``share`` to ``placement`` and record its create job (see the
    module's docstring); None, with nothing changed, when the share is no
    longer ``creating`` on ``from_host`` (reset, deleted, or moved meanwhile)."""
    current = Share.host.is_(None) if from_host is None else Share.host == from_host
    moved = session.execute(
        sa.update(Share).where(Share.id == share.id, Share.status == states.CREATING,
                               Share.deleted_at.is_(None), current)
        .values(host=placement.host, backend=placement.backend_host, updated_at=runtime.clock())
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        return None
    store = {"share_id": share.id, "size": share.size, "share_network_id": share.share_network_id}
    if share.snapshot_id is not None:
        store["snapshot_id"] = share.snapshot_id
    if tried is not None:
        store[TRIED_POOLS] = tried
    spec = operations.job_spec(
        CREATE, backend=placement.backend_host, resource_id=share.id, project_id=after.project_id,
        factory_kwargs=create_kwargs(placement, from_snapshot=share.snapshot_id is not None), store=store,
    )
    spec = dataclasses.replace(spec, retry_of=after.id, request_id=after.request_id, user_id=after.user_id)
    return runtime.poster.record(session, spec)


def post_following(runtime, job_id: str, points: checkpoints.Checkpoints, point: str) -> str | None:
    """Post the create job recorded after ``job_id`` unless it was posted
    already; its id, or None when there is none to run (never recorded, or
    given up on unposted). ``point`` is the test checkpoint passed between
    finding it and posting it."""
    with runtime.db.read_one() as s:  # one statement
        job = following(s, job_id)
        if job is None:
            return None
        next_id, posted, state = job.id, job.board_job_id is not None, job.state
        s.expunge(job)
    if not posted and state != states.JOB_POSTED:
        # Recorded, never posted, and given up on (the housekeeping of
        # unposted jobs trashed it, failing its share, while this step
        # waited to be resumed): nothing runs it now.
        return None
    # A test holds (and kills) the conductor here: recorded, not yet posted.
    points.reach(point, job_id)
    if not posted:
        # Handed to this worker's conductor of the chosen pool when it is
        # idle: claimed in the post's transaction, it starts without the
        # board's watch and a claim (ShareflowConductor.idle). Posted at most
        # once: a post of an earlier run of this step whose answer was never
        # recorded is found on the board and recorded now
        # (shareflow.engine.once).
        # A test holds (and kills) the conductor at the second point too:
        # the job on the board (this board uuid), its record not saying so.
        # Its logbook was written with its record and is never written over
        # by a post (an earlier run of this step may have posted it, and a
        # conductor may be running its flow).
        runtime.poster.post(job, spec_of(job), hand_off=True,
                            posted=lambda board_uuid: points.reach(checkpoints.POSTED_UNRECORDED, board_uuid))
    return next_id
