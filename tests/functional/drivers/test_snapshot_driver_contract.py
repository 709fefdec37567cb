"""The ShareDriver snapshot contract on real btrfs: snapshots, shares created
from them, and reverting a share to one - including what is left on the pool
afterwards (subvolumes, qgroups, mounts, lock files) and calls interrupted or
failing half-way."""

from __future__ import annotations

import errno
import os
import uuid
from pathlib import Path

import pytest

from shareflow.drivers.share import btrfs as btrfs_driver
from shareflow.exceptions import CommandError, InvalidInput, StorageError
from shareflow.system import btrfs, mounts
from tests.functional.drivers.test_share_driver_contract import fill

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


@pytest.fixture
def env(btrfs_share_driver, btrfs_config):
    return btrfs_share_driver, Pool(btrfs_config)


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
        driver, pool = env
        sid, path = volume_with(driver, {"before": "b", "dir/nested": "n"})
        snap = new_id()
        location = driver.create_snapshot(sid, snap)
        assert location == str(pool.snapshot(snap))
        (path / "after").write_text("a")
        (path / "before").write_text("changed")
        assert tree(Path(location)) == {"before": "b", "dir": "<dir>", "dir/nested": "n"}
        with pytest.raises(OSError) as err:
            Path(location, "new").write_text("x")
        assert err.value.errno == errno.EROFS
        assert driver.list_snapshots() == [snap]
        # The share itself is unaffected.
        assert (path / "before").read_text() == "changed"

    def test_create_is_idempotent(self, env):
        driver, pool = env
        sid, path = volume_with(driver, {"f": "1"})
        snap = new_id()
        first = driver.create_snapshot(sid, snap)
        (path / "f").write_text("2")
        assert driver.create_snapshot(sid, snap) == first
        assert Path(first, "f").read_text() == "1"  # the existing one was kept

    def test_snapshot_of_a_missing_volume_fails_and_makes_nothing(self, env):
        driver, pool = env
        snap = new_id()
        with pytest.raises(StorageError):
            driver.create_snapshot(new_id(), snap)
        assert driver.list_snapshots() == []

    def test_delete_leaves_nothing_and_tolerates_absence(self, env):
        driver, pool = env
        sid, _ = volume_with(driver, {"f": "x"})
        snap = new_id()
        driver.create_snapshot(sid, snap)
        snap_qgroup = btrfs.subvolume_id(pool.snapshot(snap), timeout=10)
        driver.delete_snapshot(snap)
        driver.delete_snapshot(snap)
        driver.delete_snapshot(new_id())  # never existed
        assert not os.path.lexists(pool.snapshot(snap))
        assert snap_qgroup not in pool.qgroup_ids()
        assert not os.path.lexists(pool.lock_file(snap))
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
        driver, pool = env
        origin, path = volume_with(driver, {"before": "b"})
        snap = new_id()
        driver.create_snapshot(origin, snap)
        (path / "after").write_text("a")
        clone = new_id()
        clone_path = driver.create_volume_from_snapshot(clone, snap, 2)
        assert clone_path == driver.volume_path(clone)
        assert mounts.is_mountpoint(clone_path)
        m = mounts.find_mount(clone_path)
        assert m.root.endswith(f"/shares/{clone}") and "nosuid" in m.options
        assert tree(Path(clone_path)) == {"before": "b"}
        Path(clone_path, "mine").write_text("writable")
        assert not (path / "mine").exists() and not pool.snapshot(snap).joinpath("mine").exists()
        assert pool.limit(pool.share(clone)) == 2 * GiB
        assert sorted(driver.list_volumes()) == sorted([origin, clone])

    def test_clone_is_independent_of_its_origin(self, env):
        driver, pool = env
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
        driver, _ = env
        origin, _ = volume_with(driver, {"f": "x"})
        snap = new_id()
        driver.create_snapshot(origin, snap)
        clone_path = driver.create_volume_from_snapshot(new_id(), snap, 1)
        written, err = fill(clone_path, GiB)
        assert err == errno.EDQUOT, f"wrote {written >> 20} MiB without hitting the limit"

    def test_create_is_idempotent_and_delete_leaves_nothing(self, env):
        driver, pool = env
        origin, _ = volume_with(driver, {"f": "x"})
        snap = new_id()
        driver.create_snapshot(origin, snap)
        clone = new_id()
        path = driver.create_volume_from_snapshot(clone, snap, 1)
        Path(path, "keep").write_text("k")
        assert driver.create_volume_from_snapshot(clone, snap, 1) == path
        assert Path(path, "keep").read_text() == "k"
        assert [m.mount_point for m in mounts.read_mounts()].count(os.path.realpath(path)) == 1
        qgroup = btrfs.subvolume_id(pool.share(clone), timeout=10)
        driver.delete_volume(clone)
        assert not os.path.lexists(pool.share(clone)) and not os.path.lexists(path)
        assert qgroup not in pool.qgroup_ids()

    def test_from_a_missing_snapshot_fails_and_makes_nothing(self, env):
        driver, pool = env
        clone = new_id()
        with pytest.raises(StorageError):
            driver.create_volume_from_snapshot(clone, new_id(), 1)
        assert not os.path.lexists(pool.share(clone))


