"""The ShareDriver snapshot contract on real storage, for every share driver:
snapshots, shares created from them, and reverting a share to one -
including what is left on the pool afterwards and calls interrupted or
failing half-way. What a driver reports it cannot do (``capabilities()``:
``revert_to_snapshot_support``) is skipped, and checked to be refused
instead. The probes are the share contract's; the btrfs internals of a
revert (its copy subvolume, qgroups) are tested on btrfs alone."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from shareflow.drivers.share import btrfs as btrfs_driver
from shareflow.exceptions import CommandError, InvalidInput, NotSupportedByBackend, StorageError
from shareflow.system import btrfs, mounts
from tests.functional.drivers.test_share_driver_contract import DRIVERS, BtrfsProbe, ImageProbe, can, fill

GiB = 1 << 30


def new_id() -> str:
    return str(uuid.uuid4())


class Pool:
    """Looks at the pool behind the driver."""

    def __init__(self, cfg):
        self.root = Path(cfg.mount_point)
        self.exports = Path(cfg.exports_dir)

    def snapshot(self, snapshot_id: str) -> Path:
        return self.root / "snapshots" / snapshot_id

    def share(self, share_id: str) -> Path:
        return self.root / "shares" / share_id

    def revert_copies(self) -> list[str]:
        d = self.root / "reverts"
        return sorted(os.listdir(d)) if d.exists() else []

    def qgroup_ids(self) -> set[int]:
        return {g.id for g in btrfs.qgroup_show(self.root, timeout=10) if g.level == 0}

    def limit(self, path: Path) -> int | None:
        """max referenced of the subvolume at ``path`` (``btrfs qgroup show -rf``)."""
        from shareflow.system.process import run

        out = run(["btrfs", "qgroup", "show", "--raw", "-r", "-f", str(path)], timeout=10).stdout
        sid = btrfs.subvolume_id(path, timeout=10)
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] == f"0/{sid}":
                return None if parts[3] == "none" else int(parts[3])
        raise AssertionError(out)

    def lock_file(self, ident: str) -> Path:
        return self.exports / ".locks" / ident


@pytest.fixture(params=DRIVERS)
def env(request):
    """``(driver, probe)`` for every driver (the share contract's probes)."""
    if request.param == "btrfs":
        return request.getfixturevalue("btrfs_share_driver"), BtrfsProbe(request.getfixturevalue("btrfs_config"))
    if request.param == "image":
        return request.getfixturevalue("image_share_driver"), ImageProbe(request.getfixturevalue("image_config"))
    raise AssertionError(request.param)


@pytest.fixture
def btrfs_env(btrfs_share_driver, btrfs_config):
    return btrfs_share_driver, Pool(btrfs_config)


@pytest.fixture
def revert_env(env):
    driver, probe = env
    if not can(driver, "revert_to_snapshot_support"):
        pytest.skip(f"{probe.name} does not revert (capability)")
    return env


def volume_with(driver, files: dict[str, str], size_gb: int = 1) -> tuple[str, Path]:
    sid = new_id()
    path = Path(driver.create_volume(sid, size_gb))
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return sid, path


def tree(path: Path) -> dict[str, str]:
    out = {}
    for p in sorted(path.rglob("*")):
        rel = str(p.relative_to(path))
        out[rel] = p.read_text() if p.is_file() else "<dir>"
    return out


class TestSnapshots:
    def test_snapshot_is_a_read_only_point_in_time_copy(self, env):
        driver, probe = env
        sid, path = volume_with(driver, {"before": "b", "dir/nested": "n"})
        snap = new_id()
        location = driver.create_snapshot(sid, snap)
        assert location == probe.snapshot_location(snap)
        (path / "after").write_text("a")
        (path / "before").write_text("changed")
        with probe.snapshot_content(snap) as content:
            assert tree(content) == {"before": "b", "dir": "<dir>", "dir/nested": "n"}
        probe.assert_snapshot_read_only(snap)
        assert driver.list_snapshots() == [snap]
        # The share itself is unaffected.
        assert (path / "before").read_text() == "changed"

    def test_create_is_idempotent(self, env):
        driver, probe = env
        sid, path = volume_with(driver, {"f": "1"})
        snap = new_id()
        first = driver.create_snapshot(sid, snap)
        (path / "f").write_text("2")
        assert driver.create_snapshot(sid, snap) == first
        with probe.snapshot_content(snap) as content:
            assert Path(content, "f").read_text() == "1"  # the existing one was kept

    def test_snapshot_of_a_missing_volume_fails_and_makes_nothing(self, env):
        driver, probe = env
        snap = new_id()
        with pytest.raises(StorageError):
            driver.create_snapshot(new_id(), snap)
        assert driver.list_snapshots() == []
        assert [r for r in probe.snapshot_remnants(snap) if r != "lock file"] == []

    def test_delete_leaves_nothing_and_tolerates_absence(self, env):
        driver, probe = env
        sid, _ = volume_with(driver, {"f": "x"})
        snap = new_id()
        driver.create_snapshot(sid, snap)
        probe.record_snapshot(snap)
        driver.delete_snapshot(snap)
        driver.delete_snapshot(snap)
        driver.delete_snapshot(new_id())  # never existed
        assert probe.snapshot_remnants(snap) == []
        assert driver.list_snapshots() == []
        assert driver.list_volumes() == [sid]

    @pytest.mark.parametrize("bad", ["../../etc", "ABCDEF00-0000-4000-8000-000000000001", "", "x/y"])
    def test_invalid_ids_are_refused(self, env, bad):
        driver, _ = env
        sid, _ = volume_with(driver, {})
        with pytest.raises(InvalidInput):
            driver.create_snapshot(sid, bad)
        with pytest.raises(InvalidInput):
            driver.create_snapshot(bad, new_id())
        with pytest.raises(InvalidInput):
            driver.delete_snapshot(bad)
        with pytest.raises(InvalidInput):
            driver.create_volume_from_snapshot(new_id(), bad, 1)
        with pytest.raises(InvalidInput):
            driver.revert_to_snapshot(sid, bad, 1)
        assert driver.list_snapshots() == []


class TestVolumeFromSnapshot:
    def test_clone_has_the_snapshots_content_its_own_limit_and_mount(self, env):
        driver, probe = env
        origin, path = volume_with(driver, {"before": "b"})
        snap = new_id()
        driver.create_snapshot(origin, snap)
        (path / "after").write_text("a")
        clone = new_id()
        clone_path = driver.create_volume_from_snapshot(clone, snap, 2)
        assert clone_path == driver.volume_path(clone)
        assert mounts.is_mountpoint(clone_path)
        probe.assert_volume_mount(clone_path, clone)
        assert tree(Path(clone_path)) == {"before": "b"}
        Path(clone_path, "mine").write_text("writable")
        assert not (path / "mine").exists()
        with probe.snapshot_content(snap) as content:
            assert not Path(content, "mine").exists()
        assert probe.limit(clone) == 2 * GiB
        assert sorted(driver.list_volumes()) == sorted([origin, clone])

    def test_clone_is_independent_of_its_origin(self, env):
        driver, _ = env
        origin, path = volume_with(driver, {"data": "kept"})
        snap = new_id()
        driver.create_snapshot(origin, snap)
        clone = new_id()
        clone_path = Path(driver.create_volume_from_snapshot(clone, snap, 1))
        driver.delete_snapshot(snap)
        driver.delete_volume(origin)
        assert (clone_path / "data").read_text() == "kept"
        (clone_path / "new").write_text("still writable")
        assert driver.list_volumes() == [clone] and driver.list_snapshots() == []

    def test_clone_limit_is_enforced(self, env):
        driver, probe = env
        origin, _ = volume_with(driver, {"f": "x"})
        snap = new_id()
        driver.create_snapshot(origin, snap)
        clone_path = driver.create_volume_from_snapshot(new_id(), snap, 1)
        written, err = fill(clone_path, GiB)
        assert err == probe.full_errno, f"wrote {written >> 20} MiB without hitting the limit"
        assert GiB - probe.slack < written <= GiB

    def test_create_is_idempotent_and_delete_leaves_nothing(self, env):
        driver, probe = env
        origin, _ = volume_with(driver, {"f": "x"})
        snap = new_id()
        driver.create_snapshot(origin, snap)
        clone = new_id()
        path = driver.create_volume_from_snapshot(clone, snap, 1)
        probe.record(clone)
        Path(path, "keep").write_text("k")
        assert driver.create_volume_from_snapshot(clone, snap, 1) == path
        assert Path(path, "keep").read_text() == "k"
        assert [m.mount_point for m in mounts.read_mounts()].count(os.path.realpath(path)) == 1
        driver.delete_volume(clone)
        assert probe.remnants(clone) == []

    def test_from_a_missing_snapshot_fails_and_makes_nothing(self, env):
        driver, probe = env
        clone = new_id()
        with pytest.raises(StorageError):
            driver.create_volume_from_snapshot(clone, new_id(), 1)
        assert [r for r in probe.remnants(clone) if r != "lock file"] == []
        assert driver.list_volumes() == []


class TestRevertRefused:
    def test_a_driver_that_reports_no_revert_refuses_it_and_changes_nothing(self, env):
        driver, probe = env
        if can(driver, "revert_to_snapshot_support"):
            pytest.skip(f"{probe.name} reverts")
        sid, path = volume_with(driver, {"f": "before"})
        snap = new_id()
        driver.create_snapshot(sid, snap)
        (path / "f").write_text("after")
        with pytest.raises(NotSupportedByBackend) as refused:
            driver.revert_to_snapshot(sid, snap, 1)
        assert "revert" in refused.value.user_message
        assert tree(path) == {"f": "after"} and mounts.is_mountpoint(path)
        assert driver.list_snapshots() == [snap]


def snapshot_then_change(driver):
    sid, path = volume_with(driver, {"kept": "v1", "dir/nested": "n"})
    path.chmod(0o750)
    snap = new_id()
    driver.create_snapshot(sid, snap)
    (path / "kept").write_text("v2 written after the snapshot")
    (path / "after").write_text("gone after the revert")
    (path / "dir" / "nested").unlink()
    (path / "newdir").mkdir()
    path.chmod(0o777)
    return sid, path, snap


class TestRevert:
    """For drivers that report ``revert_to_snapshot_support``."""

    def test_share_holds_the_snapshots_content_in_place(self, revert_env):
        driver, probe = revert_env
        sid, path, snap = snapshot_then_change(driver)
        root_ino = path.stat().st_ino
        mount_before = mounts.find_mount(path)
        driver.revert_to_snapshot(sid, snap, 1)
        assert tree(path) == {"dir": "<dir>", "dir/nested": "n", "kept": "v1"}
        assert path.stat().st_mode & 0o777 == 0o750  # the root's attributes too
        # The same volume stays mounted at the same place: NFS file handles hold.
        assert path.stat().st_ino == root_ino and mounts.find_mount(path) == mount_before
        with probe.snapshot_content(snap) as content:
            assert tree(content) == tree(path)  # the snapshot is unchanged
        (path / "writable").write_text("yes")

    def test_revert_sets_the_limit_to_the_snapshots_size(self, revert_env):
        driver, probe = revert_env
        sid, path, snap = snapshot_then_change(driver)
        driver.revert_to_snapshot(sid, snap, 2)
        assert probe.limit(sid) == 2 * GiB

    def test_revert_is_idempotent(self, revert_env):
        driver, _ = revert_env
        sid, path, snap = snapshot_then_change(driver)
        driver.revert_to_snapshot(sid, snap, 1)
        driver.revert_to_snapshot(sid, snap, 1)
        assert tree(path) == {"dir": "<dir>", "dir/nested": "n", "kept": "v1"}

    def test_revert_of_a_missing_snapshot_changes_nothing(self, revert_env):
        driver, _ = revert_env
        sid, path = volume_with(driver, {"f": "x"})
        with pytest.raises(StorageError):
            driver.revert_to_snapshot(sid, new_id(), 1)
        assert tree(path) == {"f": "x"}


class TestBtrfsRevert:
    """How the btrfs driver's revert keeps its promises: a read-only copy of
    the share taken first, a commit point, every remnant cleaned up."""

    def snapshot_then_change(self, driver):
        return snapshot_then_change(driver)

    def test_leaves_no_copy(self, btrfs_env):
        driver, pool = btrfs_env
        sid, path, snap = snapshot_then_change(driver)
        driver.revert_to_snapshot(sid, snap, 1)
        driver.revert_to_snapshot(sid, snap, 1)
        assert pool.revert_copies() == []
        with pytest.raises(StorageError):
            driver.revert_to_snapshot(sid, new_id(), 1)
        assert pool.revert_copies() == []

    def test_interrupted_while_copying_is_completed(self, btrfs_env):
        driver, pool = btrfs_env
        sid, path, snap = self.snapshot_then_change(driver)
        # As a call that died after taking its copy, half-way through emptying the share.
        (pool.root / "reverts").mkdir(exist_ok=True)
        btrfs.subvolume_snapshot(pool.share(sid), pool.root / "reverts" / sid, readonly=True, timeout=10)
        (path / "kept").unlink()
        qgroups = pool.qgroup_ids()
        driver.revert_to_snapshot(sid, snap, 1)
        assert tree(path) == {"dir": "<dir>", "dir/nested": "n", "kept": "v1"}
        assert pool.revert_copies() == []
        assert len(pool.qgroup_ids()) == len(qgroups) - 1  # the copy's qgroup went too

    def test_interrupted_after_the_commit_point_only_cleans_up(self, btrfs_env):
        driver, pool = btrfs_env
        sid, path, snap = self.snapshot_then_change(driver)
        (pool.root / "reverts").mkdir(exist_ok=True)
        btrfs.subvolume_snapshot(pool.share(sid), pool.root / "reverts" / f"{sid}.done", readonly=True, timeout=10)
        assert driver.list_volumes() == [sid]
        driver.revert_to_snapshot(sid, snap, 1)
        assert tree(path) == {"dir": "<dir>", "dir/nested": "n", "kept": "v1"}
        assert pool.revert_copies() == []

    def test_a_failed_copy_puts_the_previous_content_back(self, btrfs_env, monkeypatch):
        driver, pool = btrfs_env
        sid, path, snap = self.snapshot_then_change(driver)
        before = tree(path)
        calls = []
        real_run = btrfs_driver.run

        def failing_first_copy(argv, **kw):
            if argv[0] == "cp":
                calls.append(argv)
                if len(calls) == 1:
                    raise CommandError(argv, 1, "cp: injected failure")
            return real_run(argv, **kw)

        monkeypatch.setattr(btrfs_driver, "run", failing_first_copy)
        with pytest.raises(CommandError):
            driver.revert_to_snapshot(sid, snap, 2)
        assert len(calls) == 2  # the copy, then the copy back
        assert tree(path) == before
        assert pool.limit(pool.share(sid)) == GiB  # unchanged
        assert pool.revert_copies() == []

    def test_delete_volume_removes_a_revert_copy(self, btrfs_env):
        driver, pool = btrfs_env
        sid, _ = volume_with(driver, {"f": "x"})
        (pool.root / "reverts").mkdir(exist_ok=True)
        btrfs.subvolume_snapshot(pool.share(sid), pool.root / "reverts" / sid, readonly=True, timeout=10)
        assert driver.list_volumes() == [sid]
        driver.delete_volume(sid)
        assert pool.revert_copies() == [] and driver.list_volumes() == []
