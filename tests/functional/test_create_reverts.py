"""A fault at each step of create_share leaves the share `error` with a user
message naming that step, and nothing behind on the backend."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shareflow.db.models import Message
from tests.fixtures.stack import wait_until

#: step (task name) -> the driver call the fault-injecting proxy fails
CREATE_STEPS = {
    "allocate_network": "allocate",
    "provide_share_server": "provide",
    "create_volume": "create_volume",
    "export": "add_export",
    "apply_access": "update_access",
}


def backend_is_clean(stack, share_id: str) -> None:
    backend = stack.backend()
    assert share_id not in backend.share.list_volumes()
    assert share_id not in backend.export.list_exports(backend.server.server_for(share_id))
    assert not (stack.btrfs.exports_dir / share_id).exists()
    with open("/proc/self/mountinfo") as f:
        assert share_id not in f.read()


@pytest.mark.parametrize("step,call", CREATE_STEPS.items())
def test_fault_at_each_step_reverts_everything(faults, step, call):
    stack = faults
    stack.set_faults({call: "fail"})
    m = stack.manila(stack.token("tenant-faults"))
    share = m.shares.create("NFS", 1, name=f"fault-{step}")
    share = stack.wait_for_share(m, share.id, {"available", "error"})
    assert share.status == "error"

    job = stack.finished_job(share.id)
    with stack.db.read() as s:
        messages = s.scalars(sa.select(Message).where(Message.resource_id == share.id)).all()
    assert len(messages) == 1, [msg.user_message for msg in messages]
    text = messages[0].user_message
    assert text.startswith("create: ") and f"step '{step}' failed" in text, text
    assert f"injected fault at {call}" in text
    assert messages[0].project_id == "tenant-faults" and messages[0].action_id == "002"
    assert (job.state, job.failed_step) == ("reverted", step)
    backend_is_clean(stack, share.id)

    # The failed share can be deleted, and that leaves nothing either.
    stack.clear_faults()
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
    backend_is_clean(stack, share.id)


def test_job_record_and_steps_of_a_success(stack):
    m = stack.manila(stack.token("tenant-steps"))
    share = m.shares.create("NFS", 1)
    stack.wait_for_share(m, share.id, {"available"})
    job = stack.finished_job(share.id)
    services = stack.services()
    try:
        view = services.jobs.show(job.id)
    finally:
        services.close()
    assert job.state == "succeeded" and job.owner and job.finished_at >= job.started_at
    assert [s.name for s in view.steps] == [
        "begin", "allocate_network", "provide_share_server", "create_volume", "export",
        "apply_access", "finish",
    ]
    assert all(s.state == "SUCCESS" and s.duration is not None for s in view.steps)
