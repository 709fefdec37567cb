"""Shares as btrfs subvolumes with a qgroup limit, each on its own mount point.

Layout for share ``ID`` on a pool mounted at ``MOUNT_POINT``:

* subvolume ``MOUNT_POINT/shares/ID``, qgroup ``0/<subvolid>`` limited to the size;
* that subvolume mounted (``subvol=``) on ``EXPORTS_DIR/ID`` - Ganesha's FSAL VFS
  only exports a btrfs subvolume that is a mount point of its own;
* a lock file ``EXPORTS_DIR/.locks/ID`` serialising work on the share across
  conductor processes (a mount made twice would stack).

Snapshot ``SNAP`` of a share is the read-only subvolume
``MOUNT_POINT/snapshots/SNAP`` (with its own qgroup, and a lock file
``EXPORTS_DIR/.locks/SNAP``). A share created from it is a writable snapshot
of that snapshot, laid out like any other share. While a share is reverted,
``MOUNT_POINT/reverts/ID`` holds a read-only copy of its previous content.

Every step looks before it acts, so a create or delete interrupted anywhere is
completed by calling it again. A subvolume's id is written to
``MOUNT_POINT/.deleting/<dir>-<name>`` before it is deleted, so a delete
interrupted between the subvolume and its qgroup finds the qgroup again.

No operation costs more with more shares on the pool: mounts are checked by
``stat`` (not by reading every mount of the host), qgroups in sysfs (not by
``btrfs qgroup show``, which lists every qgroup of the pool), and a rescan of
the pool's accounting only runs when the kernel says it is inconsistent.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import shutil
import uuid
from pathlib import Path

from shareflow.config import BtrfsConfig, parse_btrfs
from shareflow.drivers.base import Capacity, ShareDriver, VolumesNotEnsured  # noqa: F401 - re-exported
from shareflow.drivers.share import registry
from shareflow.exceptions import CapacityExceeded, InvalidInput, ShrinkWouldLoseData, StorageError
from shareflow.system import btrfs, filelock, mounts
from shareflow.system.batch import run_batch
from shareflow.system.process import run

log = logging.getLogger(__name__)

GiB = 1 << 30
SHARES_DIR = "shares"
SNAPSHOTS_DIR = "snapshots"
#: Copies of shares' content taken before a revert (see ``revert_to_snapshot``).
REVERTS_DIR = "reverts"
#: A revert's copy renamed once the share holds the snapshot's content.
DONE_SUFFIX = ".done"
LOCKS_DIR = ".locks"
#: Ids of subvolumes being deleted (see ``_delete_subvolume``).
DELETING_DIR = ".deleting"
#: Bound of the copy a revert makes (a reflink copy: metadata only, but
#: proportional to the number of files).
REVERT_COPY_TIMEOUT = 3600.0
#: Per-mount flags for share mounts: tenants' files must never act as devices
#: or set-uid programs on the storage host.
MOUNT_FLAGS = "nodev,nosuid"


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


def snapshot_id_of(value: str) -> str:
    try:
        return share_id_of(value)
    except InvalidInput:
        raise InvalidInput(f"invalid snapshot id {value!r}: expected a lowercase UUID") from None


def _check_volume_size(size_gb: object) -> None:
    if not isinstance(size_gb, int) or isinstance(size_gb, bool) or size_gb <= 0:
        raise InvalidInput(f"invalid share size {size_gb!r}")


def _is_share_id(name: str) -> bool:
    try:
        return share_id_of(name) == name
    except InvalidInput:
        return False


class BtrfsShareDriver(ShareDriver):
    #: Limits may add up past the pool (thin); a revert keeps the subvolume
    #: mounted and exported, so clients keep their mounts (tested over NFS).
    CAPABILITIES = {
        "snapshot_support": True,
        "create_share_from_snapshot_support": True,
        "revert_to_snapshot_support": True,
        "mount_snapshot_support": False,
        "thin_provisioning": True,
        "shrink_support": True,
        "driver_name": "BtrfsShareDriver",
        "driver_version": "1.0",
        "share_driver": "btrfs",
        "filesystem": "btrfs",
    }

    def __init__(self, cfg: BtrfsConfig, *, timeout: float):
        self._cfg = cfg
        self._pool = Path(cfg.mount_point)
        self._exports = Path(cfg.exports_dir)
        self._timeout = timeout
        #: The pool's qgroup status file in sysfs (found on first use; False: none).
        self._qgroup_status: Path | bool | None = None
        #: The pool's mount as last read, and the (st_dev, st_ino) of the pool
        #: directory then: while a stat gives the same, it is still mounted.
        self._pool_seen: tuple[tuple[int, int], mounts.Mount] | None = None

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
        """The pool's mount. Read from the host's mount table once; after that
        a ``stat`` of the pool directory tells whether it is the same mount
        (unmounted, the directory is another filesystem's), since the table
        holds a line per share and reading it would cost every operation
        more with every share."""
        try:
            st = os.stat(self._pool)
            seen = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            seen = None
        if seen is not None and self._pool_seen is not None and self._pool_seen[0] == seen:
            return self._pool_seen[1]
        m = mounts.find_mount(self._pool)
        if m is None or m.fstype != "btrfs":
            self._pool_seen = None
            raise StorageError(f"no btrfs pool is mounted on {self._pool}")
        self._pool_seen = (seen, m) if seen is not None else None
        return m

    def _keep_limits_enforced(self) -> None:
        """Every size limit of the pool holds only while its qgroups are
        consistent; once marked inconsistent (by anything: another tool, a
        kernel path) the kernel enforces none until a rescan. Checked (a
        sysfs read) after each change of volumes, and repaired then. On first
        use, the kernel is also told to account deleted subvolumes whatever
        their depth (``btrfs.account_every_subtree_drop``), so that deleting
        a large share does not make the pool inconsistent in the first place."""
        if self._qgroup_status is None:
            self._qgroup_status = btrfs.qgroup_status_file(self._pool) or False
            if self._qgroup_status and btrfs.account_every_subtree_drop(self._pool):
                log.info("pool %s: qgroups now account deleted subvolumes of any depth", self._pool)
        if self._qgroup_status:
            btrfs.ensure_qgroups_consistent(self._pool, status_file=self._qgroup_status, timeout=self._timeout)

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
        self._keep_limits_enforced()
        log.info("volume for share %s ready (%d GiB)", share_id, size_gb)
        return self.volume_path(share_id)

    def delete_volume(self, share_id: str) -> None:
        share_id = share_id_of(share_id)
        self._pool_mount()  # without the pool, absence proves nothing
        with self._lock(share_id, remove=True):
            self._drop_revert_copies(share_id)
            self._unmount(share_id)
            self._delete_subvolume(self._subvolume(share_id))
        self._keep_limits_enforced()
        log.info("volume for share %s deleted", share_id)

    def list_volumes(self) -> list[str]:
        found = set(self._revert_copies())
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

    # --- snapshots ----------------------------------------------------------

    def _snapshot(self, snapshot_id: str) -> Path:
        return self._pool / SNAPSHOTS_DIR / snapshot_id

    def create_snapshot(self, share_id: str, snapshot_id: str) -> str:
        """A read-only btrfs snapshot of the share's subvolume (atomic: it is
        there whole or not at all, so one that exists is reused). It gets its
        own qgroup; its data is shared with the share until either changes.
        Returns its path, the snapshot's provider location."""
        share_id, snapshot_id = share_id_of(share_id), snapshot_id_of(snapshot_id)
        self._pool_mount()
        # The snapshot's lock, then the share's (the order every method keeps).
        with self._lock(snapshot_id), self._lock(share_id):
            target = self._snapshot(snapshot_id)
            if not btrfs.is_subvolume(target):
                if target.exists():
                    raise StorageError(f"{target} exists but is not a subvolume")
                source = self._require_subvolume(self._subvolume(share_id), "the share's volume")
                target.parent.mkdir(exist_ok=True)
                btrfs.subvolume_snapshot(source, target, readonly=True, timeout=self._timeout)
        log.info("snapshot %s of share %s ready", snapshot_id, share_id)
        return str(target)

    def delete_snapshot(self, snapshot_id: str) -> None:
        snapshot_id = snapshot_id_of(snapshot_id)
        self._pool_mount()  # without the pool, absence proves nothing
        with self._lock(snapshot_id, remove=True):
            self._delete_subvolume(self._snapshot(snapshot_id))
        self._keep_limits_enforced()
        log.info("snapshot %s deleted", snapshot_id)

    def list_snapshots(self) -> list[str]:
        found = set()
        try:
            found.update(n for n in os.listdir(self._pool / SNAPSHOTS_DIR) if _is_share_id(n))
        except FileNotFoundError:
            pass
        return sorted(found)

    def create_volume_from_snapshot(self, share_id: str, snapshot_id: str, size_gb: int) -> str:
        """A writable btrfs snapshot of the snapshot becomes the new share's
        subvolume, with a qgroup limit of ``size_gb`` and mounted like any
        volume. btrfs subvolumes are independent of the one they were taken
        from: deleting the snapshot or its share later leaves this one whole."""
        share_id, snapshot_id = share_id_of(share_id), snapshot_id_of(snapshot_id)
        _check_volume_size(size_gb)
        pool = self._pool_mount()
        with self._lock(snapshot_id), self._lock(share_id):
            subvol = self._subvolume(share_id)
            if not btrfs.is_subvolume(subvol):
                if subvol.exists():
                    raise StorageError(f"{subvol} exists but is not a subvolume")
                source = self._require_subvolume(self._snapshot(snapshot_id), "the snapshot")
                self._check_fits(size_gb)
                subvol.parent.mkdir(exist_ok=True)
                btrfs.subvolume_snapshot(source, subvol, readonly=False, timeout=self._timeout)
            btrfs.qgroup_limit(subvol, size_gb * GiB, timeout=self._timeout)
            self._mount(share_id, pool)
        self._keep_limits_enforced()
        log.info("volume for share %s ready from snapshot %s (%d GiB)", share_id, snapshot_id, size_gb)
        return self.volume_path(share_id)

    def revert_to_snapshot(self, share_id: str, snapshot_id: str, size_gb: int) -> None:
        """Make the share's content the snapshot's, in place.

        The share's subvolume stays what is mounted and exported, so NFS
        clients keep their mounts and the root's file handle (a swapped-in
        subvolume would have new file handles, stale for every client). How:

        1. ``reverts/ID``: a read-only snapshot of the share as it is now
           (taken unless it exists: then an earlier call was interrupted
           while copying, and it holds the content from before that call);
        2. empty the share and reflink-copy the snapshot into it
           (``cp -a --reflink=always``: no data is copied, extents are shared);
        3. set the size limit to ``size_gb``;
        4. rename ``reverts/ID`` to ``reverts/ID.done`` - the commit point -
           and delete it.

        Interrupted anywhere, the call is completed by calling it again (steps
        2 and 3 are redone from the snapshot; a ``.done`` copy is only
        deleted). If step 2 or 3 fails, the previous content is copied back
        from ``reverts/ID`` before the error is raised (the limit was not
        changed), so a failed revert loses nothing. NFS-Ganesha must not cache
        attributes for this to be seen at once (its exports set
        ``Attr_Expiration_Time = 0``).
        """
        share_id, snapshot_id = share_id_of(share_id), snapshot_id_of(snapshot_id)
        _check_volume_size(size_gb)
        self._pool_mount()
        with self._lock(snapshot_id), self._lock(share_id):
            live = self._require_subvolume(self._subvolume(share_id), "the share's volume")
            source = self._require_subvolume(self._snapshot(snapshot_id), "the snapshot")
            copy, done = self._revert_copy(share_id), self._revert_copy(share_id, done=True)
            self._drop_subvolume(done)  # a finished revert's leftover
            if not btrfs.is_subvolume(copy):
                copy.parent.mkdir(exist_ok=True)
                btrfs.subvolume_snapshot(live, copy, readonly=True, timeout=self._timeout)
            try:
                self._replace_content(live, source)
                btrfs.qgroup_limit(live, size_gb * GiB, timeout=self._timeout)
            except Exception:
                log.exception("reverting share %s to snapshot %s failed; putting its content back",
                              share_id, snapshot_id)
                try:
                    self._replace_content(live, copy)
                except Exception:
                    # The copy stays: the next revert of this share uses it.
                    log.exception("could not put back the content of share %s; it is kept in %s",
                                  share_id, copy)
                else:
                    with contextlib.suppress(StorageError):
                        self._drop_subvolume(copy)  # the share holds the same again
                raise
            os.rename(copy, done)
            try:
                self._drop_subvolume(done)
            except StorageError:
                # The share is reverted; the leftover goes with the next
                # revert or the share's delete.
                log.warning("could not delete %s after reverting share %s", done, share_id, exc_info=True)
        log.info("share %s reverted to snapshot %s", share_id, snapshot_id)

    def capacity(self) -> Capacity:
        self._pool_mount()  # statvfs of an unmounted path would describe its parent
        st = os.statvfs(self._pool)
        return Capacity(
            total_gb=st.f_blocks * st.f_frsize // GiB,
            free_gb=st.f_bavail * st.f_frsize // GiB,
        )

    def ensure_volumes(self, *, workers: int = 1) -> list[str]:
        """Mount every share's subvolume that is not mounted (after a reboot or
        a pool remount, before the export server starts). Returns their ids.

        Proportional to the number of shares: one directory listing, then per
        share a lock, two stats and, if it is not mounted, one mount(2) -
        never a read of the whole mount table per share, which made this
        quadratic (500 shares took 12 s, 5,000 would take most of an hour).
        ``workers`` threads mount at once; progress is logged. A volume that
        cannot be mounted does not stop the others: every one is tried, then
        :class:`VolumesNotEnsured` names the failures."""
        pool = self._pool_mount()
        self._keep_limits_enforced()
        try:
            names = sorted(os.listdir(self._pool / SHARES_DIR))
        except FileNotFoundError:
            return []
        ids = [n for n in names if _is_share_id(n) and btrfs.is_subvolume(self._subvolume(n))]

        def ensure_one(share_id: str) -> None:
            with self._lock(share_id):
                self._mount(share_id, pool)

        result = run_batch(ids, ensure_one, workers=workers, label=f"ensure {self._pool}",
                           what="volumes mounted", log=log)
        if result.failed:
            raise VolumesNotEnsured(result.done, result.failed)
        return result.done

    def resize_volume(self, share_id: str, new_size_gb: int) -> None:
        """Change the subvolume's qgroup limit (online: it stays mounted and
        exported). A shrink below the referenced bytes (counted after a
        commit) is refused before anything changes. A client writing between
        that check and the new limit can at most take the volume past it:
        btrfs then refuses further writes, and never drops data."""
        share_id = share_id_of(share_id)
        _check_size(new_size_gb)
        self._pool_mount()
        self._keep_limits_enforced()  # the numbers a shrink is checked against must be right
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
                        f"{new_size_gb} GiB; not shrunk",
                        user_message=f"{group.referenced / GiB:.2f} GiB of data is in use, more than "
                        f"the requested {new_size_gb} GiB",
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
        root = posixpath.join(pool.root, SHARES_DIR, share_id)
        # Mounted already when the mount point shows the subvolume's own root
        # (its device number is the subvolume's, its inode the root's): two
        # stats, where the mount table has a line per share.
        shown, subvol = os.stat(target), os.stat(self._subvolume(share_id))
        if (shown.st_dev, shown.st_ino) == (subvol.st_dev, subvol.st_ino):
            return
        if os.path.ismount(target):
            current = mounts.find_mount(target)
            where = f"{current.source}:{current.root}" if current else "something else"
            raise StorageError(f"{target} has {where} mounted, expected {root}")
        # Bound from the pool's own mount (mount(2), no mount process): the
        # mount table then shows the subvolume as the mount's root, as a
        # subvol= mount would, and a subvol= mount walks the mount table.
        mounts.bind_mount(self._subvolume(share_id), target, flags=MOUNT_FLAGS)

    def _unmount(self, share_id: str) -> None:
        target = self._exports / share_id
        # A loop, not one umount: a mount may have been stacked by a race
        # before locking existed, and every layer must go. ismount (two
        # stats), not the mount table, which grows with the number of shares.
        for _ in range(8):
            if not os.path.ismount(target):  # a stat of it and its parent
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

    def _require_subvolume(self, path: Path, what: str) -> Path:
        if not btrfs.is_subvolume(path):
            raise StorageError(f"{what} is missing: {path} is not a subvolume",
                               user_message=f"{what} is missing on the backend")
        return path

    def _revert_copy(self, share_id: str, *, done: bool = False) -> Path:
        return self._pool / REVERTS_DIR / (share_id + (DONE_SUFFIX if done else ""))

    def _revert_copies(self) -> list[str]:
        """Share ids with a revert's copy left (remnants of their volumes)."""
        try:
            names = os.listdir(self._pool / REVERTS_DIR)
        except FileNotFoundError:
            return []
        return [sid for sid in (n.removesuffix(DONE_SUFFIX) for n in names) if _is_share_id(sid)]

    def _drop_revert_copies(self, share_id: str) -> None:
        for done in (False, True):
            self._drop_subvolume(self._revert_copy(share_id, done=done))

    def _drop_subvolume(self, path: Path) -> None:
        """Delete a subvolume of ours and its qgroup; absence is fine."""
        self._delete_subvolume(path)

    def _delete_subvolume(self, path: Path) -> None:
        """Delete the subvolume at ``path`` (one of ours) and its qgroup;
        absence is fine. Its id is written down first, on the pool itself (so
        the delete's commit carries it): a call interrupted after the
        subvolume went and before its qgroup did is completed by the next
        from that record, where otherwise only a look at every qgroup of the
        pool could find the qgroup left behind."""
        record = self._pool / DELETING_DIR / f"{path.parent.name}-{path.name}"
        if btrfs.is_subvolume(path):
            subvol_id = btrfs.subvolume_id(path, timeout=self._timeout)
            self._write_record(record, subvol_id)
            btrfs.subvolume_delete(path, timeout=self._timeout)
        elif path.exists():
            raise StorageError(f"{path} exists but is not a subvolume")
        else:
            try:
                subvol_id = int(record.read_text())
            except FileNotFoundError:
                return  # never made, or deleted whole
        btrfs.destroy_qgroups(self._pool, [subvol_id], timeout=self._timeout)
        record.unlink(missing_ok=True)

    @staticmethod
    def _write_record(record: Path, subvol_id: int) -> None:
        """Whole or absent (a rename); no fsync of its own: the delete's
        commit makes it durable with the deletion. Refused (the pool's own
        space or quota exhausted: then btrfs would refuse the delete as well),
        nothing is deleted and the call can be made again."""
        tmp = record.with_name(f".{record.name}.{os.getpid()}.tmp")
        try:
            record.parent.mkdir(exist_ok=True)
            tmp.write_text(f"{subvol_id}\n")
            os.replace(tmp, record)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise StorageError(f"cannot note subvolume {subvol_id} in {record} before deleting it: {e}",
                               user_message="the backend has no room to delete the volume now") from e

    def _replace_content(self, target: Path, source: Path) -> None:
        """Make the content of directory ``target`` (a subvolume's root) that of
        ``source``, root attributes included: empty it, then reflink-copy."""
        try:
            for entry in os.scandir(target):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
        except OSError as e:
            raise StorageError(f"cannot empty {target}: {e}") from e
        run(["cp", "-a", "--reflink=always", "--", f"{source}/.", f"{target}/"],
            timeout=max(self._timeout, REVERT_COPY_TIMEOUT))


def _prepare_pool(cfg: BtrfsConfig, timeout: float) -> registry.PreparedPool | None:
    from shareflow.system import btrfs_pool

    if cfg.image is None:
        return None
    pool = btrfs_pool.pool_for(cfg, timeout=timeout)
    return registry.PreparedPool(pool.mount_point, lambda: btrfs_pool.unmount_pool(pool, timeout=timeout))


registry.register(registry.ShareDriverKind(
    name="btrfs", section="btrfs", parse=parse_btrfs, driver=BtrfsShareDriver, prepare_pool=_prepare_pool,
))
