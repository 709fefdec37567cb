"""Periodic work of the conductor workers that no job does.

A request commits its status change and its job record, then posts the job;
a process that dies between the two leaves a job that no conductor will ever
see and a resource in a transitional status. Such jobs are failed here, with
their resource and a user message, once they are clearly abandoned - unless
their board has them after all (the process died after the post, before
recording it: the post's marker says so, ``shareflow.engine.once``), which
are recorded instead.

A job that reached its board but that no live conductor has claimed for
``[conductor] stall_after`` (its board node deleted by hand, its conductors
all gone) is *reported* here, once per stall: a warning in the conductor's
log, a ``stalled`` row in the job's history saying which host found it and
why, and a user message for the resource's project saying the operation
waits for an administrator. Neither the job nor its resource is changed: an
operator decides (``shareflow jobs resume`` posts it again, ``cancel``
undoes it).

Share servers no share has used for their backend's
``unused_share_server_cleanup_interval`` get a delete_share_server job here
(Manila's periodic ``delete_free_share_servers``), unless
``automatic_share_server_cleanup`` is off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from shareflow.db import jobs as jobs_db
from shareflow.db import messages as messages_db
from shareflow.db.engine import Database
from shareflow.db.models import Job
from shareflow.domain import states
from shareflow.engine.outcomes import DETAIL_UNKNOWN, OutcomeRecorder, message_subject
from shareflow.engine.stalls import ClaimCheck, StallChecker
from shareflow.exceptions import ConfigError, CoordinationError

LOG = logging.getLogger(__name__)

NEVER_POSTED = "the request was interrupted before its job could be scheduled"
#: The history row (``job_actions.action``) of a stall the housekeeping found.
STALL_REPORTED = "stalled"


def fail_unposted_jobs(db: Database, recorder: OutcomeRecorder, now, older_than: timedelta, *,
                       posted_as: Callable[[str, str], str | None] | None = None) -> int:
    """Fail jobs recorded more than ``older_than`` ago that never reached a
    board. ``posted_as(backend, job_id)`` (``Boards.posted_as``) tells one
    that did, its poster having died before recording it
    (``shareflow.engine.once``): that one is recorded instead, and runs.
    One ZooKeeper cannot tell about (CoordinationError) waits for the next
    round: it may be on its board."""
    with db.read() as s:
        found = list(s.execute(
            sa.select(Job.id, Job.backend).where(
                Job.state == states.JOB_POSTED, Job.board_job_id.is_(None),
                Job.created_at < now - older_than,
            )
        ))
    failed = 0
    for job_id, backend in found:
        if posted_as is not None:
            try:
                board_job = posted_as(backend, job_id)
            except (CoordinationError, ConfigError) as error:
                LOG.warning("job %s looks unposted, but its board cannot be asked (%s); next round", job_id, error)
                continue
            if board_job is not None:
                LOG.warning("job %s is on its board as %s though its record did not say so; recorded",
                            job_id, board_job)
                with db.write() as s:
                    jobs_db.set_posted(s, job_id, board_job, now=now)
                continue
        LOG.warning("job %s was recorded but never posted; failing its resource", job_id)
        recorder.resource_failed(job_id, None, NEVER_POSTED)
        recorder.job_failed(job_id, None, NEVER_POSTED, trashed=True)
        failed += 1
    return failed


def report_stalled_jobs(db: Database, stalls: StallChecker, backends, *, host: str, now: datetime,
                        stall_after: float) -> list[str]:
    """Report each active job of ``backends`` that is stalled, once per
    stall (see the module's docstring); returns the ids reported now.

    Cheap: only records quiet for ``stall_after`` are looked at (one that
    changed since cannot have been unclaimed that long yet, or is looked
    at in a later round), and ZooKeeper is asked by the stall check alone:
    one listing per board, the claim of each job looked at. Raises
    CoordinationError when ZooKeeper cannot be asked."""
    with db.read() as s:
        jobs = jobs_db.quiet_active(s, backends, quiet_since=now - timedelta(seconds=stall_after))
    if not jobs:
        return []
    checks = stalls.check(jobs)
    return [job.id for job in jobs
            if (check := checks.get(job.id)) is not None and check.stalled
            and _report_stall(db, job, check, host=host, now=now)]


def _report_stall(db: Database, seen: Job, check: ClaimCheck, *, host: str, now: datetime) -> bool:
    """One transaction, holding the job's row: of the workers that found the
    same stall, the first reports it and the others see its history row. A
    stall is one span with nobody's claim, from ``check.unclaimed_since``
    (a new post or claim starts another)."""
    with db.write() as s:
        job = jobs_db.locked(s, seen.id)
        if job is None or (job.state, job.attempt, job.board_job_id) != (seen.state, seen.attempt,
                                                                         seen.board_job_id):
            return False  # steered or claimed meanwhile: what was checked no longer holds
        if jobs_db.has_action_since(s, job.id, STALL_REPORTED, check.unclaimed_since):
            return False
        op = states.OPERATIONS.get(job.operation)
        jobs_db.record_action(
            s, job.id, STALL_REPORTED, now=now, from_state=job.state, to_state=job.state,
            note=f"found stalled by housekeeping on {host}: {check.reason}; nothing was changed, "
                 f"an administrator resumes or cancels it",
        )
        subject = message_subject(s, op, job.resource_id) if op is not None else None
        if subject is not None:
            since = check.unclaimed_since.isoformat(sep=" ", timespec="seconds")
            messages_db.create(
                s, now=now, project_id=job.project_id or "", request_id=job.request_id,
                resource_type=subject[0], resource_id=subject[1], action_id=op.action_id,
                detail_id=DETAIL_UNKNOWN,
                user_message=f"{op.action}: waiting for an administrator: no service has worked on it "
                             f"since {since} UTC. It stays as it is until an administrator resumes "
                             f"job {job.id}.",
            )
    LOG.warning("job %s (%s on %s, %s) is stalled: %s; reported (history, user message). Resume it "
                "with: shareflow jobs resume %s", job.id, job.operation, job.resource_id, job.state,
                check.reason, job.id)
    return True


def delete_unused_share_servers(config, servers) -> list[str]:
    """Post deletes of the unused share servers of every DHSS=true backend
    (``servers`` is a :class:`~shareflow.services.share_servers.ShareServerService`)."""
    posted = []
    for backend in config.backends:
        if backend.driver_handles_share_servers:
            posted += servers.delete_unused(backend.name)
    return posted
