"""Thin wrappers over the ``btrfs`` command and btrfs ioctls, plus the pure
parsing they need.

Shared by the pool manager (mkfs, quota) and the share driver (subvolumes,
qgroups). Each call is one command through :func:`shareflow.system.process.run`,
or, for what every create and delete does (a subvolume made and its qgroup
limited; its id read, deleted and committed), the ioctls the command makes,
without its fork and exec (a create's two 3.4 -> 0.08 ms, a delete's 7.1 ->
1.5 ms with its commit).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import stat
import struct
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from shareflow.exceptions import CommandError, StorageError
from shareflow.system import ioctl
from shareflow.system.process import run

log = logging.getLogger(__name__)

#: Where the kernel shows each mounted btrfs filesystem (by fsid).
SYSFS_BTRFS = Path("/sys/fs/btrfs")

#: The root directory of every btrfs subvolume has this inode number
#: (BTRFS_FIRST_FREE_OBJECTID); ordinary directories never do. Checking it is
#: a stat() instead of a command, so "look before create" costs nothing.
SUBVOLUME_ROOT_INO = 256
#: Superblock magic, at 64 KiB + 0x40 in a btrfs device.
_MAGIC = b"_BHRfS_M"
_MAGIC_OFFSET = 0x10000 + 0x40
#: ``_IOR(0x94, 31, struct btrfs_ioctl_fs_info_args)`` (1 KiB): the fsid of
#: the filesystem a file is on, for any user, without a command.
_IOC_FS_INFO = 0x8400941F
_FS_INFO_SIZE = 1024
_FSID = slice(16, 32)
#: ``limit_flags`` bit saying ``max_referenced`` is a limit (BTRFS_QGROUP_LIMIT_MAX_RFER).
_LIMIT_MAX_RFER = 1
#: ``_IOW(0x94, 14, struct btrfs_ioctl_vol_args)``: make subvolume ``name`` in
#: the directory the ioctl is on. The argument: an s64 (unused here) and the
#: name, NUL-padded to BTRFS_PATH_NAME_MAX + 1 bytes (4 KiB in all).
_IOC_SUBVOL_CREATE = 0x5000940E
_VOL_ARGS = struct.Struct("q4088s")
#: ``_IOR(0x94, 43, struct btrfs_ioctl_qgroup_limit_args)``: a qgroup id (0:
#: the subvolume the ioctl is on) and struct btrfs_qgroup_limit (flags,
#: max_rfer, max_excl, rsv_rfer, rsv_excl).
_IOC_QGROUP_LIMIT = 0x8030942B
_QGROUP_LIMIT_ARGS = struct.Struct("QQQQQQ")
#: ``_IOW(0x94, 15, struct btrfs_ioctl_vol_args)``: delete subvolume ``name``
#: of the directory the ioctl is on (its contents with it).
_IOC_SNAP_DESTROY = 0x5000940F
#: ``_IOR(0x94, 24, __u64)`` and ``_IOW(0x94, 22, __u64)``: start the commit of
#: the running transaction (its id back), then wait for that commit - what
#: ``btrfs subvolume delete --commit-after`` does after its deletes.
_IOC_START_SYNC = 0x80089418
_IOC_WAIT_SYNC = 0x40089416
_U64 = struct.Struct("Q")
#: ``_IOWR(0x94, 18, struct btrfs_ioctl_ino_lookup_args)``: with tree id 0 and
#: the root directory's inode (BTRFS_FIRST_FREE_OBJECTID), the id of the
#: subvolume the ioctl is on - what ``btrfs inspect-internal rootid`` asks.
_IOC_INO_LOOKUP = 0xD0009412
_INO_LOOKUP_ARGS = struct.Struct("QQ4080s")
#: BTRFS_MAX_LEVEL: a subvolume tree is never this deep.
MAX_TREE_LEVEL = 8


@dataclass(frozen=True)
class Qgroup:
    level: int
    id: int
    referenced: int
    exclusive: int
    #: Subvolume path relative to the filesystem's top level; None when the
    #: subvolume is gone (btrfs shows ``<stale>``), or when the qgroup was
    #: read from sysfs (which does not say).
    path: str | None
    #: The referenced-bytes limit (``max_rfer``); None when there is none or
    #: when it was not asked for (:func:`qgroup_show` without limits).
    max_referenced: int | None = None


def is_subvolume(path: str | os.PathLike) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_ino == SUBVOLUME_ROOT_INO


def has_btrfs_signature(image: str | os.PathLike) -> bool:
    """Whether the file or device holds a btrfs filesystem (reads the magic)."""
    try:
        with open(image, "rb") as f:
            f.seek(_MAGIC_OFFSET)
            return f.read(len(_MAGIC)) == _MAGIC
    except FileNotFoundError:
        return False


def mkfs(image: str | os.PathLike, *, timeout: float) -> None:
    run(["mkfs.btrfs", "-q", os.fspath(image)], timeout=timeout)


def quota_enable(mount_point: str | os.PathLike, *, timeout: float) -> None:
    run(["btrfs", "quota", "enable", os.fspath(mount_point)], timeout=timeout)


def _subvolume_name(name: str) -> bytes:
    """``name`` as the vol_args ioctls take it (one path component)."""
    encoded = name.encode()
    if not encoded or len(encoded) >= _VOL_ARGS.size - 8 or "/" in name or name in (".", ".."):
        raise StorageError(f"not a subvolume name: {name!r}")
    return encoded


def subvolume_create(path: str | os.PathLike, *, timeout: float) -> None:
    """Make the subvolume ``path`` (its parent directory exists; ``timeout``
    kept for the callers of the command this replaced: an ioctl does not
    hang on a healthy filesystem)."""
    parent, name = os.path.split(os.fspath(path))
    ioctl.on_directory(parent or ".", _IOC_SUBVOL_CREATE, bytearray(_VOL_ARGS.pack(0, _subvolume_name(name))),
                       f"creating subvolume {path}")


def subvolume_delete(path: str | os.PathLike, *, timeout: float) -> None:
    """Delete the subvolume ``path`` (not mounted anywhere), then commit:
    the commit wakes the cleaner, which drops the subvolume (and, on recent
    kernels, its qgroup) within milliseconds instead of at the next
    periodic commit, up to 30 s later (``btrfs subvolume delete
    --commit-after``, by its ioctls)."""
    parent, name = os.path.split(os.fspath(path))
    ioctl.on_directory(parent or ".", _IOC_SNAP_DESTROY, bytearray(_VOL_ARGS.pack(0, _subvolume_name(name))),
                       f"deleting subvolume {path}")
    transid = bytearray(_U64.size)
    ioctl.on_directory(parent or ".", _IOC_START_SYNC, transid, f"committing the delete of {path}")
    ioctl.on_directory(parent or ".", _IOC_WAIT_SYNC, transid, f"waiting for the commit of the delete of {path}")


def subvolume_snapshot(source: str | os.PathLike, target: str | os.PathLike, *, readonly: bool,
                       timeout: float) -> None:
    """Snapshot the subvolume ``source`` as a new subvolume ``target`` (atomic:
    afterwards ``target`` is either complete or absent). Read-only or writable;
    either way independent of ``source`` from then on (shared extents are
    copied on write)."""
    argv = ["btrfs", "subvolume", "snapshot", *(["-r"] if readonly else []),
            os.fspath(source), os.fspath(target)]
    run(argv, timeout=timeout)


def subvolume_id(path: str | os.PathLike, *, timeout: float) -> int:
    """The id of the subvolume ``path`` is in (its root, or any directory of it)."""
    args = bytearray(_INO_LOOKUP_ARGS.pack(0, SUBVOLUME_ROOT_INO, b""))
    ioctl.on_directory(path, _IOC_INO_LOOKUP, args, f"reading the subvolume id of {path}")
    return _U64.unpack_from(args)[0]


def qgroup_limit(path: str | os.PathLike, size_bytes: int, *, timeout: float) -> None:
    """Limit the referenced bytes of subvolume ``path``'s own qgroup (as
    ``btrfs qgroup limit SIZE PATH``; quotas must be enabled)."""
    size = int(size_bytes)
    if size <= 0:
        raise StorageError(f"not a qgroup limit: {size_bytes!r}")
    limit = _QGROUP_LIMIT_ARGS.pack(0, _LIMIT_MAX_RFER, size, 0, 0, 0)
    ioctl.on_directory(path, _IOC_QGROUP_LIMIT, bytearray(limit), f"limiting the qgroup of {path} to {size} bytes")


def qgroup_show(mount_point: str | os.PathLike, *, timeout: float) -> list[Qgroup]:
    out = run(["btrfs", "qgroup", "show", "--raw", os.fspath(mount_point)], timeout=timeout).stdout
    return parse_qgroup_show(out)


def parse_qgroup_show(text: str, *, limits: bool = False) -> list[Qgroup]:
    """Parse ``btrfs qgroup show --raw`` (columns: qgroupid, referenced,
    exclusive, path); with ``limits``, the output of ``--raw -r``, which has
    a max referenced column (a number or ``none``) before the path."""
    fixed = 4 if limits else 3
    groups = []
    for line in text.splitlines():
        parts = line.split(None, fixed)
        if len(parts) < fixed or "/" not in parts[0]:
            continue
        level, _, ident = parts[0].partition("/")
        try:
            g_level, g_id, rfer, excl = int(level), int(ident), int(parts[1]), int(parts[2])
            max_rfer = None if not limits or parts[3] == "none" else int(parts[3])
        except ValueError:
            continue  # the header line
        path = parts[fixed].strip() if len(parts) > fixed else None
        if path in ("<stale>", ""):
            path = None
        groups.append(Qgroup(g_level, g_id, rfer, excl, path, max_rfer))
    return groups


def sysfs_dir(path: str | os.PathLike) -> Path | None:
    """``/sys/fs/btrfs/<fsid>`` of the btrfs filesystem ``path`` is on (one
    ioctl, whatever else is mounted); None when ``path`` is not on btrfs or
    the kernel shows no such directory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        info = fcntl.ioctl(fd, _IOC_FS_INFO, bytes(_FS_INFO_SIZE))
    except OSError:
        return None
    finally:
        os.close(fd)
    found = SYSFS_BTRFS / str(uuid.UUID(bytes=bytes(info[_FSID])))
    return found if found.is_dir() else None


