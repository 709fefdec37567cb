"""Per-resource locks: in ZooKeeper, and between the processes of one host.

Kazoo's lock is a sequence of ephemeral nodes: a holder that dies loses the
lock when its session expires, so a killed conductor never blocks others for
longer than the session timeout. It costs three round trips, two of them
writes ZooKeeper syncs to disk.

What only one host's conductors act on needs no more than a lock between the
processes of that host (:class:`HostLocks`, ``flock``: the kernel drops it
when its holder dies): a share's jobs run on the host of its backend only
(one board per ``host@backend``), so its access jobs - which must not
interleave their read of the share's rules with their write of the export's
client list - meet on that host.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from kazoo.client import KazooClient

from shareflow.engine.zk import lock_path, translate_errors
from shareflow.exceptions import BackendError, CoordinationError
from shareflow.system import filelock

#: What a tenant is told when a resource's lock stays taken.
BUSY_MESSAGE = "another operation on this share is still running"


class ResourceLocks:
    def __init__(self, client: KazooClient, chroot: str, *, timeout: float):
        self._client = client
        self._chroot = chroot
        self._timeout = timeout
        self._identifier = f"{socket.gethostname()}:{os.getpid()}"

    @contextlib.contextmanager
    def hold(self, kind: str, resource_id: str) -> Iterator[None]:
        """Hold the lock of one resource, waiting at most the configured timeout."""
        lock = self._client.Lock(lock_path(self._chroot, kind, resource_id), self._identifier)
        with translate_errors(f"locking {kind} {resource_id}"):
            acquired = lock.acquire(timeout=self._timeout)
        if not acquired:
            raise CoordinationError(
                f"timed out after {self._timeout}s waiting for the lock of {kind} {resource_id}",
                user_message=BUSY_MESSAGE,
            )
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                lock.release()


class HostLocks:
    """Per-resource locks between this host's processes: ``flock`` on
    ``<directory>/<kind>/<resource id>.lock`` (module docstring)."""

    def __init__(self, directory: Path, *, timeout: float):
        self._directory = Path(directory)
        self._timeout = timeout

    def path(self, kind: str, resource_id: str) -> Path:
        if not resource_id or "/" in resource_id or resource_id.startswith("."):
            raise ValueError(f"not a resource id: {resource_id!r}")
        return self._directory / kind / f"{resource_id}.lock"

    @contextlib.contextmanager
    def hold(self, kind: str, resource_id: str, *, last: bool = False) -> Iterator[None]:
        """Hold the lock of one resource, waiting at most the timeout.
        ``last``: the resource goes away, and its lock file with it."""
        path = self.path(kind, resource_id)
        path.parent.mkdir(parents=True, exist_ok=True)

        def busy(message: str) -> BackendError:
            return BackendError(f"{message} (the lock of {kind} {resource_id})", user_message=BUSY_MESSAGE)

        with filelock.locked(path, timeout=self._timeout, error=busy, remove=last):
            yield
