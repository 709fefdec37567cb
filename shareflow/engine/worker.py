"""One conductor worker process: a conductor per board of this host's
backends, until signalled.

A worker serves the board ``{config.host}@{backend}`` of each backend of its
host (:func:`board_keys`) and no other host's, so a job is run only where
its storage is; and the scheduler's board, which every host serves (placing
a share needs only the database: ``shareflow.tasks.scheduling``). It also drains the *legacy* board of each of its backends
(``jobboards/<backend>``, where jobs were posted before boards were keyed by
host) when ZooKeeper has it as the worker starts: such a job is claimed and
run here like any other (its store names the bare backend, which
:meth:`~shareflow.engine.runtime.Runtime.backend` resolves to this host's),
so an upgrade strands nothing. Nothing new is ever posted there (an API of
this version posts by ``host@backend``, and one of the old version cannot
run on the migrated database), so a legacy board that is not there at start
never will be, and none is made.

Started by the pool (``shareflow.engine.pool``); each worker is a process of
its own so that one dying (even by SIGKILL) costs only its ZooKeeper session:
its claims vanish when the session expires and another worker resumes the
jobs from their persisted state.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from datetime import timedelta

from shareflow import config as config_mod
from shareflow.config import Config
from shareflow.db.engine import Database
from shareflow.drivers.registry import build_backend
from shareflow.engine.boards import Boards
from shareflow.engine.checkpoints import Checkpoints
from shareflow.engine.conductor import ShareflowConductor
from shareflow.engine.housekeeping import delete_unused_share_servers, fail_unposted_jobs, report_stalled_jobs
from shareflow.engine.locks import HostLocks, ResourceLocks
from shareflow.engine.outcomes import OutcomeRecorder
from shareflow.engine.persistence import make_persistence
from shareflow.engine.posting import JobPoster
from shareflow.engine.reports import report_pools
from shareflow.engine.runtime import Runtime
from shareflow.engine.stalls import StallChecker
from shareflow.engine.zk import SCHEDULER_BOARD, list_boards, start_client, stop_client
from shareflow.exceptions import ShareflowError
from shareflow.logs import setup_logging
from shareflow.scheduler.pool_state import backend_host
from shareflow.services.share_servers import ShareServerService
from shareflow.wiring import utcnow

LOG = logging.getLogger(__name__)

#: How often a worker reports its pools' capacity and does its housekeeping
#: (more often when the orphan timeout is shorter).
HOUSEKEEPING_INTERVAL = 30.0


def board_keys(config: Config, existing=None) -> dict[str, str]:
    """The boards this host's conductors serve -> their backend's name: each
    backend's ``host@backend``, then its legacy bare-name board where
    ``existing`` (the boards ZooKeeper has; None: all) holds one, then the
    scheduler's board (-> ``scheduler``), which every host serves."""
    keys = {backend_host(config.host, b.name): b.name for b in config.backends}
    keys.update({b.name: b.name for b in config.backends if existing is None or b.name in existing})
    keys[SCHEDULER_BOARD] = SCHEDULER_BOARD
    return keys


def board_checkpoints(config: Config, key: str, backend: str) -> Checkpoints:
    """The test checkpoints of the conductor of board ``key``: its backend's
    fault plan, the scheduler's for the scheduler's board."""
    plan = config.scheduler.fault_plan if key == SCHEDULER_BOARD else config.backend(backend).fault_plan
    return Checkpoints(plan, hang_limit=config.conductor.step_timeout)


def conductor_label(key: str, backend: str) -> str:
    """The last part of a conductor's name: its backend, ``legacy-<backend>``
    for a legacy board, ``scheduler`` for the scheduler's board."""
    if key == SCHEDULER_BOARD or "@" in key:
        return backend
    return f"legacy-{backend}"


def conductor_name(config: Config, index: int, backend: str) -> str:
    """Also the claim owner shown by ``shareflow jobs list``: host, pid, backend."""
    return f"{config.host}.{os.getpid()}.w{index}.{backend}"


def report_capacity(runtime: Runtime) -> None:
    """Each pool's capacity and capabilities, and its service's heartbeat."""
    report_pools(runtime.db, runtime.config, runtime.backends.values(), runtime.clock)


def housekeeping_interval(cfg: Config) -> float:
    """Often enough for the orphan timeout and for unused share servers to
    go within half their cleanup interval of becoming due."""
    interval = min(HOUSEKEEPING_INTERVAL, cfg.conductor.orphan_timeout / 2)
    for b in cfg.backends:
        if b.driver_handles_share_servers and b.share_servers is not None and b.share_servers.automatic_cleanup:
            interval = min(interval, b.share_servers.unused_cleanup_interval * 60 / 2)
    return interval