def sysfs_qgroup(fs_dir: Path, subvol_id: int) -> Qgroup | None:
    """Qgroup ``0/subvol_id`` as the kernel holds it now (its numbers as of
    the last commit, its limit as set), from ``fs_dir/qgroups/0_<id>``: a few
    file reads, where ``btrfs qgroup show`` reads every qgroup of the
    filesystem. None when there is no such qgroup."""
    group = fs_dir / "qgroups" / f"0_{int(subvol_id)}"
    try:
        rfer, excl, max_rfer, flags = (
            int((group / name).read_text())
            for name in ("referenced", "exclusive", "max_referenced", "limit_flags")
        )
    except OSError as e:
        # ENODEV: the kernel removed the qgroup while its files were read.
        if e.errno in (errno.ENOENT, errno.ENODEV):
            return None
        raise
    return Qgroup(0, int(subvol_id), rfer, excl, None, max_rfer if flags & _LIMIT_MAX_RFER else None)


def subvolume_qgroup(path: str | os.PathLike, *, timeout: float) -> Qgroup:
    """The level-0 qgroup of the subvolume at ``path``, with its limit, as of
    now: qgroup numbers are only brought up to date by a transaction commit,
    so this commits first (``btrfs filesystem sync``); without that, data
    written a moment ago would not be counted. Read from sysfs (constant
    cost); from ``btrfs qgroup show`` only on a kernel without it."""
    subvol_id = subvolume_id(path, timeout=timeout)
    filesystem_sync(path, timeout=timeout)
    fs_dir = sysfs_dir(path)
    if fs_dir is not None and (fs_dir / "qgroups").is_dir():
        group = sysfs_qgroup(fs_dir, subvol_id)
        if group is not None:
            return group
    else:
        out = run(["btrfs", "qgroup", "show", "--raw", "-r", "-f", os.fspath(path)], timeout=timeout).stdout
        for group in parse_qgroup_show(out, limits=True):
            if group.level == 0 and group.id == subvol_id:
                return group
    raise StorageError(f"subvolume {os.fspath(path)} (id {subvol_id}) has no qgroup; are quotas enabled?")


