"""Per-resource locks in ZooKeeper.

Kazoo's lock is a sequence of ephemeral nodes: a holder that dies loses the
lock when its session expires, so a killed conductor never blocks others for
longer than the session timeout.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from kazoo.client import KazooClient

from shareflow.engine.zk import lock_path, translate_errors
from shareflow.exceptions import CoordinationError


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
                user_message="another operation on this share is still running",
            )
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                lock.release()
