"""Snapshots, shares created from them and reverting to them, on the real stack
through the unmodified python-manilaclient, with the data checked over NFS:
a file written before a snapshot is in a share created from it, one written
after is not; the clone outlives its origin share and snapshot; after a revert
the share holds the snapshot's content. And the refusals: a share with
snapshots cannot be deleted, capabilities come from the share type."""

from __future__ import annotations

import os
import uuid

import pytest
from manilaclient import exceptions as mexc
from manilaclient.common.apiclient.exceptions import UnprocessableEntity as Unprocessable

from shareflow.services.context import Caller
from shareflow.system import btrfs
from tests.fixtures.stack import wait_until
from tests.functional.lifecycle_helpers import race

FULL_SPECS = {
    "driver_handles_share_servers": "False", "snapshot_support": "True",
    "create_share_from_snapshot_support": "True", "revert_to_snapshot_support": "True",
}


def make_type(stack, name: str, specs: dict) -> str:
    services = stack.services()
    try:
        admin = Caller(project_id="admin", is_admin=True)
        try:
            services.share_types.get(admin, name)
        except Exception:
            services.share_types.create(admin, name=name, extra_specs=specs)
    finally:
        services.close()
    return name


@pytest.fixture(scope="module")
def snappy(stack) -> str:
    """A share type with every snapshot capability."""
    return make_type(stack, "snappy", FULL_SPECS)


def wait_snapshot(m, snapshot_id: str, statuses: set[str], timeout: float = 30):
    def check():
        snap = m.share_snapshots.get(snapshot_id)
        return snap if snap.status in statuses else None

    return wait_until(check, timeout, f"snapshot {snapshot_id} to become one of {statuses}")


def wait_gone(get, ident: str, timeout: float = 30) -> None:
    def gone():
        try:
            get(ident)
        except mexc.NotFound:
            return True
        return False

    wait_until(gone, timeout, f"{ident} to be deleted")


def wait_rule_active(m, rule_id: str) -> None:
    wait_until(lambda: m.share_access_rules.get(rule_id).state == "active", 30, f"rule {rule_id} active")


def export_of(m, share) -> str:
    return m.share_export_locations.list(share)[0].path.split(":", 1)[1]


def new_share(stack, m, share_type: str, **kw):
    share = m.shares.create("NFS", kw.pop("size", 1), share_type=share_type, **kw)
    share = stack.wait_for_share(m, share.id, {"available", "error"})
    assert share.status == "available", stack.log("pool")[-3000:]
    return share


def names(listing) -> set[str]:
    """File names in ``nfs-ls`` output."""
    return {line.split()[-1] for line in listing.stdout.splitlines() if line.strip()}


def stale_qgroups(stack) -> list[int]:
    """Level-0 qgroups whose subvolume is gone (what a careless delete leaves)."""
    return [g.id for g in btrfs.qgroup_show(stack.btrfs.mount_point, timeout=10)
            if g.level == 0 and g.path is None]


def assert_share_left_nothing(stack, share_id: str) -> None:
    backend = stack.backend()
    assert share_id not in backend.share.list_volumes()
    assert share_id not in backend.export.list_exports(backend.server.server_for(share_id))
    assert share_id not in stack.exports_text()
    assert not (stack.btrfs.exports_dir / share_id).exists()
    with open("/proc/self/mountinfo") as f:
        assert share_id not in f.read()


def assert_snapshot_left_nothing(stack, snapshot_id: str) -> None:
    assert snapshot_id not in stack.backend().share.list_snapshots()
    assert not os.path.lexists(stack.btrfs.mount_point / "snapshots" / snapshot_id)
    assert not os.path.lexists(stack.btrfs.exports_dir / ".locks" / snapshot_id)