def qgroup_destroy(mount_point: str | os.PathLike, subvol_id: int, *, timeout: float) -> bool:
    """Destroy qgroup ``0/subvol_id``. Returns False when it did not exist;
    raises :class:`CommandError` otherwise (EBUSY while the deleted subvolume
    is still being cleaned)."""
    try:
        run(["btrfs", "qgroup", "destroy", f"0/{int(subvol_id)}", os.fspath(mount_point)], timeout=timeout)
        return True
    except CommandError as e:
        if "No such file or directory" in e.stderr:
            return False
        raise


def filesystem_sync(mount_point: str | os.PathLike, *, timeout: float) -> None:
    run(["btrfs", "filesystem", "sync", os.fspath(mount_point)], timeout=timeout)


def destroy_qgroups(mount_point: str | os.PathLike, ids: list[int] | None, *, timeout: float) -> None:
    """Destroy the level-0 qgroups of deleted subvolumes: ``ids``, or every
    stale one (subvolume gone) when None. None reads every qgroup of the
    filesystem, so it is for sweeps (an operator, a test's teardown), never
    an operation's path: the share driver writes a subvolume's id down
    before deleting it, so it always knows which qgroup is left.

    Recent kernels drop such a qgroup by themselves once the cleaner has
    removed the subvolume; until then ``destroy`` answers EBUSY. A qgroup is
    only destroyed once its numbers are zero: destroying one whose dropped
    extents are not accounted yet makes the kernel mark every qgroup of the
    filesystem inconsistent, and then no limit is enforced on any share
    until a rescan. So: sync (which runs the cleaner and the accounting) and
    retry, bounded by ``timeout``; a qgroup still in use after that is left
    for the kernel or a later sweep (its subvolume is gone; it limits nothing).
    With ``ids``, each qgroup is looked at in sysfs (constant cost per id).
    """
    fs_dir = sysfs_dir(mount_point) if ids is not None else None
    if fs_dir is not None and not (fs_dir / "qgroups").is_dir():
        fs_dir = None

    def pending_groups() -> list[Qgroup]:
        if fs_dir is None:
            return [g for g in qgroup_show(mount_point, timeout=timeout)
                    if g.level == 0 and (g.id in ids if ids is not None else g.path is None)]
        return [g for g in (sysfs_qgroup(fs_dir, i) for i in ids) if g is not None]

    deadline = time.monotonic() + timeout
    while True:
        pending = pending_groups()
        busy = [g.id for g in pending if g.referenced or g.exclusive]
        for g in pending:
            if g.id in busy:
                continue
            try:
                qgroup_destroy(mount_point, g.id, timeout=timeout)
            except CommandError as e:
                if "busy" not in e.stderr.lower():
                    raise
                busy.append(g.id)
        if not busy:
            return
        if time.monotonic() >= deadline:
            log.warning("qgroups %s on %s still in use after %g s; left for the kernel to drop",
                        busy, os.fspath(mount_point), timeout)
            return
        if ids is not None:
            ids = busy
        filesystem_sync(mount_point, timeout=timeout)
        time.sleep(0.005)


