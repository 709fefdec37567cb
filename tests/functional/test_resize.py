"""Extend and shrink on the real stack (btrfs qgroups, NFS-Ganesha, ZooKeeper,
conductors), through python-manilaclient and openstacksdk: the limit changes
online and the data tells; a shrink below the data in use is refused without
losing anything; a fault at the resize step changes nothing on the backend;
a killed conductor's resize is finished by another; concurrent conflicting
requests leave the share consistent."""

from __future__ import annotations

import os
import signal

import pytest
from manilaclient import exceptions as mexc

from shareflow.exceptions import SHRINK_REFUSED_MESSAGE
from shareflow.engine.outcomes import DRIVER_FAILED_EXTEND
from tests.fixtures.stack import owner_pid, wait_until
from tests.functional.lifecycle_helpers import (
    SMALL,
    GiB,
    MiB,
    Tenant,
    exported,
    fill_to_limit,
    limit_of,
    messages_for,
    prefill,
    race,
    read_bytes,
    volume_dir,
)


@pytest.fixture
def tenant(faults):
    t = Tenant(faults, "resize")
    try:
        yield t
    finally:
        t.cleanup()


def test_extend_lets_a_write_past_the_old_size_through(tenant):
    stack, m = tenant.stack, tenant.m
    share = tenant.create(1)
    client = stack.nfs(0)
    tenant.allow(share, client)
    export = tenant.export_path(share)
    fill_to_limit(stack, share.id)
    data = os.urandom(SMALL)

    refused = client.put(f"{export}/past-1g.bin", data)
    assert refused.returncode != 0  # the 1 GiB limit is reached
    assert limit_of(stack, share.id) == GiB

    m.shares.extend(share, 2)
    extended = tenant.wait(share.id, {"available", "extending_error"})
    assert extended.status == "available" and extended.size == 2, messages_for(stack, share.id)
    assert stack.share_row(share.id).pending_size is None
    assert limit_of(stack, share.id) == 2 * GiB

    # Online: the same client, the same mount, and now the write goes through.
    written = client.put(f"{export}/past-1g.bin", data)
    assert written.returncode == 0, written.stderr
    assert read_bytes(client, f"{export}/past-1g.bin") == data
    # ... and so does more (bulk data on the storage host; see NFS_WRITE_MAX).
    prefill(stack, share.id, 256 * MiB, "more")
    assert client.put(f"{export}/more.bin", data).returncode == 0

    job = stack.finished_job(share.id, "extend_share")
    services = stack.services()
    try:
        steps = [(s.name, s.state) for s in services.jobs.show(job.id).steps]
    finally:
        services.close()
    assert job.state == "succeeded"
    assert steps == [("begin", "SUCCESS"), ("resize_volume", "SUCCESS"), ("finish", "SUCCESS")]
    assert not messages_for(stack, share.id)


def test_shrink_within_the_data_in_use(tenant):
    stack, m = tenant.stack, tenant.m
    share = tenant.create(2)
    client = stack.nfs(0)
    tenant.allow(share, client)
    export = tenant.export_path(share)
    assert client.put(f"{export}/small.txt", b"fits in one GiB\n").returncode == 0

    m.shares.shrink(share, 1)
    shrunk = tenant.wait(share.id, {"available", "shrinking_error", "shrinking_possible_data_loss_error"})
    assert shrunk.status == "available" and shrunk.size == 1
    assert stack.share_row(share.id).pending_size is None
    assert limit_of(stack, share.id) == GiB
    assert client.cat(f"{export}/small.txt").stdout == "fits in one GiB\n"
    # The new limit holds over NFS.
    assert fill_to_limit(stack, share.id) < GiB
    assert client.put(f"{export}/too-much.bin", os.urandom(SMALL)).returncode != 0


