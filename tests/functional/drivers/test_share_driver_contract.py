"""The ShareDriver contract, on real storage, for every share driver.

To add a driver: add its name to ``DRIVERS`` and a branch in ``share_env``
returning the driver and a probe that can tell what of a volume is left on
the backend (and make partial remnants of one), which errno a full volume
gives, and how much of a volume's size its own metadata may take. What a
driver reports it cannot do (``capabilities()``) is skipped, and checked to
be refused instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import threading
import uuid
from pathlib import Path

import pytest

from shareflow.drivers.base import CAPABILITY_NAMES
from shareflow.drivers.share import registry
from shareflow.exceptions import (
    CapacityExceeded,
    InvalidInput,
    NotSupportedByBackend,
    ShrinkWouldLoseData,
    StorageError,
)
from shareflow.system import btrfs, loop, mounts, xfs
from shareflow.system.process import run

DRIVERS = ["btrfs", "image"]
MiB = 1 << 20
GiB = 1 << 30


class BtrfsProbe:
    """Looks at the btrfs pool behind a BtrfsShareDriver."""

    name = "btrfs"
    remnant_kinds = ("subvolume", "directory")
    #: A volume at its limit refuses writes with this errno (a quota).
    full_errno = errno.EDQUOT
    #: Bytes of a volume's size its data may not reach (accounting granularity).
    slack = 64 * MiB
    #: What an empty volume counts as used.
    empty_used = MiB

    def __init__(self, cfg):
        self.cfg = cfg
        self.subvol_ids: dict[str, int] = {}

    def subvolume(self, share_id: str) -> Path:
        return Path(self.cfg.mount_point) / "shares" / share_id

    def record(self, share_id: str) -> None:
        """Remember the volume's subvolume id (to look for its qgroup later)."""
        self.subvol_ids[share_id] = btrfs.subvolume_id(self.subvolume(share_id), timeout=10)

    def remnants(self, share_id: str) -> list[str]:
        left = []
        if os.path.lexists(self.subvolume(share_id)):
            left.append("subvolume")
        export = Path(self.cfg.exports_dir) / share_id
        if mounts.is_mountpoint(export):
            left.append("mount")
        if os.path.lexists(export):
            left.append("directory")
        if os.path.lexists(Path(self.cfg.exports_dir) / ".locks" / share_id):
            left.append("lock file")
        sid = self.subvol_ids.get(share_id)
        if sid is not None:
            groups = btrfs.qgroup_show(self.cfg.mount_point, timeout=10)
            if any(g.level == 0 and g.id == sid for g in groups):
                left.append(f"qgroup 0/{sid}")
        return left

    def limit(self, share_id: str) -> int | None:
        """The volume's size limit in bytes, as the backend has it."""
        return btrfs.subvolume_qgroup(self.subvolume(share_id), timeout=10).max_referenced

    @contextlib.contextmanager
    def accounting_broken(self):
        """The pool's qgroups marked inconsistent (the kernel then enforces no
        limit), as a snapshot taken into a higher-level qgroup marks them: the
        kernel cannot count it. What it made is removed afterwards."""
        root = Path(self.cfg.mount_point)
        source, snap = root / f"acct-{uuid.uuid4().hex[:8]}", root / f"acct-{uuid.uuid4().hex[:8]}"
        group = f"1/{random.randrange(1, 1 << 30)}"
        status = btrfs.qgroup_status_file(root)
        assert status is not None, "no qgroup status in sysfs"
        btrfs.subvolume_create(source, timeout=10)
        try:
            with open(source / "data", "wb") as f:
                os.posix_fallocate(f.fileno(), 0, 4 * MiB)
            btrfs.filesystem_sync(root, timeout=10)
            run(["btrfs", "qgroup", "create", group, str(root)], timeout=10)
            run(["btrfs", "subvolume", "snapshot", "-i", group, str(source), str(snap)], timeout=10)
            assert status.read_text().strip() == "1", "the pool's qgroups did not become inconsistent"
            yield
        finally:
            ids = [btrfs.subvolume_id(p, timeout=10) for p in (source, snap) if btrfs.is_subvolume(p)]
            for p in (snap, source):
                if btrfs.is_subvolume(p):
                    btrfs.subvolume_delete(p, timeout=10)
            run(["btrfs", "qgroup", "destroy", group, str(root)], timeout=10, check=False)
            btrfs.destroy_qgroups(root, ids, timeout=10)
            btrfs.ensure_qgroups_consistent(root, status_file=status, timeout=60)

    # --- snapshots (the snapshot contract) ---

    def snapshot_location(self, snapshot_id: str) -> str:
        return str(Path(self.cfg.mount_point) / "snapshots" / snapshot_id)

    @contextlib.contextmanager
    def snapshot_content(self, snapshot_id: str):
        """A directory showing the snapshot's files."""
        yield Path(self.snapshot_location(snapshot_id))

    def assert_snapshot_read_only(self, snapshot_id: str) -> None:
        with pytest.raises(OSError) as err:
            Path(self.snapshot_location(snapshot_id), "new").write_text("x")
        assert err.value.errno == errno.EROFS

    def record_snapshot(self, snapshot_id: str) -> None:
        self.subvol_ids[snapshot_id] = btrfs.subvolume_id(self.snapshot_location(snapshot_id), timeout=10)

    def snapshot_remnants(self, snapshot_id: str) -> list[str]:
        left = []
        if os.path.lexists(self.snapshot_location(snapshot_id)):
            left.append("subvolume")
        if os.path.lexists(Path(self.cfg.exports_dir) / ".locks" / snapshot_id):
            left.append("lock file")
        sid = self.subvol_ids.get(snapshot_id)
        if sid is not None and any(g.level == 0 and g.id == sid
                                   for g in btrfs.qgroup_show(self.cfg.mount_point, timeout=10)):
            left.append(f"qgroup 0/{sid}")
        return left

    def assert_volume_mount(self, path: str, share_id: str) -> None:
        m = mounts.find_mount(path)
        assert m.root.endswith(f"/shares/{share_id}") and "nosuid" in m.options

    def make_remnant(self, share_id: str, kind: str) -> None:
        if kind == "subvolume":  # a create that died right after the subvolume
            self.subvolume(share_id).parent.mkdir(exist_ok=True)
            btrfs.subvolume_create(self.subvolume(share_id), timeout=10)
            self.record(share_id)
        elif kind == "directory":  # a delete that died before removing it
            (Path(self.cfg.exports_dir) / share_id).mkdir(parents=True)
        else:
            raise AssertionError(kind)