def test_snapshot_clone_revert_over_nfs(stack, snappy):
    m = stack.manila(stack.token("tenant-snap"))
    admin = stack.manila()
    client = stack.nfs(0)
    share = new_share(stack, m, snappy, name="origin")
    assert share.snapshot_support and share.create_share_from_snapshot_support
    assert share.revert_to_snapshot_support
    rule = m.shares.allow(share, "ip", client.address, "rw")
    wait_rule_active(m, rule["id"])
    export = export_of(m, share)
    assert client.put(f"{export}/before.txt", b"written before the snapshot\n").returncode == 0

    # Create, show, list, update.
    snap = m.share_snapshots.create(share, name="snap1", description="first")
    assert snap.status == "creating" and snap.share_id == share.id and snap.size == 1
    snap = wait_snapshot(m, snap.id, {"available", "error"})
    assert snap.status == "available", stack.log("pool")[-3000:]
    assert not hasattr(snap, "provider_location")  # admin-only
    location = admin.share_snapshots.get(snap.id).provider_location
    assert location == str(stack.btrfs.mount_point / "snapshots" / snap.id)
    assert snap.id in stack.backend().share.list_snapshots()
    assert [s.id for s in m.share_snapshots.list(search_opts={"share_id": share.id})] == [snap.id]
    assert m.share_snapshots.list(detailed=False, search_opts={"name": "snap1"})[0].id == snap.id
    m.share_snapshots.update(snap, display_name="renamed", display_description="changed")
    snap = m.share_snapshots.get(snap.id)
    assert (snap.name, snap.description, snap.project_id) == ("renamed", "changed", "tenant-snap")

    assert client.put(f"{export}/after.txt", b"written after the snapshot\n").returncode == 0

    # A share with snapshots cannot be deleted.
    with pytest.raises(mexc.Forbidden) as refused:
        m.shares.delete(share)
    assert "Share still has 1 dependent snapshots" in str(refused.value)
    assert m.shares.get(share.id).status == "available"

    # A new share from the snapshot holds what was written before it, not after.
    clone = m.shares.create("NFS", 2, snapshot_id=snap.id, name="clone")
    assert clone.snapshot_id == snap.id and clone.share_type == share.share_type
    clone = stack.wait_for_share(m, clone.id, {"available", "error"})
    assert clone.status == "available", stack.log("pool")[-3000:]
    assert stack.share_row(clone.id).host == stack.share_row(share.id).host
    clone_rule = m.shares.allow(clone, "ip", client.address, "rw")
    wait_rule_active(m, clone_rule["id"])
    clone_export = export_of(m, clone)
    assert names(client.ls(clone_export)) == {"before.txt"}
    assert client.cat(f"{clone_export}/before.txt").stdout == "written before the snapshot\n"

    # Revert the origin to its (latest) snapshot: the file written after it goes.
    m.shares.revert_to_snapshot(share, snap)
    share = stack.wait_for_share(m, share.id, {"available", "reverting_error"})
    assert share.status == "available", stack.log("pool")[-3000:]
    assert wait_snapshot(m, snap.id, {"available"}).status == "available"
    assert names(client.ls(export)) == {"before.txt"}
    assert client.cat(f"{export}/after.txt").returncode != 0
    assert client.cat(f"{export}/before.txt").stdout == "written before the snapshot\n"
    assert client.put(f"{export}/again.txt", b"still writable\n").returncode == 0
    job = stack.finished_job(share.id, "revert_to_snapshot")
    assert job.state == "succeeded"

    # The clone is independent: delete the snapshot, then the origin.
    m.share_snapshots.delete(snap)
    wait_gone(m.share_snapshots.get, snap.id)
    assert_snapshot_left_nothing(stack, snap.id)
    m.shares.delete(share)
    wait_gone(m.shares.get, share.id)
    assert_share_left_nothing(stack, share.id)
    assert client.cat(f"{clone_export}/before.txt").stdout == "written before the snapshot\n"
    assert client.put(f"{clone_export}/new.txt", b"the clone lives on\n").returncode == 0
    assert names(client.ls(clone_export)) == {"before.txt", "new.txt"}

    m.shares.delete(clone)
    wait_gone(m.shares.get, clone.id)
    assert_share_left_nothing(stack, clone.id)
    assert stale_qgroups(stack) == []


def test_capabilities_come_from_the_share_type(stack):
    plain = make_type(stack, "no-snapshots", {"driver_handles_share_servers": "False"})
    only = make_type(stack, "snapshots-only", {"driver_handles_share_servers": "False",
                                               "snapshot_support": "True"})
    m = stack.manila(stack.token("tenant-gates"))
    share = new_share(stack, m, plain)
    assert (share.snapshot_support, share.create_share_from_snapshot_support,
            share.revert_to_snapshot_support) == (False, False, False)
    with pytest.raises(Unprocessable) as refused:
        m.share_snapshots.create(share)
    assert refused.value.http_status == 422 and "does not have that capability" in str(refused.value)

    other = new_share(stack, m, only)
    snap = wait_snapshot(m, m.share_snapshots.create(other).id, {"available"})
    with pytest.raises(mexc.BadRequest, match="does not have that capability"):
        m.shares.create("NFS", 1, snapshot_id=snap.id)
    with pytest.raises(mexc.BadRequest, match="does not have that capability"):
        m.shares.revert_to_snapshot(other, snap)
    assert m.shares.get(other.id).status == "available"

    m.share_snapshots.delete(snap)
    wait_gone(m.share_snapshots.get, snap.id)
    for s in (share, other):
        m.shares.delete(s)
        wait_gone(m.shares.get, s.id)


