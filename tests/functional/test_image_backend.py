"""A backend of the image share driver, end to end on the real stack (API,
ZooKeeper, conductors, NFS-Ganesha, libnfs clients) through the unmodified
python-manilaclient: a share is an XFS image of its size on the backend's
pool, written over NFS, full at its size, extended online, refused a shrink
(a 400, the share untouched), snapshotted and cloned with the snapshot's
content, mounted again by the conductors after a restart, and gone without a
trace when deleted."""

from __future__ import annotations

import errno
import os

import pytest
from manilaclient import exceptions as mexc

from shareflow.system import loop, mounts
from tests.fixtures.stack import ServiceStack, wait_until
from tests.fixtures.storage import SMALL, fill_until_full
from tests.functional.test_snapshots import (
    export_of,
    make_type,
    new_share,
    wait_gone,
    wait_rule_active,
    wait_snapshot,
)

GiB = 1 << 30
#: What the image driver reports: snapshots and clones, no revert.
BULK_SPECS = {
    "driver_handles_share_servers": "False", "snapshot_support": "True",
    "create_share_from_snapshot_support": "True",
}


@pytest.fixture(scope="module")
def istack(zookeeper_server, btrfs_pool, tmp_path_factory):
    with ServiceStack(tmp_path_factory.mktemp("imagestack"), zk_hosts=zookeeper_server.hosts,
                      btrfs_pool=btrfs_pool, share_driver="image") as s:
        yield s


def image_of(stack, share_id: str):
    return stack.image.mount_point / "shares" / f"{share_id}.img"


def allowed(stack, m, share, client) -> str:
    rule = m.shares.allow(share, "ip", client.address, "rw")
    wait_rule_active(m, rule["id"])
    return export_of(m, share)


def test_an_image_share_through_the_service(istack):
    stack = istack
    bulk = make_type(stack, "bulk", BULK_SPECS)
    m = stack.manila(stack.token("tenant-image"))
    c0 = stack.nfs(0)

    share = new_share(stack, m, bulk)
    assert image_of(stack, share.id).stat().st_size == GiB
    assert mounts.find_mount(stack.image.exports_dir / share.id).fstype == "xfs"
    export = allowed(stack, m, share, c0)
    assert c0.put(f"{export}/hello", b"hello image\n").returncode == 0
    assert c0.cat(f"{export}/hello").stdout == "hello image\n"

    # The image's size is the limit.
    fill_until_full(stack.image.exports_dir / share.id, full=(errno.ENOSPC,))
    assert c0.put(f"{export}/over", b"y" * SMALL).returncode != 0, "a write past the share's size was accepted"

    # Extended online: the client's export goes on, with room again.
    m.shares.extend(share, 2)
    share = stack.wait_for_share(m, share.id, {"available", "extending_error"})
    assert share.status == "available" and share.size == 2, stack.log("pool")[-3000:]
    assert image_of(stack, share.id).stat().st_size == 2 * GiB
    assert c0.put(f"{export}/after-extend", b"z" * SMALL).returncode == 0
    (stack.image.exports_dir / share.id / "fill").unlink()

    # A shrink is refused before anything changes: the driver cannot.
    with pytest.raises(mexc.BadRequest, match="does not support shrinking"):
        m.shares.shrink(share, 1)
    share = m.shares.get(share.id)
    assert (share.status, share.size) == ("available", 2)
    assert image_of(stack, share.id).stat().st_size == 2 * GiB

    # Snapshot and a share from it.
    snap = wait_snapshot(m, m.share_snapshots.create(share).id, {"available", "error"})
    assert snap.status == "available", stack.log("pool")[-3000:]
    assert c0.put(f"{export}/after-snapshot", b"a").returncode == 0
    clone = new_share(stack, m, bulk, size=2, snapshot_id=snap.id)
    clone_export = allowed(stack, m, clone, c0)
    assert c0.cat(f"{clone_export}/hello").stdout == "hello image\n"
    assert c0.cat(f"{clone_export}/after-snapshot").returncode != 0
    assert c0.put(f"{clone_export}/mine", b"clone").returncode == 0
    assert c0.cat(f"{export}/mine").returncode != 0

    # Its shares are mounted again after a restart that lost the mounts.
    def lose_mounts():
        for m_ in mounts.mounts_under(stack.image.exports_dir):
            mounts.unmount(m_.mount_point, timeout=30)

    stack.restart_pool(meanwhile=lose_mounts)
    wait_until(lambda: c0.cat(f"{clone_export}/mine").stdout == "clone", 60, "the clone to be served again")
    assert c0.cat(f"{export}/hello").stdout == "hello image\n"

    # Deleted: no image, mount, loop device or export left.
    m.shares.delete(clone)
    wait_gone(m.shares.get, clone.id)
    m.share_snapshots.delete(snap)
    wait_gone(m.share_snapshots.get, snap.id)
    m.shares.delete(share)
    wait_gone(m.shares.get, share.id)
    assert os.listdir(stack.image.mount_point / "shares") == []
    assert os.listdir(stack.image.mount_point / "snapshots") == []
    assert loop.devices_under(stack.image.mount_point) == {}
    assert mounts.mounts_under(stack.image.exports_dir) == []
    assert share.id not in stack.exports_text() and clone.id not in stack.exports_text()
