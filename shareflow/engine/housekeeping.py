"""Periodic work of the conductor workers that no job does.

A request commits its status change and its job record, then posts the job;
a process that dies between the two leaves a job that no conductor will ever
see and a resource in a transitional status. Such jobs are failed here, with
their resource and a user message, once they are clearly abandoned.

Share servers no share has used for their backend's
``unused_share_server_cleanup_interval`` get a delete_share_server job here
(Manila's periodic ``delete_free_share_servers``), unless
``automatic_share_server_cleanup`` is off.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from shareflow.db.engine import Database
from shareflow.db.models import Job
from shareflow.domain import states
from shareflow.engine.outcomes import OutcomeRecorder

LOG = logging.getLogger(__name__)

NEVER_POSTED = "the request was interrupted before its job could be scheduled"


def fail_unposted_jobs(db: Database, recorder: OutcomeRecorder, now, older_than: timedelta) -> int:
    """Fail jobs recorded more than ``older_than`` ago that never reached a board."""
    with db.read() as s:
        ids = list(s.scalars(
            sa.select(Job.id).where(
                Job.state == states.JOB_POSTED, Job.board_job_id.is_(None),
                Job.created_at < now - older_than,
            )
        ))
    for job_id in ids:
        LOG.warning("job %s was recorded but never posted; failing its resource", job_id)
        recorder.resource_failed(job_id, None, NEVER_POSTED)
        recorder.job_failed(job_id, None, NEVER_POSTED, trashed=True)
    return len(ids)


def delete_unused_share_servers(config, servers) -> list[str]:
    """Post deletes of the unused share servers of every DHSS=true backend
    (``servers`` is a :class:`~shareflow.services.share_servers.ShareServerService`)."""
    posted = []
    for backend in config.backends:
        if backend.driver_handles_share_servers:
            posted += servers.delete_unused(backend.name)
    return posted
