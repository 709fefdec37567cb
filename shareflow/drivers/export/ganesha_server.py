"""One NFS-Ganesha server process and its private D-Bus: files, start, stop, reload.

All files live in the server's ``state_dir``: main config, one file per
export in ``exports.d/`` (the export driver writes them), ``exports.conf``
that includes them all (written at each start), log, pid file, recovery
directory, and the bus's config, socket and pid file (``dbus_daemon``). The process is
identified by pid *and* by its command line naming this config file, and it
is signalled through a pidfd, so a recycled pid can never be signalled.

Ganesha is started in a network namespace with ``nsenter --net`` only; see
``shareflow.system.netns.exec_argv`` for why ``ip netns exec`` must not be used.
With ``mount_table = "own"`` it also runs in a mount namespace of its own
whose ``/etc/mtab`` is a table shareflow writes (``ganesha_mtab``): creating
an export then costs the same however many mounts the host has.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from shareflow.config import GaneshaConfig
from shareflow.drivers.base import ClientRule
from shareflow.drivers.export import ganesha_config
from shareflow.drivers.export.dbus_daemon import ADDRESS_ENV, BusDaemon
from shareflow.drivers.export.ganesha_mtab import MountTable, visible_to
from shareflow.exceptions import ExportError
from shareflow.system import netns, own_mtab
from shareflow.system.atomic_file import write_atomic

log = logging.getLogger(__name__)

BINARY = "ganesha.nfsd"
READY_MARK = "NFS SERVER INITIALIZED"
RELOAD_MARK = "Reread exports complete"
#: What Ganesha's signal thread logs instead of RELOAD_MARK when it refuses a
#: reload as a whole (nfs_init.c reread_config, exports.c reread_exports): a
#: file it cannot parse (it then keeps every export as it was), or an export
#: defaults block in error. Without these the wait for a mark that never
#: comes would last the whole timeout - with the server's exports lock held.
REFUSED_MARKS = (
    "Error while parsing new configuration file",
    "Error while parsing EXPORT entries",
)
REFUSED_MESSAGE = "the NFS server refused the change; the share's export was left as it was"
#: After the reload mark, Ganesha's reload thread still writes the config
#: errors it collected; the log is read until it has been quiet this long.
LOG_SETTLE = 0.01
#: Components whose CRIT/MAJ/FATAL lines mean an export was not applied.
#: (DBUS, NFS CB/krb5 and DISP complain on every start here and are harmless.)
ERROR_COMPONENTS = frozenset({"CONFIG", "EXPORT", "FSAL"})
ERROR_LEVELS = frozenset({"CRIT", "MAJ", "FATAL"})
#: The thread that handles SIGHUP waits for signals in rt_sigtimedwait
#: (syscall number per architecture, as /proc/PID/task/TID/syscall shows it).
SYS_RT_SIGTIMEDWAIT = {"x86_64": "128", "aarch64": "137"}.get(os.uname().machine)
#: How often the reload wait looks at the log and the signal thread.
SIGWAIT_POLL = 0.0005
#: How long a reload waits for a server that is down to be back: the
#: conductor pool restores a dead server within about a second (its
#: supervision interval plus a start). Failing the change at once instead
#: would fail a tenant's operation - and possibly the undo of a failed one,
#: leaving its volume behind - for a restart that is already under way.
RESTART_WAIT = 10.0
#: An EXPORT block's Path (shareflow writes paths double-quoted, unescaped).
_PATH_LINE = re.compile(r'^\s*Path\s*=\s*"([^"]*)"\s*;', re.MULTILINE)
# "... nfs-ganesha-123[sigmgr] function :COMPONENT :LEVEL :message"
_LOG_LINE = re.compile(r"\] \S+ :(?P<component>[A-Z0-9 _]+?) :(?P<level>[A-Z_]+) :(?P<message>.*)$")


class ConfigRefused(ExportError):
    """The server answered the reload and refused (part of) the configuration."""


def log_errors(text: str) -> list[str]:
    """The lines of Ganesha log ``text`` that report a configuration or export
    failure (pure; see ``ERROR_COMPONENTS``)."""
    errors = []
    for line in text.splitlines():
        m = _LOG_LINE.search(line)
        if m and m["level"] in ERROR_LEVELS and m["component"] in ERROR_COMPONENTS:
            errors.append(line.strip())
    return errors


def _listening(pid: int, port: int) -> bool:
    """Whether the network namespace of ``pid`` has a TCP socket listening on
    ``port``: /proc/PID/net/ is that namespace's view, so no need to enter it."""
    want = f":{port:04X}"
    for name in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{name}") as f:
                next(f, None)
                for row in f:
                    cols = row.split()
                    if len(cols) > 3 and cols[1].endswith(want) and cols[3] == "0A":  # 0A = LISTEN
                        return True
        except (FileNotFoundError, ProcessLookupError):
            pass
    return False