class Worker:
    def __init__(self, config: Config, index: int):
        self.config = config
        self.index = index
        self._stop = threading.Event()
        self._conductors: list[ShareflowConductor] = []

    def run(self) -> int:
        cfg = self.config
        db = Database(cfg.database.url)
        persistence = make_persistence(db)
        client = start_client(cfg.zookeeper)
        keys = board_keys(cfg, existing=set(list_boards(client, cfg.zookeeper.chroot)))
        boards = Boards(client, cfg.zookeeper.chroot, list(keys), persistence,
                        conductor=True, request_timeout=cfg.zookeeper.request_timeout)
        try:
            boards.connect()
            runtime = Runtime(
                config=cfg, db=db,
                backends={b.name: build_backend(b, step_timeout=cfg.conductor.step_timeout)
                          for b in cfg.backends},
                locks=ResourceLocks(client, cfg.zookeeper.chroot, timeout=cfg.conductor.step_timeout),
                host_locks=HostLocks(cfg.state_dir / "locks", timeout=cfg.conductor.step_timeout),
                recorder=OutcomeRecorder(db, utcnow), clock=utcnow,
                poster=JobPoster(db, persistence, boards, clock=utcnow),
            )
            report_capacity(runtime)
            threads = []
            for name, board in boards.items():
                conductor = ShareflowConductor(
                    conductor_name(cfg, self.index, conductor_label(name, keys[name])),
                    board, persistence, runtime,
                    poll_interval=cfg.conductor.poll_interval, client=client,
                    checkpoints=board_checkpoints(cfg, name, keys[name]),
                )
                self._conductors.append(conductor)
                if "@" in name:
                    # A share this worker's scheduler places on this pool is
                    # handed to this conductor (shareflow.engine.placement).
                    boards.serve(name, conductor)
                t = threading.Thread(target=conductor.run, name=f"conductor-{name}", daemon=True)
                t.start()
                threads.append(t)
            LOG.info("conductor worker %d (pid %d) serving %s", self.index, os.getpid(),
                     ", ".join(n for n, _ in boards.items()))
            interval = housekeeping_interval(cfg)
            servers = ShareServerService(cfg, db, JobPoster(db, persistence, boards, clock=utcnow), clock=utcnow)
            # The stall check over this worker's own boards and client.
            stalls = StallChecker(lambda: contextlib.nullcontext(boards), cfg.conductor.stall_after, utcnow)
            while not self._stop.wait(interval):
                if not all(t.is_alive() for t in threads):
                    LOG.error("a conductor thread died; exiting so the pool restarts this worker")
                    return 1
                self._housekeeping(runtime, servers, stalls, boards)
            for c in self._conductors:
                c.stop()
            for c, t in zip(self._conductors, threads):
                # A running job is suspended at its next atom boundary and
                # abandoned; another conductor resumes it.
                c.wait(timeout=cfg.conductor.step_timeout)
                t.join(timeout=1.0)
            return 0
        finally:
            boards.close()
            stop_client(client)
            db.dispose()

    def _housekeeping(self, runtime: Runtime, servers: ShareServerService, stalls: StallChecker,
                      boards: Boards) -> None:
        cfg = self.config
        try:
            report_capacity(runtime)
            fail_unposted_jobs(
                runtime.db, runtime.recorder, runtime.clock(),
                timedelta(seconds=cfg.conductor.orphan_timeout), posted_as=boards.posted_as,
            )
            delete_unused_share_servers(cfg, servers)
        except ShareflowError:
            LOG.exception("housekeeping failed; trying again later")
        try:
            report_stalled_jobs(runtime.db, stalls, list(board_keys(cfg)), host=cfg.host,
                                now=runtime.clock(), stall_after=cfg.conductor.stall_after)
        except ShareflowError:
            LOG.exception("looking for stalled jobs failed; trying again later")

    def stop(self, *_args) -> None:
        self._stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shareflow-conductor-worker")
    parser.add_argument("--config", default=None)
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging(f"worker{args.index}")
    config = config_mod.load_or_exit("shareflow-conductor", args.config)
    worker = Worker(config, args.index)
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    try:
        return worker.run()
    except ShareflowError as e:
        LOG.error("worker %d stopped: %s", args.index, e.message)
        return 1


if __name__ == "__main__":
    sys.exit(main())