class ImageProbe:
    """Looks at the XFS pool behind an XfsImageShareDriver."""

    name = "image"
    remnant_kinds = ("image", "half-made image", "directory")
    #: The volume is a filesystem of its own: full is ENOSPC.
    full_errno = errno.ENOSPC
    #: XFS's log (64 MiB at least) and metadata live inside the image.
    slack = 160 * MiB
    empty_used = 64 * MiB

    def __init__(self, cfg):
        self.cfg = cfg

    def image(self, share_id: str) -> Path:
        return Path(self.cfg.mount_point) / "shares" / f"{share_id}.img"

    def record(self, share_id: str) -> None:
        pass  # nothing to find later that the paths do not show

    def remnants(self, share_id: str) -> list[str]:
        left = []
        image = self.image(share_id)
        if os.path.lexists(image):
            left.append("image")
        if os.path.lexists(image.with_name(f"{share_id}.img.new")):
            left.append("half-made image")
        left += [f"loop device {d}" for d in loop.devices_of(image)]
        export = Path(self.cfg.exports_dir) / share_id
        if os.path.ismount(export):
            left.append("mount")
        if os.path.lexists(export):
            left.append("directory")
        if os.path.lexists(Path(self.cfg.exports_dir) / ".locks" / share_id):
            left.append("lock file")
        return left

    def limit(self, share_id: str) -> int:
        """The image's size: the filesystem can never hold more."""
        return self.image(share_id).stat().st_size

    # --- snapshots (the snapshot contract) ---

    def snapshot_location(self, snapshot_id: str) -> str:
        return str(Path(self.cfg.mount_point) / "snapshots" / f"{snapshot_id}.img")

    @contextlib.contextmanager
    def snapshot_content(self, snapshot_id: str):
        """The snapshot's image mounted read-only (``norecovery``: its log is
        left as the freeze left it) on a directory of the test's, then unmounted."""
        target = Path(self.cfg.exports_dir).parent / f"look-{snapshot_id}"
        target.mkdir()
        run(["mount", "-t", "xfs", "-o", "loop,ro,nouuid,norecovery", self.snapshot_location(snapshot_id),
             str(target)], timeout=10)
        try:
            yield target
        finally:
            mounts.unmount(target, timeout=10)
            target.rmdir()

    def assert_snapshot_read_only(self, snapshot_id: str) -> None:
        """Nothing has the snapshot's image open for writing: it is not
        attached to any loop device, so it is mounted nowhere."""
        assert loop.devices_of(self.snapshot_location(snapshot_id)) == []

    def record_snapshot(self, snapshot_id: str) -> None:
        pass

    def snapshot_remnants(self, snapshot_id: str) -> list[str]:
        left = []
        location = Path(self.snapshot_location(snapshot_id))
        if os.path.lexists(location):
            left.append("image")
        if os.path.lexists(location.with_name(f"{snapshot_id}.img.new")):
            left.append("half-made image")
        if os.path.lexists(Path(self.cfg.exports_dir) / ".locks" / snapshot_id):
            left.append("lock file")
        return left

    def assert_volume_mount(self, path: str, share_id: str) -> None:
        m = mounts.find_mount(path)
        assert m.fstype == "xfs" and "nosuid" in m.options
        assert loop.devices_of(self.image(share_id)) == [m.source]

    def make_remnant(self, share_id: str, kind: str) -> None:
        image = self.image(share_id)
        image.parent.mkdir(exist_ok=True)
        if kind == "image":  # a create that died after the image, before its mount
            with open(image, "xb") as f:
                f.truncate(GiB)
            xfs.mkfs(image, timeout=20)
        elif kind == "half-made image":  # died while formatting
            with open(image.with_name(f"{share_id}.img.new"), "xb") as f:
                f.truncate(GiB)
        elif kind == "directory":
            (Path(self.cfg.exports_dir) / share_id).mkdir(parents=True)
        else:
            raise AssertionError(kind)