def test_revert_only_to_the_latest_snapshot(stack, snappy):
    m = stack.manila(stack.token("tenant-latest"))
    share = new_share(stack, m, snappy)
    first = wait_snapshot(m, m.share_snapshots.create(share).id, {"available"})
    second = wait_snapshot(m, m.share_snapshots.create(share).id, {"available"})
    with pytest.raises(mexc.Conflict, match="not the most recent snapshot"):
        m.shares.revert_to_snapshot(share, first)
    with pytest.raises(mexc.BadRequest):
        m.shares.create("NFS", 1, snapshot_id=first.id, share_type="default")  # another type
    # Deleting the latest makes the earlier one the latest.
    m.share_snapshots.delete(second)
    wait_gone(m.share_snapshots.get, second.id)
    m.shares.revert_to_snapshot(share, first)
    assert stack.wait_for_share(m, share.id, {"available", "reverting_error"}).status == "available"
    m.share_snapshots.delete(first)
    wait_gone(m.share_snapshots.get, first.id)
    m.shares.delete(share)
    wait_gone(m.shares.get, share.id)
    assert_share_left_nothing(stack, share.id)


def test_admin_reset_status_and_force_delete(stack, snappy):
    m = stack.manila(stack.token("tenant-snapadmin"))
    admin = stack.manila()
    share = new_share(stack, m, snappy)
    snap = wait_snapshot(m, m.share_snapshots.create(share).id, {"available"})
    with pytest.raises(mexc.Forbidden):
        m.share_snapshots.reset_state(snap, "error")
    admin.share_snapshots.reset_state(snap, "error_deleting")
    assert m.share_snapshots.get(snap.id).status == "error_deleting"
    with pytest.raises(mexc.BadRequest, match="status must be one of"):
        m.share_snapshots.delete(snap)
    admin.share_snapshots.force_delete(snap)
    wait_gone(m.share_snapshots.get, snap.id)
    assert_snapshot_left_nothing(stack, snap.id)
    m.shares.delete(share)
    wait_gone(m.shares.get, share.id)


def test_openstacksdk_share_snapshot_clone_revert_delete(stack, snappy):
    import openstack

    # The revert action needs 2.27: without a default microversion the sdk sends none (2.0).
    conn = openstack.connect(auth_type="admin_token", shared_file_system_api_version="2.65",
                             auth={"endpoint": stack.url, "token": stack.token("tenant-sdk")})
    fs = conn.shared_file_system
    client = stack.nfs(1)

    def wait(get, ident, status):
        return wait_until(lambda: (r := get(ident)).status in (status, "error") and r, 30,
                          f"{ident} to become {status}")

    share = fs.create_share(size=1, share_protocol="NFS", name="sdk-origin", share_type=snappy)
    assert wait(fs.get_share, share.id, "available").status == "available"
    fs.create_access_rule(share.id, access_to=client.address, access_type="ip", access_level="rw")
    export = next(iter(fs.export_locations(share.id))).path.split(":", 1)[1]
    wait_until(lambda: client.put(f"{export}/sdk.txt", b"from the sdk\n").returncode == 0, 30,
               "the sdk share to take a write")

    snap = fs.create_share_snapshot(share_id=share.id, name="sdk-snap")
    snap = wait(fs.get_share_snapshot, snap.id, "available")
    assert snap.status == "available" and snap.share_id == share.id
    assert snap.id in [s.id for s in fs.share_snapshots(details=True)]
    fs.update_share_snapshot(snap.id, display_name="sdk-renamed")
    assert fs.get_share_snapshot(snap.id).name == "sdk-renamed"

    clone = fs.create_share(size=1, share_protocol="NFS", snapshot_id=snap.id, name="sdk-clone")
    assert wait(fs.get_share, clone.id, "available").status == "available"
    fs.create_access_rule(clone.id, access_to=client.address, access_type="ip", access_level="rw")
    clone_export = next(iter(fs.export_locations(clone.id))).path.split(":", 1)[1]
    wait_until(lambda: client.cat(f"{clone_export}/sdk.txt").stdout == "from the sdk\n", 30,
               "the clone to hold the snapshot's file")

    assert client.put(f"{export}/later.txt", b"after\n").returncode == 0
    fs.revert_share_to_snapshot(share.id, snap.id)
    wait_until(lambda: fs.get_share(share.id).status in ("available", "reverting_error")
               and fs.get_share(share.id).status == "available", 30, "the revert")
    assert names(client.ls(export)) == {"sdk.txt"}

    fs.delete_share_snapshot(snap.id)
    fs.wait_for_delete(snap, wait=30)
    for s in (share, clone):
        fs.delete_share(s.id)
        fs.wait_for_delete(s, wait=30)
    for s in (share, clone):
        assert_share_left_nothing(stack, s.id)
    assert_snapshot_left_nothing(stack, snap.id)


