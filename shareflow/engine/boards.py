"""One TaskFlow jobboard per backend, all over one kazoo client."""

from __future__ import annotations

import contextlib

from kazoo.client import KazooClient
from kazoo.protocol import paths as k_paths
from taskflow.jobs.backends.impl_zookeeper import ZookeeperJobBoard
from taskflow.jobs.base import JobBoard

from shareflow.engine.zk import board_path, translate_errors
from shareflow.exceptions import ConfigError


class ConductorJobBoard(ZookeeperJobBoard):
    """TaskFlow's ZooKeeper board, for conductors: ``iterjobs`` offers only
    the jobs that are not claimed, known from the board's own children
    listing (a claim is the sibling node ``<job>.lock``), instead of asking
    ZooKeeper for the state of every job on the board (three round trips
    each) on every pass - and then trying, and failing, to claim the ones
    running elsewhere. A listing a moment old only costs a claim that fails
    (UnclaimableJob / NotFound, which the conductor expects) or a job picked
    up at the next poll."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._locked: frozenset[str] = frozenset()

    def _on_job_posting(self, children, delayed=True):
        post = len(self.LOCK_POSTFIX)
        self._locked = frozenset(
            k_paths.join(self.path, c[:-post]) for c in children if c.endswith(self.LOCK_POSTFIX)
        )
        super()._on_job_posting(children, delayed=delayed)

    def iterjobs(self, only_unclaimed=False, ensure_fresh=False):
        locked = self._locked
        return iter([j for j in self._fetch_jobs(ensure_fresh=ensure_fresh) if j.path not in locked])


class Boards:
    def __init__(self, client: KazooClient, chroot: str, backends: list[str], persistence, *,
                 conductor: bool = False):
        """``conductor``: boards for claiming jobs (see :class:`ConductorJobBoard`);
        otherwise TaskFlow's own, which reports every job with its state."""
        board_class = ConductorJobBoard if conductor else ZookeeperJobBoard
        self._boards: dict[str, JobBoard] = {}
        for name in backends:
            conf = {"board": "zookeeper", "path": board_path(chroot, name)}
            self._boards[name] = board_class(
                f"shareflow-{name}", conf, client=client, persistence=persistence
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
