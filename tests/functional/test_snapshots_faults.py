"""A fault at each step of each snapshot flow (create_snapshot, delete_snapshot,
create_share from a snapshot, revert_to_snapshot) ends in the right status
with a user message naming the step, and leaves nothing behind on the backend
(no subvolume, qgroup, mount, export); what existed before is untouched."""

from __future__ import annotations

import os
import signal

import pytest
import sqlalchemy as sa

from shareflow.db.models import Message, Share
from tests.fixtures.stack import owner_pid, wait_until
from tests.functional.test_snapshots import (
    assert_share_left_nothing,
    assert_snapshot_left_nothing,
    export_of,
    names,
    snappy,  # noqa: F401 - fixture
    stale_qgroups,
    wait_gone,
    wait_rule_active,
    wait_snapshot,
)

#: step of create_share (from a snapshot) -> the driver call that fails it
CLONE_STEPS = {
    "allocate_network": "allocate",
    "provide_share_server": "provide",
    "create_volume_from_snapshot": "create_volume_from_snapshot",
    "export": "add_export",
    "apply_access": "update_access",
}


def revert_copies(stack) -> list[str]:
    """What the driver keeps of shares' content while reverting them."""
    path = stack.btrfs.mount_point / "reverts"
    return sorted(os.listdir(path)) if path.exists() else []


def messages_for(stack, resource_id: str) -> list[Message]:
    with stack.db.read() as s:
        return list(s.scalars(sa.select(Message).where(Message.resource_id == resource_id)
                              .order_by(Message.created_at)))


def the_message(stack, resource_id: str) -> Message:
    msgs = messages_for(stack, resource_id)
    assert len(msgs) == 1, [m.user_message for m in msgs]
    return msgs[0]


@pytest.fixture(scope="module")
def origin(stack, snappy):  # noqa: F811
    """A share with a file, an available snapshot of it, then a second file."""
    m = stack.manila(stack.token("tenant-snapfaults"))
    client = stack.nfs(2)
    share = m.shares.create("NFS", 1, share_type=snappy, name="fault-origin")
    share = stack.wait_for_share(m, share.id, {"available"})
    rule = m.shares.allow(share, "ip", client.address, "rw")
    wait_rule_active(m, rule["id"])
    export = export_of(m, share)
    assert client.put(f"{export}/before.txt", b"before\n").returncode == 0
    snap = wait_snapshot(m, m.share_snapshots.create(share).id, {"available"})
    assert client.put(f"{export}/after.txt", b"after\n").returncode == 0
    yield m, share, snap, client, export
    stack.clear_faults()
    m.share_snapshots.delete(snap)
    wait_gone(m.share_snapshots.get, snap.id)
    m.shares.delete(share)
    wait_gone(m.shares.get, share.id)


def test_fault_in_create_snapshot_leaves_it_error_and_nothing_behind(faults, snappy):  # noqa: F811
    stack = faults
    m = stack.manila(stack.token("tenant-snapfault-c"))
    share = stack.wait_for_share(m, m.shares.create("NFS", 1, share_type=snappy).id, {"available"})
    stack.set_faults({"create_snapshot": "fail"})
    snap = m.share_snapshots.create(share)
    snap = wait_snapshot(m, snap.id, {"available", "error"})
    assert snap.status == "error"
    msg = the_message(stack, snap.id)
    assert msg.user_message == "create: step 'create_snapshot' failed: injected fault at create_snapshot"
    assert (msg.resource_type, msg.action_id, msg.project_id) == ("SHARE_SNAPSHOT", "002", "tenant-snapfault-c")
    job = stack.finished_job(snap.id, "create_snapshot")
    assert (job.state, job.failed_step) == ("reverted", "create_snapshot")
    assert_snapshot_left_nothing(stack, snap.id)
    assert m.shares.get(share.id).status == "available"

    # The snapshot in error still holds the share; deleting it frees the share.
    stack.clear_faults()
    m.share_snapshots.delete(snap)
    wait_gone(m.share_snapshots.get, snap.id)
    m.shares.delete(share)
    wait_gone(m.shares.get, share.id)
    assert_share_left_nothing(stack, share.id)
    assert stale_qgroups(stack) == []


def test_fault_in_delete_snapshot_is_error_deleting_and_can_be_retried(faults, snappy):  # noqa: F811
    stack = faults
    m = stack.manila(stack.token("tenant-snapfault-d"))
    share = stack.wait_for_share(m, m.shares.create("NFS", 1, share_type=snappy).id, {"available"})
    snap = wait_snapshot(m, m.share_snapshots.create(share).id, {"available"})
    stack.set_faults({"delete_snapshot": "fail"})
    m.share_snapshots.delete(snap)
    snap = wait_snapshot(m, snap.id, {"error_deleting"})
    msg = the_message(stack, snap.id)
    assert msg.user_message == "delete: step 'delete_snapshot' failed: injected fault at delete_snapshot"
    assert msg.action_id == "007"
    assert snap.id in stack.backend().share.list_snapshots()  # nothing was deleted
    # error_deleting: only an admin's force_delete (or reset) takes it further.
    stack.clear_faults()
    stack.finished_job(snap.id, "delete_snapshot")
    stack.manila().share_snapshots.force_delete(snap)
    wait_gone(m.share_snapshots.get, snap.id)
    assert_snapshot_left_nothing(stack, snap.id)
    m.shares.delete(share)
    wait_gone(m.shares.get, share.id)
    assert stale_qgroups(stack) == []