def test_snapshot_ids_are_the_backend_names(stack, snappy):
    """What a snapshot is called on the pool is its id: nothing else goes in a path."""
    m = stack.manila(stack.token("tenant-names"))
    share = new_share(stack, m, snappy)
    snap = wait_snapshot(m, m.share_snapshots.create(share, name="../../etc").id, {"available"})
    assert str(uuid.UUID(snap.id)) == snap.id
    assert sorted(os.listdir(stack.btrfs.mount_point / "snapshots")).count(snap.id) == 1
    m.share_snapshots.delete(snap)
    wait_gone(m.share_snapshots.get, snap.id)
    m.shares.delete(share)
    wait_gone(m.shares.get, share.id)


def test_conflicting_requests_at_once_one_wins_nothing_is_stuck(stack, snappy):
    m = stack.manila(stack.token("tenant-snaprace"))

    # Revert to a snapshot and delete that snapshot at once.
    share = new_share(stack, m, snappy)
    snap = wait_snapshot(m, m.share_snapshots.create(share).id, {"available"})
    outcomes = race(stack, {"revert": lambda: m.shares.revert_to_snapshot(share, snap),
                            "delete": lambda: m.share_snapshots.delete(snap)},
                    hold=("revert_to_snapshot", "delete_snapshot"))
    assert sorted(outcomes.values()) in (["BadRequest", "accepted"], ["Conflict", "accepted"]), outcomes
    assert stack.wait_for_share(m, share.id, {"available", "reverting_error"}).status == "available"
    if outcomes["revert"] == "accepted":  # the revert won; the snapshot stays
        assert wait_snapshot(m, snap.id, {"available"}).status == "available"
        m.share_snapshots.delete(snap)
    wait_gone(m.share_snapshots.get, snap.id)

    # Take a snapshot and delete its share at once.
    outcomes = race(stack, {"snapshot": lambda: m.share_snapshots.create(share, name="racer"),
                            "delete": lambda: m.shares.delete(share)},
                    hold=("create_snapshot", "delete_volume"))
    assert sorted(outcomes.values()) in (["BadRequest", "accepted"], ["Forbidden", "accepted"]), outcomes
    if outcomes["snapshot"] == "accepted":  # the snapshot won; the share stays until it is gone
        (racer,) = m.share_snapshots.list(search_opts={"share_id": share.id})
        assert wait_snapshot(m, racer.id, {"available", "error"}).status == "available"
        assert m.shares.get(share.id).status == "available"
        m.share_snapshots.delete(racer)
        wait_gone(m.share_snapshots.get, racer.id)
        m.shares.delete(share)
    else:
        assert m.share_snapshots.list(search_opts={"share_id": share.id}) == []
    wait_gone(m.shares.get, share.id)
    assert_share_left_nothing(stack, share.id)


def test_revert_gives_the_share_its_snapshots_size(stack, snappy):
    """As Manila's manager: after a revert the share's size is the snapshot's,
    and so is the limit btrfs enforces - smaller or larger than before."""
    m = stack.manila(stack.token("tenant-snapsize"))
    share = new_share(stack, m, snappy, size=1)

    def limit() -> int:
        path = stack.btrfs.mount_point / "shares" / share.id
        return btrfs.subvolume_qgroup(path, timeout=10).max_referenced

    small = wait_snapshot(m, m.share_snapshots.create(share).id, {"available"})
    m.shares.extend(share, 2)
    assert stack.wait_for_share(m, share.id, {"available", "extending_error"}).size == 2
    m.shares.revert_to_snapshot(share, small)
    reverted = stack.wait_for_share(m, share.id, {"available", "reverting_error"})
    assert (reverted.status, reverted.size, limit()) == ("available", 1, 1 << 30)
    m.share_snapshots.delete(small)
    wait_gone(m.share_snapshots.get, small.id)

    m.shares.extend(share, 2)
    assert stack.wait_for_share(m, share.id, {"available", "extending_error"}).size == 2
    large = wait_snapshot(m, m.share_snapshots.create(share).id, {"available"})
    assert large.size == 2
    m.shares.shrink(share, 1)
    assert stack.wait_for_share(m, share.id, {"available", "shrinking_error"}).size == 1
    m.shares.revert_to_snapshot(share, large)
    reverted = stack.wait_for_share(m, share.id, {"available", "reverting_error"})
    assert (reverted.status, reverted.size, limit()) == ("available", 2, 2 << 30)
    assert stack.share_row(share.id).pending_size is None

    m.share_snapshots.delete(large)
    wait_gone(m.share_snapshots.get, large.id)
    m.shares.delete(share)
    wait_gone(m.shares.get, share.id)
    assert_share_left_nothing(stack, share.id)