def test_shrink_below_the_data_in_use_is_refused_and_loses_nothing(tenant):
    stack, m = tenant.stack, tenant.m
    share = tenant.create(2)
    client = stack.nfs(0)
    tenant.allow(share, client)
    export = tenant.export_path(share)
    payload = os.urandom(SMALL)
    assert client.put(f"{export}/precious.bin", payload).returncode == 0
    prefill(stack, share.id, GiB + 128 * MiB, "bulk")

    m.shares.shrink(share, 1)
    refused = tenant.wait(share.id, {"available", "shrinking_error", "shrinking_possible_data_loss_error"})
    assert refused.status == "shrinking_possible_data_loss_error"
    row = stack.share_row(share.id)
    assert (row.size, row.pending_size) == (2, None)
    assert limit_of(stack, share.id) == 2 * GiB  # unchanged
    (message,) = messages_for(stack, share.id)
    assert (message.action_id, message.detail_id, message.project_id) == ("009", "018", tenant.project)
    assert message.user_message.startswith("shrink: step 'resize_volume' failed: ")
    assert "GiB of data is in use, more than the requested 1 GiB" in message.user_message
    assert message.user_message.endswith(SHRINK_REFUSED_MESSAGE)
    assert stack.finished_job(share.id, "shrink_share").failed_step == "resize_volume"

    # Still exported, readable and writable over NFS; nothing lost.
    assert exported(stack, share.id)
    assert read_bytes(client, f"{export}/precious.bin") == payload
    assert client.put(f"{export}/after.txt", b"still usable\n").returncode == 0
    assert client.cat(f"{export}/after.txt").stdout == "still usable\n"
    assert os.path.getsize(volume_dir(stack, share.id) / "bulk") == GiB + 128 * MiB

    # As Manila: from this status the share may be shrunk again - refused
    # while the data does not fit, done once it does.
    m.shares.shrink(share, 1)
    again = tenant.wait(share.id, {"available", "shrinking_possible_data_loss_error"}, timeout=30)
    stack.finished_job(share.id, "shrink_share")
    assert again.status == "shrinking_possible_data_loss_error" and again.size == 2
    (volume_dir(stack, share.id) / "bulk").unlink()
    m.shares.shrink(share, 1)
    wait_until(lambda: stack.share_row(share.id).status == "available", 30, "the retried shrink")
    assert stack.share_row(share.id).size == 1 and limit_of(stack, share.id) == GiB
    assert client.cat(f"{export}/after.txt").stdout == "still usable\n"


@pytest.mark.parametrize("operation,size,new_size,failed,action,detail", [
    ("extend", 1, 2, "extending_error", "008", "015"),
    ("shrink", 2, 1, "shrinking_error", "009", "001"),
])
def test_fault_at_the_resize_step_changes_nothing(tenant, operation, size, new_size, failed, action, detail):
    stack, m, admin = tenant.stack, tenant.m, tenant.admin
    share = tenant.create(size)
    client = stack.nfs(1)
    tenant.allow(share, client)
    export = tenant.export_path(share)
    assert client.put(f"{export}/data.txt", b"before\n").returncode == 0

    stack.set_faults({"resize_volume": "fail"})
    getattr(m.shares, operation)(share, new_size)
    result = tenant.wait(share.id, {"available", failed})
    assert result.status == failed
    job = stack.finished_job(share.id, f"{operation}_share")
    assert (job.state, job.failed_step) == ("reverted", "resize_volume")
    (message,) = messages_for(stack, share.id)
    assert (message.action_id, message.detail_id) == (action, detail)
    text = message.user_message
    assert text.startswith(f"{operation}: step 'resize_volume' failed: injected fault at resize_volume"), text
    if operation == "extend":
        assert text.endswith(DRIVER_FAILED_EXTEND)  # Manila's detail 015
    row = stack.share_row(share.id)
    assert (row.size, row.pending_size) == (size, None)
    # Nothing changed on the backend: the same limit, the same data, still exported.
    assert limit_of(stack, share.id) == size * GiB
    assert exported(stack, share.id) and client.cat(f"{export}/data.txt").stdout == "before\n"

    # Members cannot retry from the error status; an admin resets it, then it works.
    stack.clear_faults()
    with pytest.raises(mexc.BadRequest):
        getattr(m.shares, operation)(share, new_size)
    with pytest.raises(mexc.Forbidden):
        m.shares.reset_state(share, "available")
    admin.shares.reset_state(share, "available")
    assert m.shares.get(share.id).status == "available"
    getattr(m.shares, operation)(share, new_size)
    done = tenant.wait(share.id, {"available", failed})
    assert stack.finished_job(share.id, f"{operation}_share").state == "succeeded"
    assert done.size == new_size and limit_of(stack, share.id) == new_size * GiB


