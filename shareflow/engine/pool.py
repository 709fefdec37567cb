"""``shareflow-conductor``: a supervised pool of conductor worker processes.

The pool starts N workers (``shareflow.engine.worker``), restarts any that
dies, and keeps the backends' managed export servers running (starting them
if needed, adopting one already running, restarting one whose process died).
The share servers of DHSS=true backends, read from the database, are kept
running the same way: one whose NFS-Ganesha died (or whose namespace is gone,
after a reboot) is brought back with all its exports.
At exit the export servers keep serving by default
(``conductor.export_servers_at_exit = "keep"``): restarting the conductors
must not cut NFS clients off, and NFS-Ganesha 4.3 needs minutes to start with
thousands of exports (it re-reads the mount table for each). With ``"stop"``
(what ``shareflow run`` asks for, as it unmounts the pools at exit) the pool
stops the Ganesha servers it started and takes the share servers off the host
(Ganesha, veth pair, namespace); the next start brings them back.
SIGTERM or SIGINT stops the workers gracefully: each suspends its running job
at the next atom boundary and abandons it to the board.

At start, before any worker, the pool *ensures* the host (Manila's
``ensure_shares``): every volume mounted, then each export server started once
with every export in its files (one read of them all, never a reload per
export), and the share servers restored - mounts and share servers on a
bounded pool of threads, with progress lines in the log. When it began and
finished, how long it took and how many volumes it found go in the backend's
``pools`` row (``shareflow backend show``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from shareflow import config as config_mod
from shareflow.config import Config
from shareflow.db import pools as pools_db
from shareflow.db.engine import Database
from shareflow.drivers.export.ganesha_server import GaneshaServer
from shareflow.drivers.registry import build_backend
from shareflow.drivers.share.btrfs import VolumesNotEnsured
from shareflow.engine.reports import report_pool
from shareflow.exceptions import ShareflowError
from shareflow.logs import setup_logging
from shareflow.services.share_server_manager import ShareServerManager
from shareflow.wiring import utcnow

LOG = logging.getLogger(__name__)

SUPERVISE_INTERVAL = 0.5
#: A worker that keeps dying is restarted at most this often.
RESTART_BACKOFF = 2.0
#: Threads mounting volumes and restoring share servers at start: each step
#: mostly waits on the kernel or a child process (ip, ganesha.nfsd), so a few
#: threads keep two cores busy without thousands of steps at once.
ENSURE_WORKERS = 4
#: How long a managed NFS-Ganesha may take to start (and to stop before it is
#: killed). NFS-Ganesha 4.3's FSAL VFS reads the whole mount table for every
#: export it loads, so its start grows with exports x mounts on the host:
#: 500 exports took 31 s on 2 busy cores with 2,100 mounts, and the 10 s
#: default made a pool with a few hundred shares fail to start at all.
GANESHA_START_TIMEOUT = 900.0


@dataclass
class _WorkerSlot:
    index: int
    process: subprocess.Popen | None = None
    last_start: float = 0.0
    restarts: int = field(default=0)


class ConductorPool:
    def __init__(self, config: Config, workers: int, *, export_servers_at_exit: str | None = None):
        self.config = config
        self._export_servers_at_exit = export_servers_at_exit or config.conductor.export_servers_at_exit
        self._slots = [_WorkerSlot(i) for i in range(workers)]
        self._stopping = threading.Event()
        self._servers: list[GaneshaServer] = []
        self._started_servers: list[GaneshaServer] = []
        self._db: Database | None = None
        #: The server helpers of the DHSS=true backends (they supervise share servers).
        self._share_servers: list = []

    # --- export servers ---------------------------------------------------

    def _backends(self):
        if self._db is None:
            # Also for the ensure's record in the pools table.
            self._db = Database(self.config.database.url)
        return [
            build_backend(b, step_timeout=self.config.conductor.step_timeout)
            for b in self.config.backends
        ]

    def _ensure(self) -> None:
        """Volumes, then export servers, then share servers, each step once for
        all shares; recorded per backend (its volumes, and the wall time of
        the whole ensure: a backend is served once all of it is done)."""
        start = time.monotonic()
        backends = self._backends()
        for backend in backends:
            self._record(backend, started=True)
        volumes, failures = self._ensure_volumes(backends)
        self._start_export_servers(backends)
        seconds = time.monotonic() - start
        for backend in backends:
            self._record(backend, seconds=seconds, volumes=volumes.get(backend.name, 0),
                         failures=failures.get(backend.name, 0))
        LOG.info("ensure: %d volume(s) on %d backend(s) mounted and exported, share servers "
                 "restored, in %.1f s%s", sum(volumes.values()), len(backends), seconds,
                 f"; {sum(failures.values())} failed (see above)" if any(failures.values()) else "")

    def _ensure_volumes(self, backends) -> tuple[dict[str, int], dict[str, int]]:
        """After a reboot or a restart the volumes' mounts are gone; they must be
        back before an export server reads its exports. A volume that cannot
        be mounted is logged and counted; the others are still served."""
        volumes, failures = {}, {}
        for backend in backends:
            try:
                found = backend.share.ensure_volumes(workers=ENSURE_WORKERS)
            except VolumesNotEnsured as e:
                LOG.error("backend %s: %s", backend.name, e.message)
                found, failures[backend.name] = e.done, len(e.failed)
            volumes[backend.name] = len(found)
            if found:
                LOG.info("backend %s: %d volume(s) in place", backend.name, len(found))
        return volumes, failures

    def _record(self, backend, *, started: bool = False, seconds: float = 0.0, volumes: int = 0,
                failures: int = 0) -> None:
        """The ensure's row for ``shareflow backend show``; a database that does
        not answer costs the record, never the start."""
        cfg = backend.config
        host = cfg.host(self.config.host)
        try:
            if started:
                report_pool(self._db, self.config, backend, now=utcnow(), ensure_started=True)
            else:
                with self._db.write() as s:
                    pools_db.ensure_finished(s, host=host, now=utcnow(), seconds=round(seconds, 3),
                                             volumes=volumes, failures=failures)
        except ShareflowError:
            LOG.exception("could not record the start-up ensure of backend %s", cfg.name)

    def _start_export_servers(self, backends=None) -> None:
        for built in backends if backends is not None else self._backends():
            if built.config.driver_handles_share_servers:
                self._share_servers.append(ShareServerManager(self._db, built.server, built.config,
                                                              service_host=self.config.host, clock=utcnow))
        # All of a backend's share servers at once (bounded); later checks
        # restore the odd one that died, one at a time.
        self._check_share_servers(workers=ENSURE_WORKERS)
        for backend in self.config.backends:
            if backend.driver_handles_share_servers or not backend.ganesha.managed:
                continue
            server = GaneshaServer(backend.ganesha, timeout=GANESHA_START_TIMEOUT)
            self._servers.append(server)
            if not server.is_running():
                LOG.info("starting NFS-Ganesha for backend %s on %s:%d", backend.name,
                         backend.ganesha.address, backend.ganesha.port)
                # Listed first: a stop that comes while it starts (seconds
                # with thousands of exports) stops it with the others.
                self._started_servers.append(server)
                server.start(abort=self._stopping)

    def _check_share_servers(self, workers: int = 1) -> None:
        for helper in self._share_servers:
            try:
                helper.supervise(workers=workers)
            except ShareflowError:
                LOG.exception("could not supervise the share servers of %s", helper)

    def _check_export_servers(self) -> None:
        self._check_share_servers()
        for server in self._servers:
            if not server.is_running():
                LOG.error("NFS-Ganesha %s is not running; restarting it with its exports", server)
                try:
                    server.start()
                except ShareflowError:
                    LOG.exception("could not restart NFS-Ganesha %s", server)
                    continue
                if server not in self._started_servers:
                    self._started_servers.append(server)

    # --- workers ------------------------------------------------------------

    def _spawn(self, slot: _WorkerSlot) -> None:
        argv = [sys.executable, "-m", "shareflow.engine.worker", "--config", str(self.config.path),
                "--index", str(slot.index)]
        slot.process = subprocess.Popen(argv)
        slot.last_start = time.monotonic()
        LOG.info("conductor worker %d started, pid %d", slot.index, slot.process.pid)

    def _check_workers(self) -> None:
        for slot in self._slots:
            if slot.process is None or slot.process.poll() is None:
                continue
            if time.monotonic() - slot.last_start < RESTART_BACKOFF:
                continue
            LOG.warning("conductor worker %d (pid %d) exited with %s; restarting",
                        slot.index, slot.process.pid, slot.process.returncode)
            slot.restarts += 1
            self._spawn(slot)

    def run(self) -> int:
        """Ensure, then run and supervise the workers until stopped. A stop
        (or a failure) during the ensure starts no worker and still stops
        what the ensure started."""
        try:
            try:
                self._ensure()
            except ShareflowError:
                if self._stopping.is_set():
                    LOG.info("stopped during the start-up ensure")
                    return 0
                raise
            if self._stopping.is_set():
                return 0
            for slot in self._slots:
                self._spawn(slot)
            while not self._stopping.wait(SUPERVISE_INTERVAL):
                self._check_workers()
                self._check_export_servers()
        finally:
            self._shutdown()
        return 0

    def stop(self, *_args) -> None:
        self._stopping.set()

    def _shutdown(self) -> None:
        grace = self.config.conductor.step_timeout + 5
        for slot in self._slots:
            if slot.process and slot.process.poll() is None:
                slot.process.terminate()
        deadline = time.monotonic() + grace
        for slot in self._slots:
            if not slot.process:
                continue
            try:
                slot.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                LOG.warning("conductor worker %d (pid %d) did not stop; killing it",
                            slot.index, slot.process.pid)
                slot.process.kill()
                slot.process.wait()
        if self._export_servers_at_exit == "keep":
            # The data path outlives the control plane: the next pool adopts
            # these (it finds them running) instead of restarting them.
            if self._servers or self._share_servers:
                LOG.info("leaving the export servers serving (conductor.export_servers_at_exit = keep)")
        else:
            self._stop_export_servers()
        if self._db is not None:
            self._db.dispose()

    def _stop_export_servers(self) -> None:
        for server in self._started_servers:
            try:
                server.stop()
            except ShareflowError:
                LOG.exception("could not stop NFS-Ganesha %s", server)
        for helper in self._share_servers:
            try:
                helper.stop_all()
            except ShareflowError:
                LOG.exception("could not stop the share servers of %s", helper)

    @property
    def worker_pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shareflow-conductor", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="configuration file (default: $SHAREFLOW_CONFIG or etc/shareflow.toml)")
    parser.add_argument("--workers", type=int, default=None, help="number of conductor processes (default: conductor.workers)")
    parser.add_argument("--export-servers-at-exit", choices=config_mod.EXPORT_SERVERS_AT_EXIT, default=None,
                        help="keep the NFS-Ganesha and share servers serving when the pool stops, or stop them "
                             "(default: conductor.export_servers_at_exit)")
    args = parser.parse_args(argv)
    setup_logging("pool")
    config = config_mod.load_or_exit("shareflow-conductor", args.config)
    workers = args.workers or config.conductor.workers
    if workers < 1:
        print("shareflow-conductor: --workers must be at least 1", file=sys.stderr)
        return 2
    pool = ConductorPool(config, workers, export_servers_at_exit=args.export_servers_at_exit)
    signal.signal(signal.SIGTERM, pool.stop)
    signal.signal(signal.SIGINT, pool.stop)
    try:
        return pool.run()
    except ShareflowError as e:
        LOG.error("conductor pool stopped: %s", e.message)
        return 1


if __name__ == "__main__":
    sys.exit(main())
