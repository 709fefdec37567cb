"""The private D-Bus daemon of one NFS-Ganesha server.

Ganesha changes exports one at a time through ``org.ganesha.nfsd.exportmgr``
on the *system* bus; there is no system bus here (and a shared one would let
any Ganesha on the host take the name), so each export server gets a bus of
its own: a ``dbus-daemon`` whose socket, config and pid file live in the
server's state directory. Its policy lets only root connect and only root own
``org.ganesha.nfsd`` (Ganesha and the conductors run as root).

It runs in the host's network namespace even for a share server: a
filesystem socket is reached by path from any network namespace, and the
server's Ganesha enters only the network namespace (``nsenter --net``).

The daemon is started and stopped with its Ganesha (:class:`GaneshaServer`):
Ganesha exits when its bus goes away (libdbus' exit-on-disconnect), so a dead
bus shows as a dead server and its supervisor restarts the two together.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import signal
import socket
import subprocess
import time
from pathlib import Path
from xml.sax.saxutils import escape

from shareflow.exceptions import ExportError
from shareflow.system.atomic_file import write_atomic

log = logging.getLogger(__name__)

BINARY = "dbus-daemon"
GANESHA_BUS_NAME = "org.ganesha.nfsd"
#: Longest unix socket path dbus-daemon takes: its own limit
#: (_DBUS_MAX_SUN_PATH_LENGTH, 99), below the kernel's 107; a longer one
#: fails the daemon's start with "Socket name too long".
SUN_PATH_MAX = 99
#: Short symlinks to state directories whose socket path would be longer.
SHORT_LINKS_DIR = Path("/run/shareflow-dbus")
#: The environment variable through which Ganesha finds "the system bus".
ADDRESS_ENV = "DBUS_SYSTEM_BUS_ADDRESS"


def render_config(socket_path: Path, pid_path: Path) -> str:
    """The bus configuration. Paths come from the server's own state
    directory (checked by ganesha_config.check_path at server set-up), and
    are escaped all the same."""
    return (
        '<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"\n'
        ' "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">\n'
        "<!-- Written by shareflow; changes are overwritten. -->\n"
        "<busconfig>\n"
        # "system" is what Ganesha asks for; the address is our own socket.
        "  <type>system</type>\n"
        f"  <listen>unix:path={escape(str(socket_path))}</listen>\n"
        "  <auth>EXTERNAL</auth>\n"
        f"  <pidfile>{escape(str(pid_path))}</pidfile>\n"
        '  <policy context="default">\n'
        # Without an allowed user the daemon never answers a connection.
        '    <allow user="root"/>\n'
        '    <allow send_destination="*" eavesdrop="false"/>\n'
        # Replies and the bus's own signals (NameAcquired) must get through,
        # or Ganesha never learns it has its name.
        '    <allow receive_sender="*"/>\n'
        "  </policy>\n"
        # Only root may own Ganesha's name: nobody else can pose as the
        # export server to the driver.
        '  <policy user="root">\n'
        f'    <allow own="{GANESHA_BUS_NAME}"/>\n'
        "  </policy>\n"
        "</busconfig>\n"
    )


class BusDaemon:
    """One ``dbus-daemon`` in ``state_dir``, identified by pid *and* by its
    command line naming this config file, signalled through a pidfd."""

    def __init__(self, state_dir: Path, *, timeout: float = 10.0):
        self.state_dir = state_dir
        self.timeout = timeout
        self._child: subprocess.Popen | None = None

    @property
    def config_path(self) -> Path:
        return self.state_dir / "dbus.conf"

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "dbus.sock"

    @property
    def _reach(self) -> Path:
        """The path clients and the daemon use for the socket. A unix socket
        path holds at most 99 bytes for dbus-daemon, and a share server's state directory
        can be deeper than that: then the socket (still in the state
        directory) is reached through a short symlink to that directory."""
        if len(os.fsencode(self.socket_path)) <= SUN_PATH_MAX:
            return self.socket_path
        digest = hashlib.sha256(os.fsencode(self.state_dir)).hexdigest()[:20]
        return SHORT_LINKS_DIR / digest / self.socket_path.name

    def _link_short_path(self) -> None:
        reach = self._reach
        if reach == self.socket_path:
            return
        SHORT_LINKS_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = reach.parent.with_name(f".{reach.parent.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        os.symlink(self.state_dir, tmp)
        os.replace(tmp, reach.parent)

    @property
    def pid_path(self) -> Path:
        return self.state_dir / "dbus.pid"

    @property
    def address(self) -> str:
        return f"unix:path={self._reach}"

    def _matches(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rpartition(")")[2].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        return state not in ("Z", "X") and f"--config-file={self.config_path}".encode() in argv

    def pid(self) -> int | None:
        if self._child is not None and self._child.poll() is not None:
            self._child = None  # reaped
        if self._child is not None and self._matches(self._child.pid):
            return self._child.pid
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid > 0 and self._matches(pid) else None

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self) -> None:
        """Start the daemon (if it is not running) and wait until it accepts
        connections on its socket."""
        if self.is_running():
            return
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._link_short_path()
        write_atomic(self.config_path, render_config(self._reach, self.pid_path))
        # A socket left by a daemon that died: the new one cannot bind over it.
        self.socket_path.unlink(missing_ok=True)
        self.pid_path.unlink(missing_ok=True)
        # In the foreground, as this process's child (like Ganesha); the pid
        # file the config names is how other processes find it.
        argv = [BINARY, f"--config-file={self.config_path}", "--nofork"]
        with open(self.state_dir / "dbus.out", "ab") as out:
            try:
                self._child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                               start_new_session=True)
            except OSError as e:
                raise ExportError(f"cannot start {BINARY}: {e}") from e
        deadline = time.monotonic() + self.timeout
        delay = 0.002
        while time.monotonic() < deadline:
            if self._child.poll() is not None:
                raise ExportError(f"{BINARY} exited with {self._child.returncode} at start; "
                                  f"see {self.state_dir / 'dbus.out'}")
            if self.pid() is not None and _accepts(self._reach):
                log.info("dbus-daemon for %s is up (pid %d)", self.state_dir, self._child.pid)
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        self.stop()
        raise ExportError(f"{BINARY} did not start within {self.timeout:g} s")

    def stop(self) -> None:
        """SIGTERM the daemon, wait, then SIGKILL that same process."""
        pid = self.pid()
        if pid is None:
            self.socket_path.unlink(missing_ok=True)
            return
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            return
        try:
            if not self._matches(pid):
                return
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    signal.pidfd_send_signal(fd, sig)
                except ProcessLookupError:
                    break
                if self._wait_exit(fd):
                    break
            else:
                raise ExportError(f"{BINARY} in {self.state_dir} survived SIGKILL")
        finally:
            os.close(fd)
        self.let_go()
        self.pid_path.unlink(missing_ok=True)
        self.socket_path.unlink(missing_ok=True)
        if self._reach != self.socket_path:
            self._reach.parent.unlink(missing_ok=True)

    def _wait_exit(self, fd: int) -> bool:
        if self._child is not None:
            try:
                self._child.wait(self.timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        return bool(select.select([fd], [], [], self.timeout)[0])

    def let_go(self) -> None:
        """Stop keeping the process as a child (see GaneshaServer.let_go)."""
        self._child = None


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(os.fspath(path))
            return True
        except OSError:
            return False