def test_killed_conductor_resize_is_finished_by_another(tenant):
    stack, m = tenant.stack, tenant.m
    share = tenant.create(1)
    stack.set_faults({"resize_volume": "hang"})
    m.shares.extend(share, 3)
    victim = owner_pid(stack.job_inside(share.id, "extend_share", "resize_volume"))
    assert m.shares.get(share.id).status == "extending"
    os.kill(victim, signal.SIGKILL)
    stack.clear_faults()
    done = tenant.wait(share.id, {"available", "extending_error"}, timeout=60)
    job = stack.finished_job(share.id, "extend_share", timeout=60)
    assert done.status == "available" and done.size == 3, stack.log("pool")[-4000:]
    assert job.state == "succeeded" and owner_pid(job) != victim
    assert limit_of(stack, share.id) == 3 * GiB
    assert stack.share_row(share.id).pending_size is None
    wait_until(lambda: len(stack.worker_pids()) == 2 and victim not in stack.worker_pids(), 30,
               "the pool to restart the killed worker")


@pytest.mark.parametrize("round_", range(3))
def test_extend_and_delete_at_once_one_wins(tenant, round_):
    stack, m = tenant.stack, tenant.m
    share = tenant.create(1)
    outcomes = race(stack, {"extend": lambda: m.shares.extend(share.id, 2),
                             "delete": lambda: m.shares.delete(share.id)},
                     hold=("resize_volume", "delete_volume"))
    assert sorted(outcomes.values()) in (["BadRequest", "accepted"], ["Forbidden", "accepted"]), outcomes
    backend = stack.backend()
    if outcomes["extend"] == "accepted":
        assert outcomes["delete"] == "Forbidden"  # Manila: a busy share cannot be deleted
        done = tenant.wait(share.id, {"available", "extending_error"})
        assert done.status == "available" and done.size == 2
        assert limit_of(stack, share.id) == 2 * GiB
    else:
        assert outcomes["extend"] == "BadRequest"  # Manila: status must be 'available' to extend
        wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the delete")
        assert share.id not in backend.share.list_volumes()
        assert not exported(stack, share.id)
    row = stack.share_row(share.id)
    assert row.status in ("available", "deleted") and row.pending_size is None


def test_extend_and_shrink_at_once_one_wins(tenant):
    stack, m = tenant.stack, tenant.m
    share = tenant.create(2)
    outcomes = race(stack, {"extend": lambda: m.shares.extend(share.id, 3),
                             "shrink": lambda: m.shares.shrink(share.id, 1)},
                     hold=("resize_volume",))
    assert sorted(outcomes.values()) == ["BadRequest", "accepted"], outcomes
    expected = 3 if outcomes["extend"] == "accepted" else 1
    done = tenant.wait(share.id, {"available", "extending_error", "shrinking_error"})
    assert done.status == "available" and done.size == expected
    assert limit_of(stack, share.id) == expected * GiB


def test_resize_through_openstacksdk(tenant):
    import openstack

    stack = tenant.stack
    share = tenant.create(1)
    # The SDK's Share has no microversion of its own, and the plain action
    # names exist from 2.7 (as in Manila): say which one to speak.
    conn = openstack.connect(auth_type="admin_token",
                             auth={"endpoint": stack.url, "token": stack.token(tenant.project)},
                             shared_file_system_default_microversion="2.65")
    try:
        conn.shared_file_system.resize_share(share.id, 2)
        wait_until(lambda: stack.share_row(share.id).status == "available" and stack.share_row(share.id).size == 2,
                   30, "the extend")
        assert limit_of(stack, share.id) == 2 * GiB
        conn.shared_file_system.resize_share(share.id, 1)
        wait_until(lambda: stack.share_row(share.id).status == "available" and stack.share_row(share.id).size == 1,
                   30, "the shrink")
        assert conn.shared_file_system.get_share(share.id).size == 1
        assert limit_of(stack, share.id) == GiB
        assert [z.name for z in conn.shared_file_system.availability_zones()] == ["nova"]
    finally:
        conn.close()
