"""API placement, the default (``[scheduler] placement = "api"``), on the real
stack: one job per create.

The API places the share in the POST's transaction and records its one
``create_share`` job on the chosen pool's ``host@backend`` board, first of
its chain; no ``schedule_share`` job exists. A share no pool takes is
``error`` in the create's answer with Manila's allocate-host message and no
job at all. (Conductor placement, the two-job create, is
``test_scheduling``; a create whose post fails, ``tests/api/test_placement``.)
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from shareflow.db.models import Job
from shareflow.domain import states
from tests.fixtures.stack import BACKEND, STACK_HOST, wait_until
from tests.functional.test_operations import messages_for, shareflow_cli


def jobs_of(stack, share_id: str) -> list[Job]:
    with stack.db.read() as s:
        return list(s.scalars(sa.select(Job).where(Job.resource_id == share_id).order_by(Job.created_at)))


def create_where_no_pool_is(stack):
    """A tenant's create of a share whose type no pool matches: (the admin's
    client, the tenant's, the type, the share as the create answered)."""
    admin = stack.manila()
    suffix = uuid.uuid4().hex[:6]
    nowhere = admin.share_types.create(f"nowhere-{suffix}", spec_driver_handles_share_servers=False,
                                       extra_specs={"share_backend_name": "no-such-backend"})
    m = stack.manila(stack.token(f"tenant-{suffix}"))
    return admin, m, nowhere, m.shares.create("NFS", 1, share_type=nowhere.name)


def assert_allocate_host_message(m, share_id: str) -> None:
    """The tenant reads Manila's "allocate host" message, naming the filter."""
    (msg,) = m.messages.list(search_opts={"resource_id": share_id})
    assert (msg.action_id, msg.detail_id) == ("001", "008")
    assert msg.user_message == ("allocate host: No storage could be allocated for this share request, "
                                "Capabilities filter didn't succeed.")


def test_a_create_is_one_job_on_the_pool_it_was_placed_on(stack):
    assert stack.config.scheduler.placement == "api"
    admin = stack.manila()  # an admin's view shows the host
    pool = stack.config.backend(BACKEND).host(stack.config.host)
    share = admin.shares.create("NFS", 1, name=f"one-job-{uuid.uuid4().hex[:6]}")
    # Placed in the create's answer already.
    assert (share.status, share.host) == ("creating", pool)
    (job,) = jobs_of(stack, share.id)
    assert (job.operation, job.backend, job.retry_of, job.attempt) == (
        "create_share", f"{STACK_HOST}@{BACKEND}", None, 1)
    done = stack.wait_for_share(admin, share.id, {"available", "error"}, timeout=60)
    assert done.status == "available", messages_for(stack, share.id)
    finished = stack.finished_job(share.id, "create_share")
    assert finished.id == job.id and finished.state == states.JOB_SUCCEEDED
    assert [j.id for j in jobs_of(stack, share.id)] == [job.id]  # and no scheduling job, ever
    assert share.id in stack.backend().share.list_volumes()
    admin.shares.delete(share.id)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 60, "the share to be deleted")


def test_no_pool_is_error_in_the_answer_with_manilas_message_and_no_job(stack):
    admin, m, nowhere, share = create_where_no_pool_is(stack)
    assert share.status == "error"  # the API's scheduler decided, in the create
    assert admin.shares.get(share.id).host is None
    assert_allocate_host_message(m, share.id)
    assert jobs_of(stack, share.id) == []
    # No pool holds anything for it, and it counts against no quota.
    usage = shareflow_cli(stack, "db", "check-usage")
    assert usage.returncode == 0, usage.stdout + usage.stderr
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
    admin.share_types.delete(nowhere)