@pytest.fixture(params=DRIVERS)
def share_env(request):
    if request.param == "btrfs":
        cfg = request.getfixturevalue("btrfs_config")
        driver = request.getfixturevalue("btrfs_share_driver")
        return driver, BtrfsProbe(cfg)
    if request.param == "image":
        cfg = request.getfixturevalue("image_config")
        driver = request.getfixturevalue("image_share_driver")
        return driver, ImageProbe(cfg)
    raise AssertionError(request.param)


def can(driver, capability: str) -> bool:
    return driver.capabilities()[capability] is True


def new_id() -> str:
    return str(uuid.uuid4())


def fill(path: str, limit_bytes: int) -> tuple[int, int | None]:
    """Write into a file under ``path`` past ``limit_bytes``; returns (bytes
    written, errno that stopped it). Preallocates most of the limit first so
    the test does not spend seconds copying zeroes; the final writes are real
    write() calls."""
    fd = os.open(os.path.join(path, "fill"), os.O_WRONLY | os.O_CREAT, 0o600)
    written = 0
    st = os.statvfs(path)
    # No more than the volume says is free (a filesystem of its own keeps
    # some of its size for itself).
    prealloc = min(limit_bytes, st.f_bavail * st.f_frsize) - 24 * MiB
    try:
        os.posix_fallocate(fd, 0, prealloc)
        written = os.lseek(fd, 0, os.SEEK_END)
        chunk = b"x" * (4 * MiB)
        while written < 2 * limit_bytes:
            written += os.write(fd, chunk)
            os.fsync(fd) if written % (64 * MiB) == 0 else None
    except OSError as e:
        return written, e.errno
    finally:
        os.close(fd)
    return written, None