class TestRevert:
    def snapshot_then_change(self, driver):
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

    def test_share_holds_the_snapshots_content_in_place(self, env):
        driver, pool = env
        sid, path, snap = self.snapshot_then_change(driver)
        root_ino = path.stat().st_ino
        mount_before = mounts.find_mount(path)
        driver.revert_to_snapshot(sid, snap, 1)
        assert tree(path) == {"dir": "<dir>", "dir/nested": "n", "kept": "v1"}
        assert path.stat().st_mode & 0o777 == 0o750  # the root's attributes too
        # The same subvolume stays mounted at the same place: NFS file handles hold.
        assert path.stat().st_ino == root_ino and mounts.find_mount(path) == mount_before
        assert pool.revert_copies() == []
        assert tree(pool.snapshot(snap)) == tree(path)  # the snapshot is unchanged
        (path / "writable").write_text("yes")

    def test_revert_sets_the_limit_to_the_snapshots_size(self, env):
        driver, pool = env
        sid, path, snap = self.snapshot_then_change(driver)
        driver.revert_to_snapshot(sid, snap, 2)
        assert pool.limit(pool.share(sid)) == 2 * GiB

    def test_revert_is_idempotent(self, env):
        driver, pool = env
        sid, path, snap = self.snapshot_then_change(driver)
        driver.revert_to_snapshot(sid, snap, 1)
        driver.revert_to_snapshot(sid, snap, 1)
        assert tree(path) == {"dir": "<dir>", "dir/nested": "n", "kept": "v1"}
        assert pool.revert_copies() == []

    def test_interrupted_while_copying_is_completed(self, env):
        driver, pool = env
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

    def test_interrupted_after_the_commit_point_only_cleans_up(self, env):
        driver, pool = env
        sid, path, snap = self.snapshot_then_change(driver)
        (pool.root / "reverts").mkdir(exist_ok=True)
        btrfs.subvolume_snapshot(pool.share(sid), pool.root / "reverts" / f"{sid}.done", readonly=True, timeout=10)
        assert driver.list_volumes() == [sid]
        driver.revert_to_snapshot(sid, snap, 1)
        assert tree(path) == {"dir": "<dir>", "dir/nested": "n", "kept": "v1"}
        assert pool.revert_copies() == []

    def test_a_failed_copy_puts_the_previous_content_back(self, env, monkeypatch):
        driver, pool = env
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

    def test_revert_of_a_missing_snapshot_changes_nothing(self, env):
        driver, pool = env
        sid, path = volume_with(driver, {"f": "x"})
        with pytest.raises(StorageError):
            driver.revert_to_snapshot(sid, new_id(), 1)
        assert tree(path) == {"f": "x"} and pool.revert_copies() == []

    def test_delete_volume_removes_a_revert_copy(self, env):
        driver, pool = env
        sid, _ = volume_with(driver, {"f": "x"})
        (pool.root / "reverts").mkdir(exist_ok=True)
        btrfs.subvolume_snapshot(pool.share(sid), pool.root / "reverts" / sid, readonly=True, timeout=10)
        assert driver.list_volumes() == [sid]
        driver.delete_volume(sid)
        assert pool.revert_copies() == [] and driver.list_volumes() == []
