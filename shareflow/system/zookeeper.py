"""A private ZooKeeper server: the one ``shareflow run`` starts, and the tests' one.

It runs Debian's ``zookeeper`` package (3.8) in standalone mode straight from
its jars, with a ``zoo.cfg`` of its own in ``data_dir``::

    java -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \\
        org.apache.zookeeper.server.quorum.QuorumPeerMain DATA_DIR/zoo.cfg

Its log goes to ``DATA_DIR/zookeeper.log``. Readiness is the four-letter word
``ruok`` answered ``imok`` (plain socket; there is no ``nc`` here) followed by
``srvr`` reporting a mode, i.e. the server is accepting sessions. All
four-letter words are whitelisted because kazoo's ``server_version()``, which
TaskFlow's jobboard calls on connect, needs ``envi``. The AdminServer (an HTTP
server on port 8080) is disabled.

The server is stopped by its own pid only (SIGTERM, then SIGKILL), never by
name. By default it is also tied to the life of the thread that started it
(``setpriv --pdeathsig TERM``) so a killed test run or ``shareflow run`` leaves
no JVM behind; pass ``die_with_parent=False`` when starting it from a
short-lived thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from shareflow.exceptions import ConfigError, CoordinationError
from shareflow.system.ports import port_in_use

__all__ = [
    "ZooKeeperServer",
    "ZooKeeperSupervisor",
    "four_letter_word",
    "ZOOKEEPER_CONF_DIR",
    "ZOOKEEPER_JAR",
]

ZOOKEEPER_CONF_DIR = Path("/etc/zookeeper/conf")
ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
#: Debian's zookeeper.jar brings slf4j-api but no binding (it would log nothing);
#: these two make it use /etc/zookeeper/conf/log4j.properties (a dependency of
#: libzookeeper-java, so always present; left out if not).
LOG_JARS = (Path("/usr/share/java/slf4j-log4j12.jar"), Path("/usr/share/java/log4j-1.2.jar"))
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

#: A jobboard keeps little data; without a cap the JVM takes a quarter of RAM.
DEFAULT_JVM_OPTS: tuple[str, ...] = ("-Xms64m", "-Xmx512m", "-XX:+UseSerialGC")

log = logging.getLogger(__name__)

_LOG_NAME = "zookeeper.log"
_CFG_NAME = "zoo.cfg"


def four_letter_word(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    """Send a ZooKeeper four-letter word (``ruok``, ``srvr``, ``envi``, ...) and
    return the whole answer. Raises ``OSError`` when the server cannot be reached."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode("ascii"))
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode("utf-8", "replace")