class TestShareDriverContract:
    def test_create_returns_a_mounted_writable_path(self, share_env):
        driver, _ = share_env
        sid = new_id()
        path = driver.create_volume(sid, 1)
        assert path == driver.volume_path(sid)
        assert os.path.isdir(path) and mounts.is_mountpoint(path)
        Path(path, "hello").write_text("hi")
        assert sid in driver.list_volumes()

    def test_create_is_idempotent(self, share_env):
        driver, _ = share_env
        sid = new_id()
        path = driver.create_volume(sid, 1)
        Path(path, "keep").write_text("data")
        assert driver.create_volume(sid, 1) == path
        assert Path(path, "keep").read_text() == "data"  # not recreated
        # Exactly one mount: a second create must not stack another one.
        assert [m.mount_point for m in mounts.read_mounts()].count(os.path.realpath(path)) == 1

    def test_concurrent_creates_make_one_volume(self, share_env):
        driver, _ = share_env
        sid = new_id()
        results, errors = [], []

        def create():
            try:
                results.append(driver.create_volume(sid, 1))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=create) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        assert len(set(results)) == 1
        assert [m.mount_point for m in mounts.read_mounts()].count(os.path.realpath(results[0])) == 1

    def test_size_limit_is_enforced(self, share_env):
        driver, probe = share_env
        path = driver.create_volume(new_id(), 1)
        written, err = fill(path, 1 << 30)
        assert err == probe.full_errno, f"wrote {written >> 20} MiB without hitting the limit (errno {err})"
        assert (1 << 30) - probe.slack < written <= (1 << 30)

    def test_size_limit_holds_after_the_pool_accounting_broke(self, share_env):
        """Whatever marked the pool's accounting inconsistent, the driver
        repairs it before a volume is handed out: its limit is enforced."""
        driver, probe = share_env
        if not hasattr(probe, "accounting_broken"):
            pytest.skip(f"{probe.name}: no accounting apart from the filesystem itself")
        with probe.accounting_broken():
            path = driver.create_volume(new_id(), 1)
            written, err = fill(path, 1 << 30)
        assert err == probe.full_errno, f"wrote {written >> 20} MiB without hitting the limit (errno {err})"

    def test_delete_leaves_nothing(self, share_env):
        driver, probe = share_env
        sid = new_id()
        path = driver.create_volume(sid, 1)
        probe.record(sid)
        Path(path, "data").write_bytes(os.urandom(MiB))
        driver.delete_volume(sid)
        assert probe.remnants(sid) == []
        assert sid not in driver.list_volumes()

    def test_delete_is_idempotent_and_absent_is_fine(self, share_env):
        driver, probe = share_env
        driver.delete_volume(new_id())  # never existed
        sid = new_id()
        driver.create_volume(sid, 1)
        probe.record(sid)
        driver.delete_volume(sid)
        driver.delete_volume(sid)
        assert probe.remnants(sid) == []

    def test_list_volumes_sees_volumes_and_remnants(self, share_env):
        driver, probe = share_env
        full = new_id()
        driver.create_volume(full, 1)
        partial = {kind: new_id() for kind in probe.remnant_kinds}
        for kind, sid in partial.items():
            probe.make_remnant(sid, kind)
        assert sorted(driver.list_volumes()) == sorted([full, *partial.values()])
        # ... and delete_volume clears every kind of remnant.
        for sid in [full, *partial.values()]:
            driver.delete_volume(sid)
            assert probe.remnants(sid) == []
        assert driver.list_volumes() == []

    def test_half_done_create_is_completed(self, share_env):
        driver, probe = share_env
        for kind in probe.remnant_kinds:
            sid = new_id()
            probe.make_remnant(sid, kind)
            path = driver.create_volume(sid, 1)
            assert mounts.is_mountpoint(path)
            written, err = fill(path, 1 << 30)
            assert err == probe.full_errno, kind
            assert probe.limit(sid) == GiB, kind
            driver.delete_volume(sid)

    def test_capacity_is_sane(self, share_env):
        driver, _ = share_env
        cap = driver.capacity()
        assert 1 <= cap.total_gb <= 64
        assert 0 <= cap.free_gb <= cap.total_gb

    @pytest.mark.parametrize(
        "bad", ["../../etc", "ABCDEF00-0000-4000-8000-000000000001", "0b2c1d3e000040008000000000000001", "", "x/y"]
    )
    def test_invalid_share_ids_are_refused(self, share_env, bad):
        driver, _ = share_env
        before = driver.list_volumes()
        with pytest.raises(InvalidInput):
            driver.create_volume(bad, 1)
        with pytest.raises(InvalidInput):
            driver.delete_volume(bad)
        with pytest.raises(InvalidInput):
            driver.resize_volume(bad, 2)
        with pytest.raises(InvalidInput):
            driver.used_bytes(bad)
        assert driver.list_volumes() == before

    def test_capabilities_are_manilas_names_with_honest_types(self, share_env):
        driver, probe = share_env
        caps = driver.capabilities()
        assert set(CAPABILITY_NAMES) <= set(caps)
        for name in CAPABILITY_NAMES:
            if name.endswith("_support") or name == "thin_provisioning":
                assert isinstance(caps[name], bool), name
        assert caps["storage_protocol"] == "NFS" and caps["vendor_name"] == "shareflow"
        assert caps["share_driver"] == probe.name
        assert isinstance(caps["driver_name"], str) and caps["driver_name"]
        assert isinstance(caps["driver_version"], str) and caps["driver_version"]
        # What the registry answers without a pool is what the driver reports.
        assert registry.capabilities_of(probe.name).items() <= caps.items()

    # --- resize -------------------------------------------------------------

    def test_extend_is_online_and_raises_the_limit(self, share_env):
        driver, probe = share_env
        sid = new_id()
        path = driver.create_volume(sid, 1)
        Path(path, "keep").write_text("data")
        driver.resize_volume(sid, 2)
        assert probe.limit(sid) == 2 * GiB
        assert mounts.is_mountpoint(path) and Path(path, "keep").read_text() == "data"
        written, err = fill(path, 2 * GiB)
        assert err == probe.full_errno, f"wrote {written >> 20} MiB without hitting the limit (errno {err})"
        assert 2 * GiB - probe.slack < written <= 2 * GiB

    def test_resize_is_idempotent(self, share_env):
        driver, probe = share_env
        sid = new_id()
        driver.create_volume(sid, 1)
        driver.resize_volume(sid, 3)
        driver.resize_volume(sid, 3)
        assert probe.limit(sid) == 3 * GiB
        if not can(driver, "shrink_support"):
            return
        driver.resize_volume(sid, 1)
        driver.resize_volume(sid, 1)
        assert probe.limit(sid) == GiB

    def test_shrink_is_refused_by_a_driver_that_reports_it_cannot(self, share_env):
        driver, probe = share_env
        if can(driver, "shrink_support"):
            pytest.skip(f"{probe.name} shrinks")
        sid = new_id()
        path = driver.create_volume(sid, 2)
        Path(path, "kept").write_text("data")
        with pytest.raises(NotSupportedByBackend) as refused:
            driver.resize_volume(sid, 1)
        assert "shrunk" in refused.value.user_message
        assert probe.limit(sid) == 2 * GiB
        assert mounts.is_mountpoint(path) and Path(path, "kept").read_text() == "data"
        Path(path, "still-writable").write_text("yes")

    def test_shrink_within_usage_lowers_the_limit(self, share_env):
        driver, probe = share_env
        if not can(driver, "shrink_support"):
            pytest.skip(f"{probe.name} cannot shrink (capability)")
        sid = new_id()
        path = driver.create_volume(sid, 2)
        Path(path, "small").write_bytes(os.urandom(4 * MiB))
        driver.resize_volume(sid, 1)
        assert probe.limit(sid) == GiB
        assert Path(path, "small").stat().st_size == 4 * MiB
        written, err = fill(path, GiB)
        assert err == probe.full_errno and written <= GiB

    def test_shrink_below_usage_is_refused_and_changes_nothing(self, share_env):
        driver, probe = share_env
        if not can(driver, "shrink_support"):
            pytest.skip(f"{probe.name} cannot shrink (capability)")
        sid = new_id()
        path = driver.create_volume(sid, 2)
        payload = os.urandom(MiB)
        Path(path, "kept").write_bytes(payload)
        # More than 1 GiB in use, written a moment ago: the driver must count
        # it although btrfs has not committed it yet.
        fd = os.open(os.path.join(path, "bulk"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.posix_fallocate(fd, 0, GiB + 64 * MiB)
        finally:
            os.close(fd)
        assert driver.used_bytes(sid) > GiB
        with pytest.raises(ShrinkWouldLoseData) as refused:
            driver.resize_volume(sid, 1)
        assert "in use" in refused.value.user_message
        assert probe.limit(sid) == 2 * GiB
        assert Path(path, "kept").read_bytes() == payload
        assert os.path.getsize(os.path.join(path, "bulk")) == GiB + 64 * MiB
        Path(path, "still-writable").write_text("yes")

    def test_used_bytes_is_current(self, share_env):
        driver, probe = share_env
        sid = new_id()
        path = driver.create_volume(sid, 1)
        before = driver.used_bytes(sid)
        assert 0 <= before < probe.empty_used
        Path(path, "data").write_bytes(os.urandom(8 * MiB))
        assert driver.used_bytes(sid) >= before + 8 * MiB
        os.unlink(os.path.join(path, "data"))
        assert driver.used_bytes(sid) < before + MiB

    def test_resize_and_usage_of_a_missing_volume_fail(self, share_env):
        driver, _ = share_env
        sid = new_id()
        with pytest.raises(StorageError):
            driver.resize_volume(sid, 2)
        with pytest.raises(StorageError):
            driver.used_bytes(sid)
        assert sid not in driver.list_volumes()

    @pytest.mark.parametrize("bad", [0, -1, True, 1.5, "2"])
    def test_invalid_sizes_are_refused(self, share_env, bad):
        driver, probe = share_env
        sid = new_id()
        driver.create_volume(sid, 1)
        with pytest.raises(InvalidInput):
            driver.resize_volume(sid, bad)
        assert probe.limit(sid) == GiB

    def test_extend_past_the_pool_is_refused(self, share_env):
        driver, probe = share_env
        sid = new_id()
        driver.create_volume(sid, 1)
        with pytest.raises(CapacityExceeded):
            driver.resize_volume(sid, driver.capacity().total_gb + 1)
        assert probe.limit(sid) == GiB


def test_btrfs_volume_is_its_own_mount_of_the_right_subvolume(btrfs_share_driver, btrfs_config):
    """Ganesha's FSAL VFS needs the subvolume on a mount point of its own."""
    sid = new_id()
    path = btrfs_share_driver.create_volume(sid, 2)
    m = mounts.find_mount(path)
    pool = mounts.find_mount(btrfs_config.mount_point)
    assert m.fstype == "btrfs" and m.source == pool.source
    assert m.root == f"{pool.root.rstrip('/')}/shares/{sid}"
    assert "nosuid" in m.options and "nodev" in m.options
    out = run(["btrfs", "qgroup", "show", "-r", "--raw", str(path)], timeout=10).stdout
    assert str(2 << 30) in out


def test_btrfs_ensure_volumes_remounts(btrfs_share_driver):
    sid = new_id()
    path = btrfs_share_driver.create_volume(sid, 1)
    Path(path, "f").write_text("x")
    mounts.unmount(path, timeout=10)
    assert btrfs_share_driver.ensure_volumes() == [sid]
    assert Path(path, "f").read_text() == "x"


def test_btrfs_ensure_volumes_mounts_all_but_a_blocked_one(btrfs_share_driver, btrfs_config):
    """With several threads, every volume whose mount went away is mounted
    again as create_volume mounts it; one whose mount point holds something
    else fails alone (named, with the others done), and nothing is stacked."""
    from shareflow.drivers.share.btrfs import VolumesNotEnsured

    sids = sorted(new_id() for _ in range(6))
    paths = [btrfs_share_driver.create_volume(sid, 1) for sid in sids]
    for path in paths:
        Path(path, "f").write_text(path)
        mounts.unmount(path, timeout=10)
    blocked = paths[2]
    run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", blocked], timeout=10)
    try:
        with pytest.raises(VolumesNotEnsured) as e:
            btrfs_share_driver.ensure_volumes(workers=3)
        assert e.value.done == [s for s in sids if s != sids[2]]
        assert list(e.value.failed) == [sids[2]] and "tmpfs" in e.value.failed[sids[2]].message
        pool = mounts.find_mount(btrfs_config.mount_point)
        for sid, path in zip(sids, paths, strict=True):
            if sid == sids[2]:
                continue
            m = mounts.find_mount(path)
            assert m.root == f"{pool.root.rstrip('/')}/shares/{sid}" and m.source == pool.source
            assert "nosuid" in m.options and "nodev" in m.options
            assert Path(path, "f").read_text() == path
    finally:
        mounts.unmount(blocked, timeout=10)
    # Once the way is clear, a second run mounts the last one and stacks nothing.
    assert btrfs_share_driver.ensure_volumes(workers=3) == sids
    assert [m.mount_point for m in mounts.mounts_under(btrfs_config.exports_dir)].count(blocked) == 1
    assert Path(blocked, "f").read_text() == blocked


def test_btrfs_a_delete_interrupted_before_the_qgroup_is_completed(btrfs_share_driver, btrfs_config,
                                                                    monkeypatch):
    """The subvolume went, then the call died before its qgroup did: the next
    call finds the qgroup from the id written down before the delete, and
    leaves neither the qgroup nor the record behind."""
    driver, probe = btrfs_share_driver, BtrfsProbe(btrfs_config)
    sid = new_id()
    driver.create_volume(sid, 1)
    probe.record(sid)
    real = btrfs.destroy_qgroups

    def dies(*args, **kwargs):
        raise StorageError("conductor died here")

    monkeypatch.setattr(btrfs, "destroy_qgroups", dies)
    with pytest.raises(StorageError, match="died here"):
        driver.delete_volume(sid)
    record = Path(btrfs_config.mount_point) / ".deleting" / f"shares-{sid}"
    assert not probe.subvolume(sid).exists()
    assert int(record.read_text()) == probe.subvol_ids[sid]
    monkeypatch.setattr(btrfs, "destroy_qgroups", real)
    driver.delete_volume(sid)
    assert probe.remnants(sid) == [] and not record.exists()


def test_btrfs_operations_read_neither_the_mount_table_nor_every_qgroup(btrfs_share_driver, monkeypatch):
    """What an operation costs must not grow with the shares on the pool: after
    the driver's first look at its pool, no operation reads the host's mount
    table (a line per share) or lists the pool's qgroups (one per share and
    snapshot). The calls still happen for real; they are only counted."""
    driver = btrfs_share_driver
    driver.create_volume(new_id(), 1)  # the first look at the pool
    calls = []
    for module, name in ((mounts, "read_mounts"), (btrfs, "qgroup_show")):
        real = getattr(module, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    sid, snap, clone = new_id(), new_id(), new_id()
    driver.create_volume(sid, 1)
    driver.create_volume(sid, 1)  # idempotent: the mount is found by stat
    driver.resize_volume(sid, 2)
    driver.used_bytes(sid)
    driver.create_snapshot(sid, snap)
    driver.create_volume_from_snapshot(clone, snap, 1)
    driver.revert_to_snapshot(sid, snap, 2)
    driver.capacity()
    for volume in (clone, sid):
        driver.delete_volume(volume)
    driver.delete_snapshot(snap)
    driver.delete_volume(sid)  # absent already
    assert calls == []


def test_btrfs_pool_accounts_deleted_subvolumes_of_any_depth(btrfs_share_driver, btrfs_config):
    """A deleted subvolume whose tree is deeper than the kernel's
    drop_subtree_threshold would mark the whole pool's qgroups inconsistent
    (no limit enforced until a rescan of the pool); the driver raises the
    threshold to the deepest possible tree on first use."""
    btrfs_share_driver.create_volume(new_id(), 1)
    fs_dir = btrfs.sysfs_dir(btrfs_config.mount_point)
    assert fs_dir is not None
    knob = fs_dir / "qgroups" / "drop_subtree_threshold"
    assert int(knob.read_text()) == btrfs.MAX_TREE_LEVEL


def test_btrfs_delete_on_a_pool_with_no_room_left_for_its_note(btrfs_share_driver, btrfs_config, btrfs_pool):
    """When not even the note of the subvolume's id can be written on the pool
    (its own qgroup at its limit here: EDQUOT, and btrfs would refuse the
    subvolume's delete too), the delete fails with a StorageError before
    anything is deleted, and succeeds once there is room."""
    driver, probe = btrfs_share_driver, BtrfsProbe(btrfs_config)
    sid = new_id()
    driver.create_volume(sid, 1)
    probe.record(sid)
    pool = Path(btrfs_config.mount_point)
    group = btrfs.subvolume_qgroup(pool, timeout=10)
    btrfs.qgroup_limit(pool, group.referenced, timeout=10)
    try:
        with pytest.raises(OSError) as full:
            (pool / "probe").write_text("x" * 4096)
        assert full.value.errno == errno.EDQUOT
        with pytest.raises(StorageError, match="cannot note subvolume"):
            driver.delete_volume(sid)
        assert btrfs.is_subvolume(probe.subvolume(sid))
    finally:
        # Lifted through the session pool's top level: a change made through
        # the full subvolume itself is refused (EDQUOT) like any write to it.
        run(["btrfs", "qgroup", "limit", "none", f"0/{group.id}", str(btrfs_pool.mount_point)], timeout=10)
    driver.delete_volume(sid)
    assert probe.remnants(sid) == [] and not (pool / ".deleting" / f"shares-{sid}").exists()


# --- the image driver's own ---------------------------------------------------


def test_image_volume_is_its_own_xfs_filesystem_on_a_loop_device(image_share_driver, image_config):
    """A share is a sparse XFS image of its size, loop-mounted (nouuid: a
    clone has its origin's UUID) with nodev,nosuid on its export path."""
    probe = ImageProbe(image_config)
    sid = new_id()
    path = image_share_driver.create_volume(sid, 2)
    m = mounts.find_mount(path)
    assert m.fstype == "xfs" and m.source.startswith("/dev/loop")
    assert "nosuid" in m.options and "nodev" in m.options and "nouuid" in m.super_options
    assert loop.devices_of(probe.image(sid)) == [m.source]
    st = probe.image(sid).stat()
    assert st.st_size == 2 * GiB and st.st_blocks * 512 < 128 * MiB  # sparse: the log and metadata only


def test_image_ensure_volumes_remounts(image_share_driver, image_config):
    sids = sorted(new_id() for _ in range(3))
    paths = [image_share_driver.create_volume(sid, 1) for sid in sids]
    for path in paths:
        Path(path, "f").write_text(path)
        mounts.unmount(path, timeout=10)
    # Unmounting freed the loop devices (attached with autoclear by the mount).
    assert loop.devices_under(image_config.mount_point) == {}
    assert image_share_driver.ensure_volumes(workers=2) == sids
    for path in paths:
        assert Path(path, "f").read_text() == path
    assert image_share_driver.ensure_volumes() == sids  # nothing stacked
    assert len(loop.devices_under(image_config.mount_point)) == 3


def test_image_loop_devices_are_counted_and_a_create_past_the_limit_is_refused_whole(image_config):
    from dataclasses import replace

    from shareflow.drivers.share.xfs_image import XfsImageShareDriver
    from shareflow.exceptions import NoLoopDevice

    driver = XfsImageShareDriver(replace(image_config, max_loop_devices=2), timeout=20)
    probe = ImageProbe(image_config)
    held = [new_id(), new_id()]
    for sid in held:
        driver.create_volume(sid, 1)
    refused, snap = new_id(), new_id()
    with pytest.raises(NoLoopDevice) as e:
        driver.create_volume(refused, 1)
    assert "loop device" in e.value.user_message
    driver.create_snapshot(held[0], snap)  # a snapshot takes no loop device
    with pytest.raises(NoLoopDevice):
        driver.create_volume_from_snapshot(refused, snap, 1)
    assert probe.remnants(refused) == [] and sorted(driver.list_volumes()) == sorted(held)
    # One given back, one can be had again.
    driver.delete_volume(held[0])
    assert mounts.is_mountpoint(driver.create_volume(refused, 1))


def test_image_a_kernel_without_a_free_loop_device_refuses_the_create_whole(image_share_driver, image_config,
                                                                           monkeypatch):
    """mount(8) says it found no loop device: the create is refused with
    NoLoopDevice and the image it had made is gone again."""
    from shareflow.drivers.share import xfs_image
    from shareflow.exceptions import CommandError, NoLoopDevice

    real = xfs_image.run

    def no_loop(argv, **kw):
        if argv[0] == "mount":
            raise CommandError(argv, 32, f"mount: {argv[-1]}: failed to setup loop device for {argv[-2]}.")
        return real(argv, **kw)

    monkeypatch.setattr(xfs_image, "run", no_loop)
    sid = new_id()
    with pytest.raises(NoLoopDevice):
        image_share_driver.create_volume(sid, 1)
    assert ImageProbe(image_config).remnants(sid) == [] and image_share_driver.list_volumes() == []


def test_image_snapshot_unfreezes_whatever_happens(image_share_driver, image_config, monkeypatch):
    """The share is frozen only while its image is copied: a failed copy
    unfreezes it (and leaves no snapshot), and a call that died while it was
    frozen is completed by the next, which unfreezes first."""
    from shareflow.drivers.share import xfs_image

    sid = new_id()
    path = image_share_driver.create_volume(sid, 1)
    Path(path, "f").write_text("before")

    def copy_fails(source, target):
        raise StorageError("injected: reflink copy failed")

    monkeypatch.setattr(xfs_image.xfs, "reflink_copy", copy_fails)
    snap = new_id()
    with pytest.raises(StorageError, match="injected"):
        image_share_driver.create_snapshot(sid, snap)
    monkeypatch.undo()
    assert xfs.unfreeze(path, timeout=10) is False  # it was not left frozen
    assert image_share_driver.list_snapshots() == []
    assert not list((Path(image_config.mount_point) / "snapshots").iterdir())

    xfs.freeze(path, timeout=10)  # as a call that died between freeze and copy
    image_share_driver.create_snapshot(sid, snap)
    assert xfs.unfreeze(path, timeout=10) is False
    Path(path, "f").write_text("after")
    assert image_share_driver.list_snapshots() == [snap]


def test_image_extend_grows_the_mounted_filesystem(image_share_driver, image_config):
    sid = new_id()
    path = image_share_driver.create_volume(sid, 1)
    before = os.statvfs(path)
    image_share_driver.resize_volume(sid, 3)
    after = os.statvfs(path)
    assert after.f_blocks * after.f_frsize > before.f_blocks * before.f_frsize + 2 * GiB - 64 * MiB
    # The loop device follows the file.
    device = mounts.find_mount(path).source
    assert int(Path(f"/sys/block/{os.path.basename(device)}/size").read_text()) * 512 == 3 * GiB


def test_image_a_share_from_a_snapshot_has_its_own_filesystem_uuid(image_share_driver, image_config):
    """NFS-Ganesha tells filesystems apart by UUID (it will not export a second
    one with its origin's): the clone gets its own, after the mount that
    replays the frozen copy's log, which leaves nothing behind."""
    probe = ImageProbe(image_config)
    origin, snap, clone = new_id(), new_id(), new_id()
    Path(image_share_driver.create_volume(origin, 1), "f").write_text("x")
    image_share_driver.create_snapshot(origin, snap)
    path = image_share_driver.create_volume_from_snapshot(clone, snap, 1)
    assert xfs.uuid_of(probe.image(clone)) != xfs.uuid_of(probe.image(origin))
    assert Path(path, "f").read_text() == "x"
    assert sorted(os.listdir(image_config.exports_dir)) == sorted([".locks", origin, clone])
    assert len(loop.devices_under(image_config.mount_point)) == 2


def test_image_a_clone_interrupted_during_its_log_replay_is_cleaned_up(image_share_driver, image_config):
    """A call that died with the half-made clone mounted for its log replay:
    the next create finishes the clone, a delete removes it all."""
    probe = ImageProbe(image_config)
    origin, snap = new_id(), new_id()
    image_share_driver.create_volume(origin, 1)
    image_share_driver.create_snapshot(origin, snap)
    for finish in ("create", "delete"):
        clone = new_id()
        new = probe.image(clone).with_name(f"{clone}.img.new")
        xfs.reflink_copy(probe.snapshot_location(snap), new)
        scratch = Path(image_config.exports_dir) / f".replay-{new.name}"
        scratch.mkdir(parents=True)
        run(["mount", "-t", "xfs", "-o", "loop,nouuid", str(new), str(scratch)], timeout=10)
        assert clone in image_share_driver.list_volumes()
        if finish == "create":
            image_share_driver.create_volume_from_snapshot(clone, snap, 1)
            assert not scratch.exists() and not new.exists()
            image_share_driver.delete_volume(clone)
        else:
            image_share_driver.delete_volume(clone)
        assert probe.remnants(clone) == [] and not scratch.exists()
