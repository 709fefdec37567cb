"""The loop-pool manager and the namespace helpers, on the real kernel."""

from __future__ import annotations

import os
import secrets

import pytest

from shareflow.exceptions import StorageError
from shareflow.system import btrfs, btrfs_pool, loop, mounts, netns, xfs, xfs_pool
from shareflow.system.process import run


@pytest.fixture
def root_only():
    if os.geteuid() != 0:
        pytest.skip("needs root")


def loop_devices_of(image) -> list[str]:
    out = run(["losetup", "--noheadings", "--output", "NAME", "--associated", str(image)], timeout=10).stdout
    return out.split()


def test_pool_is_idempotent_and_torn_down_by_its_handle(root_only, tmp_path):
    image, mnt = tmp_path / "p.img", tmp_path / "mnt"
    pool = btrfs_pool.ensure_pool(mnt, image, 1, timeout=30)
    try:
        assert mounts.source_of(mnt) == pool.device == pool.loop_device
        assert btrfs.has_btrfs_signature(image)
        (mnt / "marker").write_text("kept")
        # Already mounted: reused, not mounted or attached again.
        assert btrfs_pool.ensure_pool(mnt, image, 1, timeout=30) == pool
        assert loop_devices_of(image) == [pool.device]
        # Unmounted: mounted again from the same image, not reformatted.
        btrfs_pool.unmount_pool(pool, timeout=30)
        assert not mounts.is_mountpoint(mnt) and loop_devices_of(image) == []
        pool = btrfs_pool.ensure_pool(mnt, image, 1, timeout=30)
        assert (mnt / "marker").read_text() == "kept"
        # Quotas are on: a qgroup listing works.
        btrfs.qgroup_show(mnt, timeout=10)
        # Subvolume mounts from the pool's device go down with it.
        btrfs.subvolume_create(mnt / "sv", timeout=10)
        (tmp_path / "sv").mkdir()
        run(["mount", "-o", "subvol=sv", pool.device, str(tmp_path / "sv")], timeout=10)
    finally:
        btrfs_pool.destroy_pool(pool, timeout=30)
    assert not mounts.is_mountpoint(mnt) and not mounts.is_mountpoint(tmp_path / "sv")
    assert not image.exists()
    btrfs_pool.unmount_pool(pool, timeout=30)  # repeatable


def test_subvolume_create_limit_id_and_delete_by_ioctl_as_the_btrfs_command_sees_them(root_only, tmp_path):
    """The calls every create and delete makes, by ioctl: what ``btrfs``
    itself then reads back is a subvolume with that referenced-bytes limit,
    its id, and after the delete no subvolume; the kernel's refusals are
    StorageErrors that say why."""
    pool = btrfs_pool.ensure_pool(tmp_path / "mnt", tmp_path / "p.img", 1, timeout=30)
    try:
        sv = pool.mount_point / "sv"
        btrfs.subvolume_create(sv, timeout=10)
        assert btrfs.is_subvolume(sv)
        btrfs.qgroup_limit(sv, 3 * 2**20, timeout=10)
        out = run(["btrfs", "qgroup", "show", "--raw", "-r", "-f", str(sv)], timeout=10).stdout
        (group,) = [g for g in btrfs.parse_qgroup_show(out, limits=True)
                    if g.id == btrfs.subvolume_id(sv, timeout=10)]
        assert group.max_referenced == 3 * 2**20
        with pytest.raises(StorageError, match="File exists"):
            btrfs.subvolume_create(sv, timeout=10)
        with pytest.raises(StorageError, match="No such file"):
            btrfs.subvolume_create(pool.mount_point / "missing" / "sv", timeout=10)
        plain = tmp_path / "plain"
        plain.mkdir()
        with pytest.raises(StorageError, match="limiting the qgroup"):
            btrfs.qgroup_limit(plain, 2**20, timeout=10)  # not on btrfs
        with pytest.raises(StorageError, match="not a subvolume name"):
            btrfs.subvolume_create(pool.mount_point / ("x" * 5000), timeout=10)
        # The id is the one btrfs itself reads, from the root or any directory of it.
        rootid = int(run(["btrfs", "inspect-internal", "rootid", str(sv)], timeout=10).stdout)
        (sv / "dir").mkdir()
        assert btrfs.subvolume_id(sv, timeout=10) == btrfs.subvolume_id(sv / "dir", timeout=10) == rootid
        assert btrfs.subvolume_id(pool.mount_point, timeout=10) == 5  # the top level
        # Deleted with its contents, and committed: btrfs lists it no more.
        (sv / "dir" / "f").write_bytes(b"x" * 4096)
        btrfs.subvolume_delete(sv, timeout=10)
        assert not sv.exists()
        listed = run(["btrfs", "subvolume", "list", str(pool.mount_point)], timeout=10).stdout
        assert f"ID {rootid} " not in listed, listed
        with pytest.raises(StorageError, match="No such file"):
            btrfs.subvolume_delete(sv, timeout=10)
        with pytest.raises(StorageError, match="reading the subvolume id"):
            btrfs.subvolume_id(sv, timeout=10)
    finally:
        btrfs_pool.destroy_pool(pool, timeout=30)