class GaneshaServer:
    def __init__(self, cfg: GaneshaConfig, *, timeout: float = 10.0, restart_wait: float = RESTART_WAIT):
        """``restart_wait``: how long :meth:`reload` waits for the server to be
        running again when it is down (0 for a server nobody restarts)."""
        self.cfg = cfg
        self.timeout = timeout
        self.restart_wait = restart_wait
        self.state_dir = Path(cfg.state_dir).resolve()
        self._child: subprocess.Popen | None = None
        self.bus = BusDaemon(self.state_dir, timeout=timeout)
        self._export_manager = None
        #: The table a server started with ``mount_table = "own"`` reads.
        self.own_table = MountTable(self.state_dir, timeout=timeout)

    def __repr__(self) -> str:
        where = f" in netns {self.cfg.netns}" if self.cfg.netns else ""
        return f"GaneshaServer({self.cfg.address}:{self.cfg.port}{where}, {self.state_dir})"

    # --- files --------------------------------------------------------------

    @property
    def address(self) -> str:
        return self.cfg.address

    @property
    def port(self) -> int:
        return self.cfg.port

    @property
    def config_path(self) -> Path:
        return self.state_dir / "ganesha.conf"

    @property
    def exports_path(self) -> Path:
        return self.state_dir / "exports.conf"

    @property
    def exports_dir(self) -> Path:
        """One file per export (the export driver's durable record)."""
        return self.state_dir / "exports.d"

    @property
    def log_path(self) -> Path:
        return self.state_dir / "ganesha.log"

    @property
    def pid_path(self) -> Path:
        return self.state_dir / "ganesha.pid"

    @property
    def recovery_dir(self) -> Path:
        return self.state_dir / "recovery"

    def write_config(self) -> None:
        """Write the main config and the exports file that includes every
        export file there is now (what Ganesha serves from its start)."""
        self.recovery_dir.mkdir(parents=True, exist_ok=True)
        self.exports_dir.mkdir(parents=True, exist_ok=True)
        text = ganesha_config.render_main(
            ganesha_config.ServerSpec(
                address=self.cfg.address,
                port=self.cfg.port,
                recovery_root=str(self.recovery_dir),
                exports_file=str(self.exports_path),
            )
        )
        write_atomic(self.config_path, text)
        self._migrate_state_file()
        texts = self.write_exports_list()
        if self.cfg.mount_table == "own":
            # Ganesha creates every export from these at start, each with
            # a scan of the table: it must list all their filesystems then.
            self.own_table.prepare(_export_paths(texts))

    def _migrate_state_file(self) -> None:
        """Exports kept by an earlier shareflow in one ``exports.json``
        become export files (once; the old file is kept, renamed)."""
        old = self.state_dir / "exports.json"
        try:
            data = json.loads(old.read_text())
        except FileNotFoundError:
            return
        except ValueError as e:
            raise ExportError(f"{old} is unreadable: {e}") from e
        ids = self.state_dir / "export-ids"
        ids.mkdir(parents=True, exist_ok=True)
        for sid, e in data.get("exports", {}).items():
            spec = ganesha_config.ExportSpec(
                export_id=e["export_id"], path=e["path"], pseudo=e["pseudo"],
                clients=tuple(ClientRule.from_json(c) for c in e["clients"]))
            target = self.exports_dir / f"{ganesha_config.check_share_id(sid)}.conf"
            if not target.exists():
                write_atomic(target, ganesha_config.render_export_file(spec))
            with contextlib.suppress(FileExistsError):
                os.symlink(sid, ids / str(spec.export_id))
        os.replace(old, old.with_name("exports.json.migrated"))
        log.info("moved the exports of %s into %s", old, self.exports_dir)

    def export_files(self) -> list[Path]:
        """The export files, by name (temporary files start with a dot)."""
        return sorted(p for p in self.exports_dir.glob("*.conf") if not p.name.startswith("."))

    def write_exports_list(self) -> list[str]:
        """``exports.conf``: every export file's export, one after another,
        the options they share once (``render_start_exports``: the start's
        configuration parse is quadratic in its tokens). Written before each
        start (and by the SIGHUP fallback before each reload); changes over
        D-Bus leave it alone, so no change rewrites a file that grows with
        the number of exports. (Not one ``%include`` per file: Ganesha 4.3
        compares each included file's name with every one included before,
        which made a start with 1,000 exports take twice as long as with the
        same blocks in one file.) Returns the export files' texts."""
        texts = []
        for path in self.export_files():
            try:
                texts.append(path.read_text())
            except FileNotFoundError:
                continue  # removed since the listing: not served either
        write_atomic(self.exports_path, ganesha_config.render_start_exports(texts))
        return texts

    def export_manager(self):
        """This server's ``org.ganesha.nfsd.exportmgr`` (one connection, kept)."""
        if self._export_manager is None:
            # Imported here: ganesha_dbus imports this module's errors.
            from shareflow.drivers.export.ganesha_dbus import ExportManager

            self._export_manager = ExportManager(self.bus.address, timeout=self.timeout)
        return self._export_manager

    def on_bus(self, pid: int | None = None) -> bool:
        """Whether the running Ganesha was started on this server's bus (one
        started by anything else - an operator's, or one from before
        shareflow ran its own bus - only takes changes through SIGHUP)."""
        pid = self.pid() if pid is None else pid
        if pid is None:
            return False
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            return False
        return f"{ADDRESS_ENV}={self.bus.address}".encode() in env

    # --- process ------------------------------------------------------------

    def _matches(self, pid: int) -> bool:
        """Whether ``pid`` is a live Ganesha started with this config file."""
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        return state not in ("Z", "X") and os.fsencode(self.config_path) in argv

    def pid(self) -> int | None:
        """Pid of this server's running process (ours or from the pid file)."""
        if self._child is not None:
            if self._child.poll() is None and self._matches(self._child.pid):
                return self._child.pid
            if self._child.poll() is not None:
                self._child = None  # reaped
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid > 0 and self._matches(pid) else None

    def is_running(self) -> bool:
        """Ganesha runs, and so does its bus if it was started on it."""
        pid = self.pid()
        return pid is not None and (self.bus.is_running() or not self.on_bus(pid))

    def _pidfd(self) -> int | None:
        """A pidfd for the server, verified *after* opening it: from then on
        signals reach that very process even if the pid were reused."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        if not self._matches(pid):
            os.close(fd)
            return None
        return fd

    def start(self, abort: threading.Event | None = None) -> None:
        """Start the server and its bus (whichever is not running) and wait
        until it listens. A Ganesha whose bus died is on its way out (it
        exits on disconnect): it is stopped first, then both start.

        ``abort`` set while it starts (its caller is stopping: a start with
        thousands of exports takes seconds) stops what this started and
        raises :class:`ExportError`: nothing is left serving behind a
        caller that is gone."""
        if self.is_running():
            return
        if self.pid() is not None:
            log.warning("the D-Bus of %s is gone; restarting the server with it", self)
            self.stop()
        self.bus.start()
        self.write_config()
        self.pid_path.unlink(missing_ok=True)
        offset, out_offset = _size(self.log_path), _size(self.state_dir / "ganesha.out")
        argv = [BINARY, "-F", "-f", str(self.config_path), "-L", str(self.log_path), "-p", str(self.pid_path)]
        if self.cfg.mount_table == "own":
            # Becomes Ganesha (exec, same pid) once its namespace is set up;
            # run as a script in isolated mode: nothing of shareflow's imported.
            argv = [sys.executable, "-I", "-S", own_mtab.__file__, str(self.own_table.link), "--", *argv]
        argv = netns.exec_argv(self.cfg.netns, argv)
        log.info("starting %s", " ".join(argv))
        with open(self.state_dir / "ganesha.out", "ab") as out:
            try:
                # Own session: the server must not get the terminal's signals
                # meant for the process that started it.
                self._child = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
                    env={**os.environ, ADDRESS_ENV: self.bus.address},
                )
            except OSError as e:
                raise ExportError(f"cannot start {BINARY}: {e}") from e
        try:
            self._wait_started(offset, out_offset, abort)
        finally:
            if self.cfg.mount_table == "own":
                self.own_table.started()  # every export is created (or it failed)

    def _wait_started(self, offset: int, out_offset: int, abort: threading.Event | None) -> None:
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while time.monotonic() < deadline:
            if abort is not None and abort.is_set():
                self._stop_started()
                raise ExportError(f"{BINARY} in {self.state_dir}: its start was abandoned (stopping)")
            if self._child.poll() is not None:
                # Before Ganesha logs anything, only its output says why
                # (the mount table's helper, say).
                out = _read_from(self.state_dir / "ganesha.out", out_offset).strip()[-1000:]
                raise ExportError(f"{BINARY} exited with {self._child.returncode} at start: {self._tail(offset)}"
                                  + (f" | {out}" if out else ""))
            if READY_MARK in _read_from(self.log_path, offset) and _listening(self._child.pid, self.cfg.port):
                log.info("ganesha on %s:%d is up (pid %d)", self.address, self.port, self._child.pid)
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        self._stop_started()
        raise ExportError(f"{BINARY} did not start within {self.timeout:g} s: {self._tail(offset)}")

    @contextlib.contextmanager
    def creating_export(self, name: str, path: str):
        """Around an ``AddExport``/``UpdateExport`` of ``path``: when the
        running server reads its own mount table (whatever the setting is
        now: it is how that process was started), checks that it sees the
        same directory there (the share's mount reached its namespace) and
        lists that filesystem in its table for the call."""
        pid = self.pid()
        if pid is None or not self.own_table.read_by(pid):
            yield
            return
        if self.own_table.starting() and _listening(pid, self.cfg.port):
            # Its start is over (it listens once every export is created),
            # but whoever started it did not live to drop the start's lines.
            self.own_table.started()
        if not visible_to(pid, path):
            raise ExportError(
                f"{self} does not see {path} as this host does: mounts made on the host do not reach its "
                "mount namespace (the mount holding them must be shared; see ganesha.mount_table)",
                user_message="the NFS server cannot see the share's storage")
        with self.own_table.listing(name, path):
            yield

    def stop(self) -> None:
        """SIGTERM the server, wait, then SIGKILL that same process; then its
        bus. Not running: nothing to do."""
        try:
            self._stop_ganesha()
        finally:
            self.bus.stop()
            if self._export_manager is not None:
                self._export_manager.close()

    def _stop_ganesha(self) -> None:
        fd = self._pidfd()
        if fd is None:
            self._reap()
            return
        try:
            signal.pidfd_send_signal(fd, signal.SIGTERM)
            if not self._wait_exit(fd, self.timeout):
                log.warning("ganesha did not stop on SIGTERM; killing it")
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                if not self._wait_exit(fd, self.timeout):
                    raise ExportError(f"{BINARY} in {self.state_dir} survived SIGKILL")
        except ProcessLookupError:
            pass
        finally:
            os.close(fd)
        self._reap()
        self.pid_path.unlink(missing_ok=True)

    def _wait_exit(self, fd: int, timeout: float) -> bool:
        if self._child is not None:
            try:
                self._child.wait(timeout)  # our child: also reaps it
                return True
            except subprocess.TimeoutExpired:
                return False
        # Not our child: a pidfd becomes readable when the process exits.
        return bool(select.select([fd], [], [], timeout)[0])

    def let_go(self) -> None:
        """Stop keeping the process this object started as a child (it keeps
        running; it is still found and stopped through its pid file). For a
        starter that will not supervise it: the subprocess module then reaps
        it whenever it ends, so a killed one does not linger as a zombie."""
        self._child = None
        self.bus.let_go()

    def _stop_started(self) -> None:
        """Stop the server this start spawned, however far it got: before it
        writes its pid file (or, with its own mount table, before its helper
        becomes Ganesha) only our child handle knows it. SIGKILL at once: a
        Ganesha still starting serves no one yet, and it does not take
        SIGTERM until its start is over (seconds to minutes with thousands of
        exports) - a stop waiting for that outlived the pool that asked."""
        child = self._child
        try:
            if child is not None and child.poll() is None:
                child.kill()
                child.wait(timeout=self.timeout)
        finally:
            self.stop()  # its bus; a server it found running is not ours to kill

    def _reap(self) -> None:
        if self._child is not None and self._child.poll() is not None:
            self._child = None

    def reload(self) -> None:
        """Make the server re-read its exports (SIGHUP) and wait until it has.

        Raises :class:`ExportError` when it is not running, does not finish
        within the timeout, or logs a configuration or export error.
        """
        fd = self._pidfd_when_ready()
        if fd is None:
            raise ExportError(f"{BINARY} in {self.state_dir} is not running")
        try:
            pid = self.pid()
            sigmgr = _sigwait_thread(pid)
            offset = _size(self.log_path)
            with self._all_listed(pid):
                signal.pidfd_send_signal(fd, signal.SIGHUP)
                text = self._wait_for((RELOAD_MARK, *REFUSED_MARKS), offset, fd, sigmgr=sigmgr)
        finally:
            os.close(fd)
        errors = log_errors(text)
        if any(mark in text for mark in REFUSED_MARKS):
            raise ConfigRefused(f"{BINARY} refused the configuration: " + " | ".join(errors[:5]),
                                user_message=REFUSED_MESSAGE)
        if errors:
            raise ConfigRefused(f"{BINARY} reported errors on reload: " + " | ".join(errors[:5]),
                                user_message=REFUSED_MESSAGE)

    def _all_listed(self, pid: int | None):
        """Every export's filesystem in the table of a server that reads its
        own, for a reload (it creates every export again): each ``Path`` of
        the exports file it re-reads."""
        if pid is None or not self.own_table.read_by(pid):
            return contextlib.nullcontext()
        try:
            text = self.exports_path.read_text()
        except FileNotFoundError:
            text = ""
        return self.own_table.listing_all(_PATH_LINE.findall(text))

    def _pidfd_when_ready(self) -> int | None:
        """A pidfd for the server once it serves and takes signals, waiting up
        to ``restart_wait`` for one that is down (or still starting) to get
        there; None if it does not. A server that started after the caller
        wrote the exports file serves that file already; one that started
        before reads it again on the SIGHUP that follows, so the change is
        served either way."""
        deadline = time.monotonic() + min(self.restart_wait, self.timeout)
        delay = 0.005
        while True:
            late = time.monotonic() >= deadline
            fd = self._pidfd()
            if fd is not None:
                pid = self.pid()
                # Listening means it has initialised; its signal thread back
                # in its wait means a SIGHUP is handled at once (past the
                # deadline the reload's own wait copes without it).
                if pid is not None and _listening(pid, self.cfg.port) and (
                        late or SYS_RT_SIGTIMEDWAIT is None or _sigwait_thread(pid) is not None):
                    return fd
                os.close(fd)
            if late:
                return None
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _wait_for(self, marks: str | tuple[str, ...], offset: int, fd: int,
                  sigmgr: tuple[int, int] | None = None) -> str:
        """Wait until the log holds one of ``marks`` after ``offset``, and
        then until what follows it in the same reload is written too."""
        marks = (marks,) if isinstance(marks, str) else marks
        deadline = time.monotonic() + self.timeout
        delay = SIGWAIT_POLL if sigmgr else 0.001
        while True:
            text = _read_from(self.log_path, offset)
            if any(mark in text for mark in marks):
                if sigmgr is None:
                    return self._settle(offset, text, deadline)
                # Ganesha's signal thread logs the mark, then the config
                # errors it collected, then waits for the next signal: once
                # it is back in that wait, this reload has logged everything.
                while not _in_sigwait(*sigmgr) and time.monotonic() < deadline:
                    time.sleep(SIGWAIT_POLL)
                return _read_from(self.log_path, offset)
            if select.select([fd], [], [], 0)[0]:
                raise ExportError(f"{BINARY} exited during reload: {text[-2000:]}")
            if time.monotonic() >= deadline:
                raise ExportError(f"{BINARY} did not finish reloading within {self.timeout:g} s")
            time.sleep(delay)
            if sigmgr is None:
                delay = min(delay * 2, 0.01)

    def _settle(self, offset: int, text: str, deadline: float) -> str:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < LOG_SETTLE and time.monotonic() < deadline:
            time.sleep(LOG_SETTLE / 4)
            newer = _read_from(self.log_path, offset)
            if len(newer) != len(text):
                text, quiet_since = newer, time.monotonic()
        return text

    def _tail(self, offset: int) -> str:
        text = _read_from(self.log_path, offset)
        return text[-2000:].strip() or "(no log output)"


def _export_paths(texts: list[str]) -> list[str]:
    """The ``Path`` of each export file's text (unreadable ones left out:
    Ganesha refuses those itself)."""
    paths = []
    for text in texts:
        try:
            paths.append(ganesha_config.parse_export_file(text).path)
        except ExportError:
            continue
    return paths


def _blocked_in(pid: int, tid: int) -> str | None:
    """The syscall number thread ``tid`` of ``pid`` is blocked in (None when
    it is running or cannot be read)."""
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall") as f:
            return f.read().split(" ", 1)[0]
    except OSError:
        return None


def _in_sigwait(pid: int, tid: int) -> bool:
    if not os.path.exists(f"/proc/{pid}/task/{tid}"):
        return True  # gone: it logs nothing more
    return _blocked_in(pid, tid) == SYS_RT_SIGTIMEDWAIT


def _sigwait_thread(pid: int | None) -> tuple[int, int] | None:
    """(pid, tid) of the one Ganesha thread waiting for signals, or None when
    that cannot be told (unknown architecture, no access to /proc): then the
    reload waits for the log to go quiet instead (LOG_SETTLE)."""
    if pid is None or SYS_RT_SIGTIMEDWAIT is None:
        return None
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return None
    waiting = [t for t in tids if _blocked_in(pid, t) == SYS_RT_SIGTIMEDWAIT]
    return (pid, waiting[0]) if len(waiting) == 1 else None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