class ZooKeeperServer:
    """One standalone ZooKeeper process owned by this object.

    ``start()`` writes ``data_dir/zoo.cfg``, launches the JVM and returns once
    the server accepts sessions; ``stop()`` ends exactly that process. The
    data (``data_dir/version-2``) survives ``stop()``: starting again resumes
    with the same tree (handy to test a ZooKeeper restart).

    ``min_session_ms`` lowers ZooKeeper's minimum session timeout (default
    2 x ``tick_ms``) so clients can ask for short sessions; ``extra_config``
    adds or overrides ``zoo.cfg`` keys (for example ``{"forceSync": "no"}``).
    """

    def __init__(
        self,
        data_dir: Path,
        port: int,
        host: str = "127.0.0.1",
        tick_ms: int = 2000,
        min_session_ms: int | None = None,
        *,
        max_session_ms: int | None = None,
        extra_config: Mapping[str, object] | None = None,
        jvm_opts: Sequence[str] = DEFAULT_JVM_OPTS,
        java: str = "java",
        die_with_parent: bool = True,
    ):
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ConfigError(f"zookeeper: port {port!r} is not a TCP port")
        if not host:
            raise ConfigError("zookeeper: empty host")
        if tick_ms <= 0:
            raise ConfigError(f"zookeeper: tick_ms must be positive, not {tick_ms!r}")
        if min_session_ms is not None and min_session_ms <= 0:
            raise ConfigError(f"zookeeper: min_session_ms must be positive, not {min_session_ms!r}")
        if max_session_ms is not None:
            if max_session_ms < (min_session_ms or 2 * tick_ms):
                raise ConfigError(
                    f"zookeeper: max_session_ms {max_session_ms} is below the minimum session timeout"
                )
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.host = host
        self.tick_ms = tick_ms
        self.min_session_ms = min_session_ms
        self.max_session_ms = max_session_ms
        self.extra_config = dict(extra_config or {})
        self.jvm_opts = tuple(jvm_opts)
        self.java = java
        self.die_with_parent = die_with_parent
        #: seconds the last successful ``start()`` took until the server was ready
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh = None

    # --- properties --------------------------------------------------------

    @property
    def hosts(self) -> str:
        """``host:port``, as kazoo and TaskFlow want it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / _CFG_NAME

    @property
    def log_path(self) -> Path:
        return self.data_dir / _LOG_NAME

    @property
    def pid(self) -> int | None:
        """The JVM's pid while this object owns a process (running or not yet reaped)."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        """The exit status of this object's process once it has ended."""
        return self._proc.poll() if self._proc is not None else None

    # --- configuration -----------------------------------------------------

    def config(self) -> dict[str, str]:
        """The ``zoo.cfg`` keys ``start()`` writes."""
        cfg: dict[str, object] = {
            "dataDir": self.data_dir,
            "clientPort": self.port,
            "clientPortAddress": self.host,
            "tickTime": self.tick_ms,
            "admin.enableServer": "false",
            "4lw.commands.whitelist": "*",
            # Keep a long-running `shareflow run` from filling the disk with snapshots.
            "autopurge.snapRetainCount": 3,
            "autopurge.purgeInterval": 1,
        }
        if self.min_session_ms is not None:
            cfg["minSessionTimeout"] = self.min_session_ms
            if self.max_session_ms is None and self.min_session_ms > 20 * self.tick_ms:
                cfg["maxSessionTimeout"] = self.min_session_ms
        if self.max_session_ms is not None:
            cfg["maxSessionTimeout"] = self.max_session_ms
        cfg.update(self.extra_config)
        out = {}
        for key, value in cfg.items():
            text = str(value)
            if "\n" in text or "\n" in key:
                raise ConfigError(f"zookeeper: config value for {key!r} contains a newline")
            out[key] = text
        return out

    def _write_config(self) -> None:
        body = "".join(f"{k}={v}\n" for k, v in self.config().items())
        tmp = self.config_path.with_suffix(".cfg.tmp")
        tmp.write_text("# written by shareflow.system.zookeeper; rewritten at every start\n" + body)
        os.replace(tmp, self.config_path)

    def _argv(self) -> list[str]:
        java = shutil.which(self.java)
        if java is None:
            raise ConfigError(
                f"zookeeper: {self.java!r} not found on PATH; install a Java runtime "
                "(`make bootstrap` installs the zookeeper package and its JRE)"
            )
        if not ZOOKEEPER_JAR.is_file():
            raise ConfigError(
                f"zookeeper: {ZOOKEEPER_JAR} is missing; install the Debian package "
                "`zookeeper` (`make bootstrap` does)"
            )
        classpath = [str(ZOOKEEPER_CONF_DIR), str(ZOOKEEPER_JAR)]
        classpath += [str(p) for p in LOG_JARS if p.is_file()]
        argv = [
            java,
            *self.jvm_opts,
            f"-Dzookeeper.log.dir={self.data_dir}",
            "-Dzookeeper.root.logger=INFO,CONSOLE",
            "-cp",
            ":".join(classpath),
            MAIN_CLASS,
            str(self.config_path),
        ]
        if self.die_with_parent:
            setpriv = shutil.which("setpriv")
            if setpriv is not None:
                argv = [setpriv, "--pdeathsig", "TERM", "--", *argv]
        return argv

    # --- life cycle ----------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        """Start the server and wait until it accepts sessions.

        Raises ``ConfigError`` when Java or ZooKeeper is not installed and
        ``CoordinationError`` when the port is taken, the process exits during
        start-up or it is not ready within ``timeout`` seconds (the process is
        then stopped); both messages carry the tail of the server's log.
        """
        if self.is_running():
            return
        self._reap()
        argv = self._argv()
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"zookeeper: cannot create data dir {self.data_dir}: {e}") from e
        if port_in_use(self.host, self.port):
            raise CoordinationError(
                f"zookeeper: {self.hosts} is already in use by another process",
                user_message="coordination service unavailable",
            )
        self._write_config()
        log_fh = open(self.log_path, "ab")
        log_fh.write(f"\n=== shareflow: starting {' '.join(argv)}\n".encode())
        log_fh.flush()
        began = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.data_dir,
                stdin=subprocess.DEVNULL,
                stdout=log_fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as e:
            log_fh.close()
            raise CoordinationError(f"zookeeper: cannot execute {argv[0]}: {e}") from e
        self._proc, self._log_fh = proc, log_fh

        deadline = began + timeout
        while True:
            rc = proc.poll()
            if rc is not None:
                self._reap()
                raise CoordinationError(
                    f"zookeeper: process {proc.pid} exited with {rc} during start-up "
                    f"on {self.hosts}; {self._log_tail()}",
                    user_message="coordination service unavailable",
                )
            if self._ready():
                self.startup_seconds = time.monotonic() - began
                log.info(
                    "zookeeper ready on %s (pid %d, %s) in %.2f s",
                    self.hosts, proc.pid, self.data_dir, self.startup_seconds,
                )
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise CoordinationError(
                    f"zookeeper: not ready on {self.hosts} after {timeout:g} s "
                    f"(process {proc.pid} stopped); {self._log_tail()}",
                    user_message="coordination service unavailable",
                )
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            if four_letter_word(self.host, self.port, "ruok", timeout=1.0).strip() != "imok":
                return False
            # ruok answers as soon as the port is open; srvr says whether sessions are served.
            return "Mode:" in four_letter_word(self.host, self.port, "srvr", timeout=1.0)
        except OSError:
            return False

    def stop(self, timeout: float = 10) -> int | None:
        """End this object's process: SIGTERM, wait ``timeout`` s, then SIGKILL.

        Returns its exit status (``None`` when nothing was started). Idempotent.
        """
        proc = self._proc
        if proc is None:
            return None
        try:
            if proc.poll() is None:
                log.info("stopping zookeeper on %s (pid %d)", self.hosts, proc.pid)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("zookeeper pid %d ignored SIGTERM for %g s; killing it", proc.pid, timeout)
                    proc.kill()
                    proc.wait(10)
            return proc.returncode
        finally:
            self._reap()

    def kill(self) -> None:
        """SIGKILL this object's process at once (to test a crashed ZooKeeper)."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        finally:
            self._reap()

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None
        if self._proc is None and self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None

    def _log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 16384))
                text = fh.read().decode("utf-8", "replace")
        except OSError as e:
            return f"log {self.log_path} unreadable: {e}"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"last lines of {self.log_path}:\n{tail}"

    # --- context manager -------------------------------------------------------

    def __enter__(self) -> ZooKeeperServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.is_running() else "stopped"
        return f"<ZooKeeperServer {self.hosts} {self.data_dir} {state}>"