def test_pool_without_image_must_be_mounted(root_only, tmp_path):
    with pytest.raises(Exception, match="no btrfs pool"):
        btrfs_pool.ensure_pool(tmp_path / "mnt", None)


def test_xfs_pool_is_idempotent_has_reflink_and_takes_its_share_mounts_down(root_only, tmp_path):
    """The image driver's pool: made once (sparse, ``reflink=1``), reused
    when mounted, mounted again unformatted; its teardown unmounts the share
    images mounted from files on it (freeing their loop devices) first."""
    image, mnt, share_mnt = tmp_path / "x.img", tmp_path / "mnt", tmp_path / "share"
    pool = xfs_pool.ensure_pool(mnt, image, 2, timeout=30)
    try:
        assert mounts.find_mount(mnt).fstype == "xfs" and pool.loop_device == mounts.source_of(mnt)
        assert xfs.has_xfs_signature(image)
        (mnt / "marker").write_text("kept")
        assert xfs_pool.ensure_pool(mnt, image, 2, timeout=30) == pool
        assert loop.devices_of(image) == [pool.device]
        xfs_pool.unmount_pool(pool, timeout=30)
        assert not mounts.is_mountpoint(mnt) and loop.devices_of(image) == []
        pool = xfs_pool.ensure_pool(mnt, image, 2, timeout=30)
        assert (mnt / "marker").read_text() == "kept"
        # Reflink works on it: the snapshot of a share image is one.
        xfs.reflink_copy(mnt / "marker", mnt / "copy")
        assert (mnt / "copy").read_text() == "kept"
        # A share image mounted from a file on the pool.
        with open(mnt / "s.img", "wb") as f:
            f.truncate(512 << 20)
        xfs.mkfs(mnt / "s.img", timeout=30)
        share_mnt.mkdir()
        run(["mount", "-t", "xfs", "-o", "loop", str(mnt / "s.img"), str(share_mnt)], timeout=10)
        assert len(loop.devices_under(mnt)) == 1
    finally:
        xfs_pool.destroy_pool(pool, timeout=30)
    assert not mounts.is_mountpoint(share_mnt) and not mounts.is_mountpoint(mnt)
    assert not image.exists() and loop.devices_of(image) == []
    xfs_pool.unmount_pool(pool, timeout=30)  # repeatable


def test_each_driver_prepares_its_pool_through_the_registry(root_only, tmp_path):
    """What ``shareflow run`` does per backend: the driver named by the
    backend prepares its kind of pool from the image in its table, and the
    handle's release unmounts it (the image stays)."""
    from shareflow import config
    from shareflow.drivers.share import registry

    cfg = config.parse({"backends": [
        {"name": "fast", "btrfs": {"image": "fast.img", "image_size_gb": 1}},
        {"name": "bulk", "share_driver": "image", "image": {"image": "bulk.img", "image_size_gb": 1}},
        {"name": "real", "share_driver": "image"},  # no image: nothing to prepare
    ]}, tmp_path / "shareflow.toml")
    fast, bulk, real = cfg.backends
    prepared = []
    try:
        for backend, fstype in ((fast, "btrfs"), (bulk, "xfs")):
            pool = registry.get(backend.share_driver).prepare_pool(backend.share_config, 30)
            prepared.append(pool)
            assert pool.mount_point == backend.share_config.mount_point
            assert mounts.find_mount(pool.mount_point).fstype == fstype
        assert registry.get(real.share_driver).prepare_pool(real.share_config, 30) is None
    finally:
        for pool in prepared:
            pool.release()
    for backend in (fast, bulk):
        assert not mounts.is_mountpoint(backend.share_config.mount_point)
        assert loop.devices_of(backend.share_config.image) == []
        backend.share_config.image.unlink()


def test_namespaces_and_links_tolerate_repeats(root_only):
    a, b = f"sft{secrets.token_hex(3)}-a", f"sft{secrets.token_hex(3)}-b"
    try:
        netns.create(a)
        netns.create(a)  # reused
        netns.create(b)
        netns.add_bridge("br0", a)
        netns.add_bridge("br0", a)
        netns.add_veth("v0", a, "eth0", b)
        netns.add_veth("v0", a, "eth0", b)
        netns.set_master("v0", "br0", a)
        netns.add_address("br0", "198.51.100.1/24", a)
        netns.add_address("br0", "198.51.100.1/24", a)  # already there
        netns.add_address("eth0", "198.51.100.2/24", b)
        netns.set_up("v0", a)
        netns.set_up("eth0", b)
        assert netns.link_exists("eth0", b) and not netns.link_exists("eth0", a)
        # (Traffic across such a network is what the NFS contract tests use.)
        addrs = run(["ip", "-n", b, "-o", "addr", "show", "dev", "eth0"], timeout=10).stdout
        assert "198.51.100.2/24" in addrs
        netns.delete_link("v0", a)  # takes its peer along
        netns.delete_link("v0", a)
        assert not netns.link_exists("eth0", b)
    finally:
        netns.delete(a)
        netns.delete(b)
    netns.delete(a)
    assert not netns.exists(a) and not netns.exists(b)
