"""One ioctl on a directory, its failure translated once into a StorageError.

The filesystems' kernel calls shareflow makes itself instead of running their
commands (``shareflow.system.btrfs``, ``shareflow.system.xfs``) all act on a
directory: a subvolume's parent, a subvolume, a mount point.
"""

from __future__ import annotations

import fcntl
import os

from shareflow.exceptions import StorageError


def on_directory(path: str | os.PathLike, request: int, arg: bytes | bytearray, what: str) -> None:
    """Make ioctl ``request`` on the directory ``path`` with ``arg`` (a
    ``bytearray`` is handed to the kernel as it is and gets its answer; a
    ``bytes`` is copied, and refused above 1 KiB). Raises
    :class:`StorageError` saying ``what`` and the system's reason."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise StorageError(f"{what}: {os.fspath(path)}: {e.strerror}") from e
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as e:
        raise StorageError(f"{what}: {e.strerror}") from e
    finally:
        os.close(fd)
