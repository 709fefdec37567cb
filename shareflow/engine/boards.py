"""One TaskFlow jobboard per backend, all over one kazoo client."""

from __future__ import annotations

import contextlib

from kazoo.client import KazooClient
from taskflow.jobs import backends as job_backends
from taskflow.jobs.base import JobBoard

from shareflow.engine.zk import board_path, translate_errors
from shareflow.exceptions import ConfigError


class Boards:
    def __init__(self, client: KazooClient, chroot: str, backends: list[str], persistence):
        self._boards: dict[str, JobBoard] = {}
        for name in backends:
            conf = {"board": "zookeeper", "path": board_path(chroot, name)}
            self._boards[name] = job_backends.fetch(
                f"shareflow-{name}", conf, persistence=persistence, client=client
            )

    def connect(self) -> None:
        for name, board in self._boards.items():
            with translate_errors(f"connecting jobboard {name}"):
                board.connect()

    def get(self, backend: str) -> JobBoard:
        try:
            return self._boards[backend]
        except KeyError:
            raise ConfigError(f"no jobboard for backend {backend!r}") from None

    def items(self):
        return self._boards.items()

    def close(self) -> None:
        for board in self._boards.values():
            with contextlib.suppress(Exception):
                board.close()


class LazyBoards:
    """Boards for a process that only posts (an API worker): connects to
    ZooKeeper on first use, after the worker has forked, and answers
    CoordinationError (503) while ZooKeeper cannot be reached."""

    def __init__(self, zk_config, backends: list[str], persistence):
        import threading

        self._zk_config = zk_config
        self._backends = backends
        self._persistence = persistence
        self._lock = threading.Lock()
        self._client = None
        self._boards: Boards | None = None

    def get(self, backend: str) -> JobBoard:
        from shareflow.engine.zk import start_client, stop_client

        with self._lock:
            if self._boards is None:
                client = start_client(self._zk_config)
                boards = Boards(client, self._zk_config.chroot, self._backends, self._persistence)
                try:
                    boards.connect()
                except Exception:
                    stop_client(client)
                    raise
                self._client, self._boards = client, boards
        return self._boards.get(backend)

    def close(self) -> None:
        from shareflow.engine.zk import stop_client

        with self._lock:
            if self._boards is not None:
                self._boards.close()
                stop_client(self._client)
                self._boards = self._client = None
