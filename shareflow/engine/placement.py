"""Handing a share to a pool: the placement shared by the API's create
(``shareflow.services.shares``, ``[scheduler] placement = "api"``, the
default), the ``schedule_share`` job of conductor placement
(``shareflow.tasks.scheduling``, ``placement = "conductor"``) and a
reschedule (``shareflow.engine.reschedule``).

* :func:`choose` - the filter scheduler's pool for a new share: its type, the
  pool of the snapshot it is made from, its scheduler hints (affinity from its
  metadata, ``only_host``), the availability zone asked for, and its share
  group's pool (``place_in_group``). NoValidHost when none passes;
  :func:`fail_unplaced` then fails the share with Manila's "allocate host"
  user message (the filter's detail id), in the caller's transaction.
* :func:`move_and_record` - in the caller's transaction, move the share to
  the chosen pool (``host`` and ``backend``, conditionally: only while it is
  ``creating`` on ``from_host``, None for a share not placed yet) and record
  the ``create_share`` job that makes it there, linked by ``retry_of`` to the
  job it follows (the scheduling job, or the failed attempt; None for the
  API's first attempt: the create's only job), so that ``GET /v2/jobs/{id}``
  and ``shareflow jobs show`` of any of them list the chain. The share's pool
  allocation follows the ``host`` column (database triggers,
  ``shareflow.db.quotas``): counted once it is placed, moved with it, given
  back when it is deleted.
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
  (The API posts its create job as it posts every other operation's:
  ``JobPoster.post_or_undo``.)
"""

from __future__ import annotations

import dataclasses
import logging

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow import exceptions as exc
from shareflow.db import jobs as jobs_db
from shareflow.db import messages as messages_db
from shareflow.db import resources
from shareflow.db import shares as shares_db
from shareflow.db import snapshots as snapshots_db
from shareflow.db.models import Job, Share, ShareGroup, ShareType
from shareflow.domain import states
from shareflow.engine import checkpoints, operations
from shareflow.engine.outcomes import MESSAGE_RESOURCE_SHARE
from shareflow.engine.posting import JobPoster, JobSpec, spec_of
from shareflow.scheduler.scheduler import Placement, Scheduler, request_spec
from shareflow.services import scheduler_hints
from shareflow.services.share_groups import place_in_group

LOG = logging.getLogger(__name__)

CREATE = "create_share"
#: The store key listing the pools earlier attempts ran on.
TRIED_POOLS = "tried_pools"
#: The operation whose statuses and "allocate host" action a share no pool
#: takes is failed by (whoever placed it: the API or a scheduling job).
SCHEDULE = "schedule_share"
#: Manila's "allocate host" action.
ACTION_ALLOCATE_HOST = "001"


def allocate_host_message(error: exc.NoValidHost) -> str:
    """Manila's user message for a share no pool could take: the action's
    name, then what the scheduler said (which filter did not succeed)."""
    return f"allocate host: {error.user_message}"


def _snapshot_host(session, share: Share) -> str | None:
    """The pool of the share a snapshot was taken of (where a share made
    from it must be: CreateFromSnapshotFilter)."""
    snapshot = snapshots_db.get_any(session, share.snapshot_id)
    parent = shares_db.get_any(session, snapshot.share_id) if snapshot is not None else None
    where = Placement.of_share(parent) if parent is not None else None
    return where.host if where is not None else None


def choose(session: Session, share: Share, scheduler: Scheduler, *, availability_zone: str | None = None,
           only_host: str | None = None) -> Placement:
    """The pool for the new, unplaced ``share`` (read in ``session``, with
    its metadata): the scheduler over the pools reported now, with the
    share's type, its snapshot's pool, its affinity hints (from its
    metadata, as Manila reads them back), ``only_host`` and the zone the
    request named (None: any); a share of a group only on its group's pool.
    Raises NoValidHost (logged) when no pool passes."""
    stype = session.get(ShareType, share.share_type_id) if share.share_type_id else None
    snapshot_host = _snapshot_host(session, share) if share.snapshot_id else None
    same_host, different_host = scheduler_hints.resolve(session, share.metadata_dict())
    spec = request_spec(size_gb=share.size, share_proto=share.share_proto, share_type=stype,
                        availability_zone=availability_zone, snapshot_host=snapshot_host,
                        same_host=same_host, different_host=different_host, only_host=only_host)
    try:
        if share.snapshot_id and snapshot_host is None:
            raise exc.NoValidHost(f"the snapshot's share has no pool ({share.snapshot_id})")
        group = session.get(ShareGroup, share.share_group_id) if share.share_group_id else None
        return place_in_group(scheduler, session, spec, group) if group is not None else scheduler.place(session, spec)
    except exc.NoValidHost as e:
        LOG.info("share %s of %s GiB, type %s: %s", share.id, share.size, stype.name if stype else None, e)
        raise


def fail_unplaced(session: Session, share_id: str, error: exc.NoValidHost, *, now, project_id: str | None,
                  request_id: str | None) -> bool:
    """Manila's behaviour when no pool takes a new share: the share stays, in
    ``error`` (from ``creating``), with a message naming the filter that
    removed the last pools, to ``project_id``. Returns whether it moved (not
    when it left ``creating`` meanwhile: then nothing is written)."""
    if not resources.fail(session, states.operation(SCHEDULE), share_id, states.ERROR, now=now):
        return False
    messages_db.create(
        session, now=now, project_id=project_id, request_id=request_id, resource_type=MESSAGE_RESOURCE_SHARE,
        resource_id=share_id, action_id=ACTION_ALLOCATE_HOST, detail_id=error.detail_id,
        user_message=allocate_host_message(error),
    )
    return True


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


def move_and_record(session: Session, share: Share, placement: Placement, *, poster: JobPoster, now,
                    from_host: str | None, requested_by, retry_of: str | None,
                    tried: list[str] | None = None) -> Job | None:
    """Move ``share`` to ``placement`` and record its create job (see the
    module's docstring); None, with nothing changed, when the share is no
    longer ``creating`` on ``from_host`` (reset, deleted, or moved meanwhile).
    ``requested_by`` (the create's :class:`~shareflow.services.context.Caller`,
    or the job this one follows) gives the job's project, user and request
    ids; ``retry_of`` the job it follows (None: the create's first)."""
    recorded = move_and_record_spec(session, share, placement, poster=poster, now=now, from_host=from_host,
                                    requested_by=requested_by, retry_of=retry_of, tried=tried)
    return recorded[0] if recorded is not None else None


def move_and_record_spec(session: Session, share: Share, placement: Placement, *, poster: JobPoster, now,
                         from_host: str | None, requested_by, retry_of: str | None,
                         tried: list[str] | None = None) -> tuple[Job, JobSpec] | None:
    """:func:`move_and_record`, with the spec the job was recorded with (to
    post it after the commit without reading it back from its record)."""
    current = Share.host.is_(None) if from_host is None else Share.host == from_host
    moved = session.execute(
        sa.update(Share).where(Share.id == share.id, Share.status == states.CREATING,
                               Share.deleted_at.is_(None), current)
        .values(host=placement.host, backend=placement.backend_host, updated_at=now)
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
        CREATE, backend=placement.backend_host, resource_id=share.id, project_id=requested_by.project_id,
        factory_kwargs=create_kwargs(placement, from_snapshot=share.snapshot_id is not None), store=store,
    )
    spec = dataclasses.replace(spec, retry_of=retry_of, request_id=requested_by.request_id,
                               user_id=requested_by.user_id)
    return poster.record(session, spec), spec


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
