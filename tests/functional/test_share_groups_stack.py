"""Share groups on the real stack (btrfs, NFS-Ganesha, ZooKeeper, conductors)
through unmodified python-manilaclient: an admin makes a share group type, a
member a group of it with two shares on the group's one pool, writes to them
over NFS, snapshots the group (one read-only btrfs snapshot per member,
holding what was written), and deletes everything. A member whose snapshot
fails takes the others' back with it: the group snapshot ends ``error`` with
a user message and no snapshot left on the backend, and an operator's retry of
its job takes them all. A conductor killed inside the job leaves it to
another, which finishes it. On PostgreSQL, a share
created into a group and the group's delete cannot both win."""

from __future__ import annotations

import os
import signal
import uuid

import pytest
from manilaclient import exceptions as mexc

from shareflow.services.context import Caller
from tests.fixtures.stack import owner_pid, wait_until
from tests.functional.lifecycle_helpers import Tenant, race


@pytest.fixture
def tenant(faults):
    t = Tenant(faults, "groups")
    try:
        yield t
    finally:
        t.cleanup()


@pytest.fixture
def group_type(tenant):
    """A snapshot-capable share type and a group type of it (own handles, deleted last)."""
    admin = tenant.admin
    stype = admin.share_types.create(f"grp-{uuid.uuid4().hex[:6]}", spec_driver_handles_share_servers=False,
                                     spec_snapshot_support=True)
    gtype = admin.share_group_types.create(f"gt-{uuid.uuid4().hex[:6]}", [stype.name], is_public=True,
                                           group_specs={"consistent_snapshot_support": "pool"})
    yield stype, gtype
    tenant.cleanup()
    for group in admin.share_groups.list(search_opts={"all_tenants": 1, "share_group_type_id": gtype.id}):
        admin.share_groups.delete(group, force=True)
    admin.share_group_types.delete(gtype)
    admin.share_types.delete(stype)


def wait_group_snapshot(m, snapshot_id: str, statuses: set[str], timeout: float = 30):
    def check():
        snap = m.share_group_snapshots.get(snapshot_id)
        return snap if snap.status in statuses else None

    return wait_until(check, timeout, f"group snapshot {snapshot_id} to become one of {statuses}")


def wait_gone(get, ident: str, timeout: float = 30) -> None:
    def gone():
        try:
            get(ident)
        except mexc.NotFound:
            return True
        return False

    wait_until(gone, timeout, f"{ident} to be deleted")


def snapshot_path(stack, member_id: str):
    return stack.btrfs.mount_point / "snapshots" / member_id


def files_in(path) -> set[str]:
    return {name for _root, _dirs, files in os.walk(path) for name in files}


def test_group_of_two_shares_snapshot_and_delete(tenant, group_type):
    stack, m, admin = tenant.stack, tenant.m, tenant.admin
    stype, gtype = group_type
    assert gtype.share_types == [stype.id] and gtype.group_specs == {"consistent_snapshot_support": "pool"}
    # The experimental API as a 2.31 client calls it (it sends the header).
    old = stack.manila(stack.token(tenant.project), version="2.31")
    assert gtype.id in [t.id for t in old.share_group_types.list()]

    group = m.share_groups.create(share_group_type=gtype.id, share_types=[stype.id], name="pair")
    group = m.share_groups.get(group.id)
    assert group.status == "available" and group.share_types == [stype.id]
    pool = admin.share_groups.get(group.id).host
    assert pool and pool.count("@") == 1 and "#" in pool

    client = stack.nfs(0)
    shares = []
    for i in range(2):
        share = tenant.create(share_type=stype.id, share_group_id=group.id, name=f"member-{i}")
        assert share.share_group_id == group.id
        assert admin.shares.get(share.id).host == pool
        tenant.allow(share, client)
        assert client.put(f"{tenant.export_path(share)}/file-{i}.txt", f"member {i}\n".encode()).returncode == 0
        shares.append(share)
    # A group with shares is not deleted.
    with pytest.raises(mexc.Conflict):
        m.share_groups.delete(group)

    gsnap = m.share_group_snapshots.create(group, name="both")
    gsnap = wait_group_snapshot(m, gsnap.id, {"available", "error"})
    assert gsnap.status == "available", stack.log("pool")[-3000:]
    members = {mem["share_id"]: mem["id"] for mem in gsnap.members}
    assert set(members) == {s.id for s in shares}
    on_backend = stack.backend().share.list_snapshots()
    for i, share in enumerate(shares):
        assert members[share.id] in on_backend
        assert f"file-{i}.txt" in files_in(snapshot_path(stack, members[share.id]))
    # Written after the snapshot: in the share, not in its member snapshot.
    assert client.put(f"{tenant.export_path(shares[0])}/later.txt", b"later\n").returncode == 0
    assert "later.txt" not in files_in(snapshot_path(stack, members[shares[0].id]))
    listed = m.share_group_snapshots.list(search_opts={"share_group_id": group.id})
    assert [s.id for s in listed] == [gsnap.id]
    # Its shares are held while it lasts.
    with pytest.raises(mexc.Forbidden):
        m.shares.delete(shares[0], share_group_id=group.id)

    m.share_group_snapshots.delete(gsnap)
    wait_gone(m.share_group_snapshots.get, gsnap.id)
    on_backend = stack.backend().share.list_snapshots()
    assert not set(members.values()) & set(on_backend)
    for share in shares:
        m.shares.delete(share, share_group_id=group.id)
    for share in shares:
        wait_gone(m.shares.get, share.id)
        assert share.id not in stack.backend().share.list_volumes()
    m.share_groups.delete(group)
    wait_gone(m.share_groups.get, group.id)


