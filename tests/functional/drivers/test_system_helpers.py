"""The loop-pool manager and the namespace helpers, on the real kernel."""

from __future__ import annotations

import os
import secrets

import pytest

from shareflow.system import btrfs, btrfs_pool, mounts, netns
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


def test_pool_without_image_must_be_mounted(root_only, tmp_path):
    with pytest.raises(Exception, match="no btrfs pool"):
        btrfs_pool.ensure_pool(tmp_path / "mnt", None)


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
