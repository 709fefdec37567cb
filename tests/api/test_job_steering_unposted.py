"""Steering a job whose new post cannot reach the board (ZooKeeper nowhere):
503 with nothing changed - the job record, the resource and the steering
history as they were."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from shareflow.db.models import Job, JobAction
from shareflow.domain import states
from shareflow.exceptions import ServiceUnavailable
from shareflow.services.context import Caller
from shareflow.system.ports import free_port
from shareflow.wiring import Services

ADMIN = Caller(project_id="admin", user_id="operator", is_admin=True)


def _job_of(api, share_id: str) -> Job:
    """The share's create job (its scheduling job, done, beside it)."""
    with api.services.db.read() as s:
        return s.scalars(sa.select(Job).where(Job.resource_id == share_id, Job.operation == "create_share")).one()


def _set(api, job_id: str, state: str) -> None:
    with api.services.db.write() as s:
        s.execute(sa.update(Job).where(Job.id == job_id).values(state=state))


@pytest.fixture
def nowhere(api):
    zk = dataclasses.replace(api.config.zookeeper, hosts=f"127.0.0.1:{free_port()}")
    services = Services(dataclasses.replace(api.config, zookeeper=zk))
    try:
        yield services
    finally:
        services.close()


@pytest.mark.parametrize("state,action", [(states.JOB_REVERTED, "retry"),
                                          (states.JOB_REVERT_FAILED, "resume")])
def test_a_steered_job_that_cannot_be_posted_changes_nothing(api, nowhere, state, action):
    share_id = api.create_share(token=api.tokens["alice"])["id"]
    job = _job_of(api, share_id)
    _set(api, job.id, state)  # as its conductor would have left it
    api.set_share_status(share_id, "error")
    with pytest.raises(ServiceUnavailable):
        getattr(nowhere.jobs, action)(job.id, ADMIN)
    after = _job_of(api, share_id)  # one job on it still: a retry's new one was withdrawn
    assert (after.id, after.state, after.attempt) == (job.id, state, 1)
    assert api.share_row(share_id).status == "error"
    actions = api.count(JobAction, job_id=job.id)
    # A failed resume is on the record (who tried, and why it did not take); a retry left nothing.
    assert actions == (2 if action == "resume" else 0)
