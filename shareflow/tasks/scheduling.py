"""Placing a new share in a job of its own: the steps of a ``schedule_share`` job.

Run when ``[scheduler] placement = "conductor"``: the API creates the share
``creating`` with no ``host`` (as Manila does: the host is empty until the
scheduler has chosen) and posts a ``schedule_share`` job to the scheduler's
board, which the conductors of every host serve. The conductor that claims it
runs the filter scheduler with its own ``[scheduler]`` over the pools
reported now, then hands the share to the chosen pool's host
(``shareflow.engine.placement``). With ``placement = "api"`` (the default)
the API does the same choice and hand-over itself, in the create's
transaction, and posts no scheduling job (``shareflow.services.shares``);
conductors still run the ``schedule_share`` jobs posted before (an upgrade,
or a change of the setting), whatever their own setting says.

Job identity: the scheduling job and each create attempt are job rows of
their own (each on its own board, with its own logbook), chained by
``retry_of``: the first ``create_share`` job follows the ``schedule_share``
job, a rescheduled attempt follows the failed one. ``GET /v2/jobs/{id}`` and
``shareflow jobs show`` of any of them list the whole chain, oldest first,
with the board each ran on (``scheduler``, then ``host@backend``).
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from taskflow import task

from shareflow import exceptions as exc
from shareflow.db import jobs as jobs_db
from shareflow.db import shares as shares_db
from shareflow.db.models import Job, Share
from shareflow.domain import states
from shareflow.engine import checkpoints, placement
from shareflow.scheduler.scheduler import Scheduler

LOG = logging.getLogger(__name__)

OPERATION = "schedule_share"
PLACE = "place_share"
POST = "post_create"


def scheduler_checkpoints(runtime) -> checkpoints.Checkpoints:
    """The test checkpoints of this host's scheduler conductors (none unless
    ``[scheduler] fault_plan`` is set)."""
    return checkpoints.Checkpoints(runtime.config.scheduler.fault_plan,
                                   hang_limit=runtime.config.conductor.step_timeout)


class PlaceShare(task.Task):
    """Choose the share's pool and hand the share to it, in one transaction:
    the share's ``host``/``backend`` set (only while it is still ``creating``
    and unplaced) and its ``create_share`` job recorded, linked to this job
    (the choice and the hand-over are the API's too:
    ``shareflow.engine.placement``). A share from a snapshot can only go to
    its snapshot's pool, a share of a share group to its group's
    (``place_in_group``). When no pool passes the filters the share is
    ``error`` with Manila's "allocate host" user message (the filter's detail
    id), in the same transaction, and the step fails with NoValidHost.
    Resumed after it had committed, it finds the create job by its link and
    returns it: a share is never placed twice.

    Revert: a create job recorded here that no conductor has started is
    withdrawn and the share unplaced again (host cleared, so its pool's
    allocation is given back) in one transaction; one already running is
    left to finish the share; nothing when this step recorded nothing.
    """

    def __init__(self):
        super().__init__(name=PLACE, provides="create_job_id")

    def execute(self, runtime, job_id, share_id, availability_zone=None, only_host=None):
        no_valid_host: exc.NoValidHost | None = None
        with runtime.db.write() as s:
            job, recorded = placement.with_following(s, job_id)  # one statement
            if recorded is not None:
                return recorded.id
            share = shares_db.for_placement(s, share_id)
            if share is None or share.deleted_at is not None or share.status != states.CREATING \
                    or share.host is not None:
                status = "deleted" if share is None or share.deleted_at is not None else share.status
                raise exc.ResourceStateChanged(
                    f"share {share_id} is {status} on {share.host if share else None}, not creating unplaced",
                    user_message=f"the share changed status to {status} before it was placed")
            try:
                # The create's scheduler_hints: affinity from the share's
                # metadata (loaded with the share), only_host from the job.
                chosen = placement.choose(s, share, Scheduler.from_config(runtime.config, clock=runtime.clock),
                                          availability_zone=availability_zone, only_host=only_host)
            except exc.NoValidHost as e:
                no_valid_host = e
                placement.fail_unplaced(s, share.id, e, now=runtime.clock(),
                                        project_id=job.project_id or share.project_id, request_id=job.request_id)
            else:
                created = placement.move_and_record(s, share, chosen, poster=runtime.poster, now=runtime.clock(),
                                                    from_host=None, requested_by=job, retry_of=job.id)
                # The share's row was read in this transaction and held
                # (SQLite's writes are serial; elsewhere the update's guard).
                if created is None:
                    raise exc.ResourceStateChanged(f"share {share_id} changed while it was placed",
                                                   user_message="the share changed status before it was placed")
                LOG.info("share %s placed on %s (job %s)", share.id, chosen.host, created.id)
                return created.id
        raise no_valid_host

    def revert(self, runtime, job_id, share_id, result=None, **kwargs):
        if not isinstance(result, str):
            return  # failed (or never ran): nothing recorded by this step
        with runtime.db.write() as s:
            created = s.get(Job, result)
            if created is None:
                return  # withdrawn already (this revert resumed)
            if created.board_job_id is not None or not jobs_db.withdraw(s, created.id):
                # Posted, or a conductor runs it already: it finishes the share.
                return
            s.execute(sa.update(Share).where(Share.id == share_id, Share.status == states.CREATING,
                                             Share.backend == created.backend)
                      .values(host=None, backend=None, updated_at=runtime.clock())
                      .execution_options(synchronize_session=False))


class PostCreate(task.Task):
    """Post the create job :class:`PlaceShare` recorded to the chosen pool's
    ``host@backend`` board, unless it was posted already (this step resumed)
    or given up on unposted by the housekeeping (which failed the share).
    Its start is not written (``shareflow.engine.storage.unrecorded_start``):
    it has nothing to revert and posts at most once however often it runs,
    and :class:`PlaceShare` run again before it (its SUCCESS is written with
    this step's) finds the job it recorded.

    Revert: nothing - a post is not taken back; the create job it posted runs
    the share's create flow, which reverts itself when it fails.
    """

    unrecorded_start = True

    def __init__(self):
        super().__init__(name=POST)

    def execute(self, runtime, job_id, create_job_id):
        placement.post_following(runtime, job_id, scheduler_checkpoints(runtime), checkpoints.PLACED)