def qgroup_status_file(mount_point: str | os.PathLike) -> Path | None:
    """The sysfs file saying whether the qgroups of the filesystem mounted on
    ``mount_point`` are inconsistent; None when there is none (quotas off,
    or a kernel without it)."""
    fs_dir = sysfs_dir(mount_point)
    status = fs_dir / "qgroups" / "inconsistent" if fs_dir is not None else None
    return status if status is not None and status.exists() else None


def account_every_subtree_drop(mount_point: str | os.PathLike) -> bool:
    """Have the kernel account the extents of a deleted subvolume however
    deep its tree, instead of giving up on a deep one (level >= the
    filesystem's ``drop_subtree_threshold``, 3 by default since Linux 6.8)
    by marking every qgroup of the filesystem inconsistent: then no limit
    holds until a rescan of the whole pool, which the driver would have to
    run after the delete. Accounting costs work in proportion to the deleted
    subvolume's own tree, not the pool's. Returns whether it changed the
    setting (False: already so, or a kernel without it)."""
    fs_dir = sysfs_dir(mount_point)
    knob = fs_dir / "qgroups" / "drop_subtree_threshold" if fs_dir is not None else None
    try:
        if knob is None or int(knob.read_text()) >= MAX_TREE_LEVEL:
            return False
        knob.write_text(str(MAX_TREE_LEVEL))
    except (OSError, ValueError):
        return False
    return True


def ensure_qgroups_consistent(mount_point: str | os.PathLike, *, status_file: Path | None = None,
                              timeout: float) -> bool:
    """While a filesystem's qgroups are marked inconsistent the kernel
    enforces no qgroup limit at all (a snapshot taken into a higher-level
    qgroup, or a qgroup destroyed too early, marks them so). A rescan makes
    them consistent again; this runs one and waits for it when needed.
    Returns whether it did. A file read when all is well.
    """
    status_file = status_file or qgroup_status_file(mount_point)
    if status_file is None:
        return False
    try:
        if status_file.read_text().strip() != "1":
            return False
    except OSError:
        return False
    log.warning("qgroups of %s are inconsistent (limits are not enforced); rescanning",
                os.fspath(mount_point))
    run(["btrfs", "quota", "rescan", "-w", os.fspath(mount_point)], timeout=timeout)
    return True
