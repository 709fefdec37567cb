"""Exclusive inter-process locks on files (``fcntl.flock``).

Several conductor processes (and threads) may act on the same share or the
same export server at once - after a lost ZooKeeper claim an atom even runs
twice. flock locks belong to an open file description, so they exclude other
threads of the same process as well as other processes, and the kernel drops
them when a holder dies: a crashed conductor never leaves a stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator

from shareflow.exceptions import BackendError, ShareflowError


@contextlib.contextmanager
def locked(
    path: str | os.PathLike,
    *,
    timeout: float,
    error: Callable[[str], ShareflowError] = BackendError,
    remove: bool = False,
) -> Iterator[int]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block,
    which is given the locked file's descriptor (open read-write: a holder
    may keep a small record in the file).

    Waits at most ``timeout`` seconds, then raises ``error(message)`` (an
    exception class, or any callable that makes one). With ``remove``
    the file is unlinked before it is released; that is safe because every
    taker checks, once it holds the lock, that the file it locked is still the
    one at ``path`` (otherwise it locked an orphan and starts over).
    """
    path = os.fspath(path)
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            _acquire(fd, path, deadline, error)
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # locked a file its last holder removed: retry on the new one
    try:
        yield fd
    finally:
        try:
            if remove:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        finally:
            os.close(fd)  # releases the lock


def _acquire(fd: int, path: str, deadline: float, error: Callable[[str], ShareflowError]) -> None:
    # Poll with LOCK_NB instead of blocking: a hung holder must turn into a
    # bounded error here, not into a conductor thread stuck forever.
    delay = 0.001
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise error(f"timed out waiting for lock {path}") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