def test_failed_member_snapshot_reverts_the_others(tenant, group_type, tmp_path):
    stack, m = tenant.stack, tenant.m
    stype, gtype = group_type
    group = m.share_groups.create(share_group_type=gtype.id, share_types=[stype.id])
    shares = [tenant.create(share_type=stype.id, share_group_id=group.id) for _ in range(2)]
    # The second member's snapshot fails on the backend.
    calls = tmp_path / "calls"
    stack.set_faults({"create_snapshot": {"fail_if_args_contain": shares[1].id}, "_calls": str(calls)})
    gsnap = m.share_group_snapshots.create(group)
    members = {mem["share_id"]: mem["id"] for mem in gsnap.members}
    gsnap = wait_group_snapshot(m, gsnap.id, {"available", "error"})
    assert gsnap.status == "error"
    # The first member's snapshot was taken, then deleted when the second failed.
    job = stack.finished_job(gsnap.id, "create_share_group_snapshot")
    made = calls.read_text().split()
    assert made.count("create_snapshot") == 2 and "delete_snapshot" in made[made.index("create_snapshot") + 1:]
    assert not set(members.values()) & set(stack.backend().share.list_snapshots())
    messages = m.messages.list(search_opts={"resource_id": gsnap.id})
    assert messages and "create" in messages[0].user_message
    stack.clear_faults()
    # An operator retries the reverted job: the same members are taken this time.
    services = stack.services()
    try:
        services.jobs.retry(job.id, Caller(project_id="admin", user_id="operator", is_admin=True))
    finally:
        services.close()
    assert wait_group_snapshot(m, gsnap.id, {"available", "error"}).status == "available"
    assert set(members.values()) <= set(stack.backend().share.list_snapshots())
    m.share_group_snapshots.delete(gsnap)
    wait_gone(m.share_group_snapshots.get, gsnap.id)
    for share in shares:
        m.shares.delete(share, share_group_id=group.id)
    for share in shares:
        wait_gone(m.shares.get, share.id)
    m.share_groups.delete(group)
    wait_gone(m.share_groups.get, group.id)


def test_killed_conductor_group_snapshot_is_finished_by_another(tenant, group_type):
    """SIGKILL inside the first member's snapshot: another conductor resumes
    the job, and every member has its one snapshot."""
    stack, m = tenant.stack, tenant.m
    stype, gtype = group_type
    group = m.share_groups.create(share_group_type=gtype.id, share_types=[stype.id])
    shares = [tenant.create(share_type=stype.id, share_group_id=group.id) for _ in range(2)]
    stack.set_faults({"create_snapshot": "hang"})
    gsnap = m.share_group_snapshots.create(group)
    job = stack.job_inside(gsnap.id, "create_share_group_snapshot", "create_member_snapshot_0")
    first_owner, victim = job.owner, owner_pid(job)
    assert victim in stack.worker_pids()
    os.kill(victim, signal.SIGKILL)
    stack.clear_faults()

    gsnap = wait_group_snapshot(m, gsnap.id, {"available", "error"}, timeout=60)
    assert gsnap.status == "available", stack.log("pool")[-4000:]
    job = stack.finished_job(gsnap.id, "create_share_group_snapshot")
    assert job.state == "succeeded" and job.owner != first_owner
    on_backend = stack.backend().share.list_snapshots()
    assert all(on_backend.count(mem["id"]) == 1 for mem in gsnap.members) and len(gsnap.members) == 2
    wait_until(lambda: len(stack.worker_pids()) == 2 and victim not in stack.worker_pids(), 30,
               "the pool to restart the killed worker")
    m.share_group_snapshots.delete(gsnap)
    wait_gone(m.share_group_snapshots.get, gsnap.id)
    for share in shares:
        m.shares.delete(share, share_group_id=group.id)
    for share in shares:
        wait_gone(m.shares.get, share.id)
    m.share_groups.delete(group)


def test_share_into_a_group_races_its_delete_on_postgresql(pg_stack):
    """PostgreSQL's row locks (not SQLite's single writer) decide: either the
    share is created in the group and the group's delete is refused (409), or
    the group is deleted and the share refused (400) - never both accepted."""
    stack = pg_stack
    admin = stack.manila()
    m = stack.manila(stack.token(f"pggroups-{uuid.uuid4().hex[:6]}"))
    stype = admin.share_types.create(f"pgg-{uuid.uuid4().hex[:6]}", spec_driver_handles_share_servers=False,
                                     spec_snapshot_support=True)
    gtype = admin.share_group_types.create(f"pggt-{uuid.uuid4().hex[:6]}", [stype.id], is_public=True)
    for attempt in range(5):
        group = m.share_groups.create(share_group_type=gtype.id, share_types=[stype.id])
        created: list = []
        outcomes = race(stack, {
            "share": lambda g=group: created.append(m.shares.create("NFS", 1, share_type=stype.id,
                                                                    share_group_id=g.id)),
            "delete": lambda g=group: m.share_groups.delete(g)}, hold=("create_volume",))
        assert sorted(outcomes.items()) in ([("delete", "Conflict"), ("share", "accepted")],
                                            [("delete", "accepted"), ("share", "BadRequest")]), outcomes
        if outcomes["share"] == "accepted":
            share = stack.wait_for_share(m, created[0].id, {"available", "error"})
            assert share.status == "available" and m.share_groups.get(group.id).status == "available"
            m.shares.delete(share, share_group_id=group.id)
            wait_gone(m.shares.get, share.id)
            m.share_groups.delete(group)
        else:
            assert m.shares.list(search_opts={"share_group_id": group.id}) == []
        wait_gone(m.share_groups.get, group.id)
    admin.share_group_types.delete(gtype)
    admin.share_types.delete(stype)