@pytest.mark.parametrize("step,call", CLONE_STEPS.items())
def test_fault_at_each_step_of_a_share_from_snapshot_reverts_everything(faults, origin, step, call):
    stack = faults
    m, parent, snap, client, export = origin
    stack.set_faults({call: "fail"})
    clone = m.shares.create("NFS", 1, snapshot_id=snap.id, name=f"clone-fault-{step}")
    clone = stack.wait_for_share(m, clone.id, {"available", "error"})
    assert clone.status == "error"
    msg = the_message(stack, clone.id)
    assert msg.user_message == f"create: step '{step}' failed: injected fault at {call}"
    job = stack.finished_job(clone.id, "create_share")
    assert (job.state, job.failed_step) == ("reverted", step)
    assert_share_left_nothing(stack, clone.id)
    assert stale_qgroups(stack) == []
    # The snapshot and its share are untouched.
    stack.clear_faults()
    assert m.share_snapshots.get(snap.id).status == "available"
    assert m.shares.get(parent.id).status == "available"
    assert names(client.ls(export)) == {"before.txt", "after.txt"}
    m.shares.delete(clone)
    wait_gone(m.shares.get, clone.id)
    assert_share_left_nothing(stack, clone.id)


def test_fault_in_revert_is_reverting_error_and_keeps_the_content(faults, origin):
    stack = faults
    m, share, snap, client, export = origin
    stack.set_faults({"revert_to_snapshot": "fail"})
    m.shares.revert_to_snapshot(share, snap)
    failed = stack.wait_for_share(m, share.id, {"available", "reverting_error"})
    assert failed.status == "reverting_error"
    assert m.share_snapshots.get(snap.id).status == "available"
    msg = [x for x in messages_for(stack, share.id) if x.action_id == "006"]
    assert [x.user_message for x in msg] == [
        "revert to snapshot: step 'revert_to_snapshot' failed: injected fault at revert_to_snapshot"]
    assert msg[0].resource_type == "SHARE"
    job = stack.finished_job(share.id, "revert_to_snapshot")
    assert (job.state, job.failed_step) == ("reverted", "revert_to_snapshot")
    assert names(client.ls(export)) == {"before.txt", "after.txt"}  # nothing reverted, nothing lost
    assert revert_copies(stack) == []

    # Once an admin hands the share back (here: straight in the database), the revert succeeds.
    stack.clear_faults()
    with stack.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == share.id).values(status="available"))
    m.shares.revert_to_snapshot(share, snap)
    assert stack.wait_for_share(m, share.id, {"available", "reverting_error"}).status == "available"
    assert names(client.ls(export)) == {"before.txt"}
    assert revert_copies(stack) == []


def test_killed_conductor_during_revert_is_resumed(faults, snappy):  # noqa: F811
    """SIGKILL the conductor inside the revert step: another one resumes the job
    and the share ends reverted, with no copy of its old content left."""
    stack = faults
    m = stack.manila(stack.token("tenant-snapkill"))
    client = stack.nfs(2)
    share = stack.wait_for_share(m, m.shares.create("NFS", 1, share_type=snappy).id, {"available"})
    rule = m.shares.allow(share, "ip", client.address, "rw")
    wait_rule_active(m, rule["id"])
    export = export_of(m, share)
    assert client.put(f"{export}/kept.txt", b"kept\n").returncode == 0
    snap = wait_snapshot(m, m.share_snapshots.create(share).id, {"available"})
    assert client.put(f"{export}/dropped.txt", b"dropped\n").returncode == 0

    stack.set_faults({"revert_to_snapshot": "hang"})
    m.shares.revert_to_snapshot(share, snap)
    victim = owner_pid(stack.job_inside(share.id, "revert_to_snapshot", "revert_to_snapshot"))
    os.kill(victim, signal.SIGKILL)
    stack.clear_faults()

    share = stack.wait_for_share(m, share.id, {"available", "reverting_error"}, timeout=60)
    assert share.status == "available", stack.log("pool")[-4000:]
    job = stack.finished_job(share.id, "revert_to_snapshot", timeout=60)
    assert job.state == "succeeded" and owner_pid(job) != victim
    assert m.share_snapshots.get(snap.id).status == "available"
    assert names(client.ls(export)) == {"kept.txt"}
    assert revert_copies(stack) == []
    wait_until(lambda: len(stack.worker_pids()) == 2 and victim not in stack.worker_pids(), 30,
               "the pool to restart the killed worker")

    m.share_snapshots.delete(snap)
    wait_gone(m.share_snapshots.get, snap.id)
    m.shares.delete(share)
    wait_gone(m.shares.get, share.id)
    assert_share_left_nothing(stack, share.id)
