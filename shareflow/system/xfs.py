"""Thin wrappers over the XFS tools, plus the reflink copy they are used with.

Shared by the image pool (``mkfs.xfs -m reflink=1`` for the pool itself) and
the image share driver (one XFS filesystem per share image). Each call is one
command through :func:`shareflow.system.process.run`, except the reflink
copy, which is one ioctl: it either shares every extent or fails, and never
falls back to copying data (``cp --reflink=auto`` would, silently).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from shareflow.exceptions import CommandError, StorageError
from shareflow.system import ioctl
from shareflow.system.process import run

#: XFS superblock magic, at the start of the device.
_MAGIC = b"XFSB"
#: ``_IOW(0x94, 9, int)``: make the destination file share the source's extents.
FICLONE = 0x40049409


def has_xfs_signature(image: str | os.PathLike) -> bool:
    """Whether the file or device starts with an XFS superblock."""
    try:
        with open(image, "rb") as f:
            return f.read(len(_MAGIC)) == _MAGIC
    except FileNotFoundError:
        return False


#: Where the superblock keeps the filesystem's UUID (``sb_uuid``).
_UUID = slice(32, 48)


def uuid_of(image: str | os.PathLike) -> bytes:
    """The filesystem UUID in the image's primary superblock (16 bytes)."""
    with open(image, "rb") as f:
        return f.read(_UUID.stop)[_UUID]


def generate_uuid(image: str | os.PathLike, *, timeout: float) -> None:
    """Give the (unmounted, cleanly unmounted) filesystem in ``image`` a new
    UUID (``xfs_admin -U generate``; on a v5 filesystem only the superblocks
    are rewritten). xfs_admin exits 0 even when it refuses (a dirty log), so
    the UUID is compared before and after."""
    before = uuid_of(image)
    out = run(["xfs_admin", "-U", "generate", os.fspath(image)], timeout=timeout)
    if uuid_of(image) == before:
        raise StorageError(f"xfs_admin did not change the UUID of {os.fspath(image)}: "
                           f"{(out.stderr or out.stdout).strip()}")


def mkfs(image: str | os.PathLike, *, reflink: bool = False, timeout: float) -> None:
    """Format ``image`` (never forced: an existing filesystem is refused).
    ``-K``: no discard of the fresh (sparse) file, which would only punch
    holes that are holes already."""
    run(["mkfs.xfs", "-q", "-K", "-m", f"reflink={int(reflink)}", os.fspath(image)], timeout=timeout)


def growfs(mount_point: str | os.PathLike, *, timeout: float) -> None:
    """Grow the mounted filesystem to its device's size (nothing when it is that size)."""
    run(["xfs_growfs", os.fspath(mount_point)], timeout=timeout)


def freeze(mount_point: str | os.PathLike, *, timeout: float) -> None:
    """Flush the filesystem and block writers until :func:`unfreeze`."""
    run(["xfs_freeze", "-f", os.fspath(mount_point)], timeout=timeout)


def unfreeze(mount_point: str | os.PathLike, *, timeout: float) -> bool:
    """Let writers in again. Returns False when it was not frozen (which is
    fine: a caller that died between freeze and unfreeze is repaired by
    calling this whether or not the freeze happened)."""
    try:
        run(["xfs_freeze", "-u", os.fspath(mount_point)], timeout=timeout)
    except CommandError as e:
        if "invalid argument" in e.stderr.lower():
            return False
        raise
    return True


#: ``_IOR('X', 58, struct xfs_fs_eofblocks)`` (128 bytes): free the blocks
#: XFS holds beyond files' ends, and - what this is used for - wait until the
#: frees it defers (an unlinked file's blocks go in a background worker) are
#: done. syncfs(2) does not wait for those.
XFS_IOC_FREE_EOFBLOCKS = 0x8080583A
_EOFBLOCKS_VERSION = 1
_EOF_FLAGS_SYNC = 1


def settle_free_space(mount_point: str | os.PathLike) -> None:
    """Make the filesystem's free-space count current (see above); takes
    well under a millisecond on an idle filesystem."""
    args = struct.pack("=IIIIIIQ12Q", _EOFBLOCKS_VERSION, _EOF_FLAGS_SYNC, 0, 0, 0, 0, 0, *([0] * 12))
    ioctl.on_directory(mount_point, XFS_IOC_FREE_EOFBLOCKS, args,
                       f"cannot settle the free space of {os.fspath(mount_point)}")


def reflink_copy(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Make ``target`` (created, must not exist) a reflink copy of ``source``:
    metadata only, the data extents are shared until either file changes.
    On failure nothing is left at ``target``."""
    target = os.fspath(target)
    try:
        src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise StorageError(f"cannot open {os.fspath(source)}: {e.strerror}") from e
    try:
        try:
            dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as e:
            raise StorageError(f"cannot create {target}: {e.strerror}") from e
        try:
            fcntl.ioctl(dst, FICLONE, src)
        except OSError as e:
            os.close(dst)
            dst = -1
            os.unlink(target)
            hint = " (the pool needs XFS with reflink=1)" if e.errno in (errno.EOPNOTSUPP, errno.EXDEV,
                                                                          errno.EINVAL) else ""
            raise StorageError(f"reflink copy of {os.fspath(source)} to {target} failed: {e.strerror}{hint}") from e
        finally:
            if dst >= 0:
                os.close(dst)
    finally:
        os.close(src)