#: First delay before restarting a ZooKeeper that keeps dying (seconds); it
#: doubles with every further failure up to MAX_RESTART_BACKOFF.
RESTART_BACKOFF = 1.0
MAX_RESTART_BACKOFF = 30.0
#: A server that has run this long has recovered: its next death is
#: restarted at once again.
STABLE_AFTER = 60.0


class ZooKeeperSupervisor:
    """Keeps one :class:`ZooKeeperServer` running, as the conductor pool keeps
    its workers and NFS-Ganesha running: :meth:`check`, called periodically
    (``shareflow run`` calls it from its supervision loop), notices a dead
    server and starts it again on the same data, so the jobboard is as it was
    and sessions survive if it is back within their timeout.

    The first restart is at once; while the server keeps dying or cannot
    start, each further attempt waits ``backoff`` seconds, doubling up to
    ``max_backoff``, until the server has stayed up ``stable_after`` seconds.
    Every death, restart and failed attempt is logged. ``check`` blocks while
    a start is in progress (a few seconds; at most the server's start timeout).
    """

    def __init__(self, server: ZooKeeperServer, *, backoff: float = RESTART_BACKOFF,
                 max_backoff: float = MAX_RESTART_BACKOFF, stable_after: float = STABLE_AFTER,
                 clock=time.monotonic):
        self.server = server
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._stable_after = stable_after
        self._clock = clock
        #: Restart attempts since the server last stayed up ``stable_after`` seconds.
        self.attempts = 0
        #: Successful restarts so far.
        self.restarts = 0
        self._started_at = clock()
        self._next_attempt: float | None = None

    def delay(self) -> float:
        """Seconds before the next restart attempt: none for the first."""
        if self.attempts == 0:
            return 0.0
        return min(self._max_backoff, self._backoff * 2 ** (self.attempts - 1))

    def check(self) -> bool:
        """Restart the server if it is dead and its backoff has passed.
        Returns whether it is running after the check."""
        now = self._clock()
        if self.server.is_running():
            if self.attempts and now - self._started_at >= self._stable_after:
                self.attempts = 0
            return True
        if self._next_attempt is None:
            log.error("zookeeper on %s (pid %s) died with status %s; restarting it in %.1f s",
                      self.server.hosts, self.server.pid, self.server.returncode, self.delay())
            self._next_attempt = now + self.delay()
        if now < self._next_attempt:
            return False
        self.attempts += 1
        try:
            self.server.start()
        except (CoordinationError, ConfigError) as e:
            self._next_attempt = self._clock() + self.delay()
            log.error("could not restart zookeeper on %s (attempt %d): %s; next attempt in %.1f s",
                      self.server.hosts, self.attempts, e, self.delay())
            return False
        self.restarts += 1
        self._started_at = self._clock()
        self._next_attempt = None
        log.warning("zookeeper on %s restarted (pid %d, restart %d)", self.server.hosts, self.server.pid,
                    self.restarts)
        return True
