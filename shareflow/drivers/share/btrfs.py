"""Shares as btrfs subvolumes with a qgroup limit, each on its own mount point.

Layout for share ``ID`` on a pool mounted at ``MOUNT_POINT``:

* subvolume ``MOUNT_POINT/shares/ID``, qgroup ``0/<subvolid>`` limited to the size;
* that subvolume mounted (``subvol=``) on ``EXPORTS_DIR/ID`` - Ganesha's FSAL VFS
  only exports a btrfs subvolume that is a mount point of its own;
* a lock file ``EXPORTS_DIR/.locks/ID`` serialising work on the share across
  conductor processes (a mount made twice would stack).

Every step looks before it acts, so a create or delete interrupted anywhere is
completed by calling it again.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
import uuid
from pathlib import Path

from shareflow.config import BtrfsConfig
from shareflow.drivers.base import Capacity, ShareDriver
from shareflow.exceptions import CapacityExceeded, InvalidInput, ShrinkWouldLoseData, StorageError
from shareflow.system import btrfs, filelock, mounts
from shareflow.system.process import run

log = logging.getLogger(__name__)

GiB = 1 << 30
SHARES_DIR = "shares"
LOCKS_DIR = ".locks"
#: Per-mount flags for share mounts: tenants' files must never act as devices
#: or set-uid programs on the storage host.
MOUNT_FLAGS = "nodev,nosuid"
_SAFE_ROOT = re.compile(r"^/[A-Za-z0-9/_.-]*$")


def share_id_of(value: str) -> str:
    """``value`` if it is a UUID in canonical form (so a share has exactly one
    path); anything else never reaches a path or a command line."""
    try:
        ok = isinstance(value, str) and str(uuid.UUID(value)) == value
    except (ValueError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise InvalidInput(f"invalid share id {value!r}: expected a lowercase UUID")
    return value


def _check_size(size_gb: object) -> None:
    if not isinstance(size_gb, int) or isinstance(size_gb, bool) or size_gb <= 0:
        raise InvalidInput(f"invalid share size {size_gb!r}")


def _is_share_id(name: str) -> bool:
    try:
        return share_id_of(name) == name
    except InvalidInput:
        return False


class BtrfsShareDriver(ShareDriver):
    def __init__(self, cfg: BtrfsConfig, *, timeout: float):
        self._cfg = cfg
        self._pool = Path(cfg.mount_point)
        self._exports = Path(cfg.exports_dir)
        self._timeout = timeout

    # --- paths ------------------------------------------------------------

    def _subvolume(self, share_id: str) -> Path:
        return self._pool / SHARES_DIR / share_id

    def volume_path(self, share_id: str) -> str:
        return str(self._exports / share_id_of(share_id))

    def _lock(self, share_id: str, *, remove: bool = False):
        locks = self._exports / LOCKS_DIR
        locks.mkdir(parents=True, exist_ok=True)
        return filelock.locked(locks / share_id, timeout=self._timeout, error=StorageError, remove=remove)

    def _pool_mount(self) -> mounts.Mount:
        m = mounts.find_mount(self._pool)
        if m is None or m.fstype != "btrfs":
            raise StorageError(f"no btrfs pool is mounted on {self._pool}")
        return m

    # --- interface --------------------------------------------------------

    def create_volume(self, share_id: str, size_gb: int) -> str:
        share_id = share_id_of(share_id)
        _check_size(size_gb)
        pool = self._pool_mount()
        with self._lock(share_id):
            subvol = self._subvolume(share_id)
            if not btrfs.is_subvolume(subvol):
                if subvol.exists():
                    raise StorageError(f"{subvol} exists but is not a subvolume")
                self._check_fits(size_gb)
                subvol.parent.mkdir(exist_ok=True)
                btrfs.subvolume_create(subvol, timeout=self._timeout)
            # Always (re)applied: completes a create that died before it, and
            # is what makes the size a hard limit (writes past it get EDQUOT).
            btrfs.qgroup_limit(subvol, size_gb * GiB, timeout=self._timeout)
            self._mount(share_id, pool)
        log.info("volume for share %s ready (%d GiB)", share_id, size_gb)
        return self.volume_path(share_id)

    def delete_volume(self, share_id: str) -> None:
        share_id = share_id_of(share_id)
        self._pool_mount()  # without the pool, absence proves nothing
        with self._lock(share_id, remove=True):
            self._unmount(share_id)
            subvol = self._subvolume(share_id)
            if btrfs.is_subvolume(subvol):
                ids = [btrfs.subvolume_id(subvol, timeout=self._timeout)]
                btrfs.subvolume_delete(subvol, timeout=self._timeout)
            elif subvol.exists():
                raise StorageError(f"{subvol} exists but is not a subvolume")
            else:
                # Absent already: maybe an earlier attempt died right after
                # deleting it, before its qgroup went; its id is lost, so look
                # for any qgroup whose subvolume is gone.
                ids = None
            btrfs.destroy_qgroups(self._pool, ids, timeout=self._timeout)
        log.info("volume for share %s deleted", share_id)

    def list_volumes(self) -> list[str]:
        found = set()
        for directory in (self._pool / SHARES_DIR, self._exports):
            try:
                found.update(n for n in os.listdir(directory) if _is_share_id(n))
            except FileNotFoundError:
                pass
        exports = os.path.realpath(self._exports)
        for m in mounts.read_mounts():
            parent, name = posixpath.split(m.mount_point)
            if parent == exports and _is_share_id(name):
                found.add(name)
        return sorted(found)

    def capacity(self) -> Capacity:
        self._pool_mount()  # statvfs of an unmounted path would describe its parent
        st = os.statvfs(self._pool)
        return Capacity(
            total_gb=st.f_blocks * st.f_frsize // GiB,
            free_gb=st.f_bavail * st.f_frsize // GiB,
        )

    def ensure_volumes(self) -> list[str]:
        """Mount every share's subvolume that is not mounted (after a reboot or
        a pool remount, before the export server starts). Returns their ids."""
        pool = self._pool_mount()
        done = []
        try:
            names = sorted(os.listdir(self._pool / SHARES_DIR))
        except FileNotFoundError:
            return done
        for share_id in filter(_is_share_id, names):
            if btrfs.is_subvolume(self._subvolume(share_id)):
                with self._lock(share_id):
                    self._mount(share_id, pool)
                done.append(share_id)
        return done

    def resize_volume(self, share_id: str, new_size_gb: int) -> None:
        """Change the subvolume's qgroup limit (online: it stays mounted and
        exported). Under the share's lock, so the usage checked is the usage
        the new limit is set against: a shrink below the referenced bytes is
        refused before anything changes."""
        share_id = share_id_of(share_id)
        _check_size(new_size_gb)
        self._pool_mount()
        new_bytes = new_size_gb * GiB
        with self._lock(share_id):
            subvol = self._existing_subvolume(share_id)
            group = btrfs.subvolume_qgroup(subvol, timeout=self._timeout)
            if group.max_referenced == new_bytes:
                return  # already done (a re-run after a conductor died)
            if group.max_referenced is None or new_bytes < group.max_referenced:
                if group.referenced > new_bytes:
                    raise ShrinkWouldLoseData(
                        f"share {share_id} holds {group.referenced} bytes, more than "
                        f"{new_size_gb} GiB; not shrunk"
                    )
            else:
                self._check_fits(new_size_gb)
            btrfs.qgroup_limit(subvol, new_bytes, timeout=self._timeout)
        log.info("volume for share %s resized to %d GiB", share_id, new_size_gb)

    def used_bytes(self, share_id: str) -> int:
        share_id = share_id_of(share_id)
        self._pool_mount()
        return btrfs.subvolume_qgroup(self._existing_subvolume(share_id), timeout=self._timeout).referenced

    # --- steps ------------------------------------------------------------

    def _existing_subvolume(self, share_id: str) -> Path:
        subvol = self._subvolume(share_id)
        if not btrfs.is_subvolume(subvol):
            raise StorageError(f"share {share_id} has no volume at {subvol}",
                               user_message="the share's volume is missing on the backend")
        return subvol

    def _check_fits(self, size_gb: int) -> None:
        # Thin provisioning: limits may add up past the pool, but one share
        # larger than the whole pool can never be honoured.
        total = self.capacity().total_gb
        if size_gb > total:
            raise CapacityExceeded(
                f"share of {size_gb} GiB does not fit in pool {self._pool} ({total} GiB)",
                user_message=f"no pool can hold a share of {size_gb} GiB",
            )

    def _mount(self, share_id: str, pool: mounts.Mount) -> None:
        target = self._exports / share_id
        target.mkdir(parents=True, exist_ok=True)
        if not _SAFE_ROOT.match(pool.root):
            raise StorageError(f"pool root {pool.root!r} cannot be used in a mount option")
        root = posixpath.join(pool.root, SHARES_DIR, share_id)
        current = mounts.find_mount(target)
        if current is not None:
            if current.source == pool.source and current.root == root:
                return
            raise StorageError(f"{target} has {current.source}:{current.root} mounted, expected {root}")
        run(
            ["mount", "-t", "btrfs", "-o", f"subvol={root.lstrip('/')},{MOUNT_FLAGS}", pool.source, str(target)],
            timeout=self._timeout,
        )

    def _unmount(self, share_id: str) -> None:
        target = self._exports / share_id
        # A loop, not one umount: a mount may have been stacked by a race
        # before locking existed, and every layer must go.
        for _ in range(8):
            if not mounts.is_mountpoint(target):
                break
            mounts.unmount(target, timeout=self._timeout)
        else:
            raise StorageError(f"{target} is still mounted")
        try:
            target.rmdir()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StorageError(f"cannot remove {target}: {e}") from e
