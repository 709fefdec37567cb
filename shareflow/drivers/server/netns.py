"""Server helper for backends that handle share servers (DHSS=true).

A share server is:

* a network namespace ``sf-srv-<server id>``;
* a veth pair: ``sfv<12 hex digits of the id>`` in the host's namespace,
  attached to the provider network's Linux bridge, and ``eth0`` in the
  server's namespace holding the allocated address (default route via the
  network's gateway, if it has one); both ends with the network's MTU;
* its own NFS-Ganesha, bound to that address, started in the namespace with
  ``nsenter --net`` (never ``ip netns exec``: see ``shareflow.system.netns``),
  its files in ``<share_servers_dir>/<server id>/ganesha``, exporting only the
  server's shares (the export driver finds it through :meth:`ganesha`).

This helper only does the work on the host. Which servers exist, their status,
which shares use them and the address each holds are records its callers own
(``shareflow.services.share_server_manager``): they hand it a server's id and
its network as plain values, under the share network's lock where a server's
life is decided.

Every piece is idempotent and tolerates absence, because a conductor may die
anywhere: plumbing looks before it adds, so :meth:`provide` called again
completes a half-made server; teardown stops Ganesha by its own pid, deletes
what is there and ignores what is not.

The conductor pool keeps active servers running (:meth:`supervise`): a server
whose Ganesha died, or whose namespace is gone after a reboot, is put back as
it was, exports included (Ganesha re-reads the server's exports file at start).
A per-server file lock keeps that away from a teardown in progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from shareflow.config import BackendConfig, GaneshaConfig
from shareflow.drivers.base import ShareServerHelper
from shareflow.drivers.export.ganesha_server import GaneshaServer
from shareflow.exceptions import BackendError, NetworkError
from shareflow.system import filelock, netns
from shareflow.system.batch import run_batch

log = logging.getLogger(__name__)

NETNS_PREFIX = "sf-srv-"
VETH_PREFIX = "sfv"
#: The server's end of its veth pair, inside its namespace.
SERVER_IFNAME = "eth0"
GANESHA_DIR = "ganesha"
LOCKS_DIR = ".locks"


def check_server_id(value: object) -> str:
    """A server id in canonical UUID form (it becomes a namespace, interface and directory name)."""
    try:
        ok = isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        ok = False
    if not ok:
        raise NetworkError(f"invalid share server id {value!r}")
    return value  # type: ignore[return-value]


def netns_name(server_id: str) -> str:
    return NETNS_PREFIX + check_server_id(server_id)


def veth_name(server_id: str) -> str:
    """At most 15 characters (the kernel's limit): unique enough among the
    servers of one host (48 bits of a random id)."""
    return VETH_PREFIX + uuid.UUID(check_server_id(server_id)).hex[:12]


def mac_address(network_id: str, address: str) -> str:
    """The hardware address of a server's ``eth0``: derived from its network
    and address, so that whichever server holds an address - the same one put
    back after a reboot, or a new one after the old was deleted - clients'
    ARP caches stay right. (Locally administered, unicast.)"""
    digest = hashlib.sha256(f"{network_id}/{address}".encode()).digest()
    return ":".join(f"{x:02x}" for x in (0x02, *digest[:5]))


def _pids_in_netns(ns: str) -> list[int]:
    """Processes whose network namespace is ``ns`` (found by the namespace's inode)."""
    try:
        st = os.stat(netns.ns_path(ns))
    except FileNotFoundError:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ns_st = os.stat(f"/proc/{entry}/ns/net")
        except OSError:
            continue
        if (ns_st.st_ino, ns_st.st_dev) == (st.st_ino, st.st_dev):
            pids.append(int(entry))
    return pids



class NetnsServerHelper(ShareServerHelper):
    def __init__(self, cfg: BackendConfig, *, timeout: float):
        if cfg.share_servers is None:
            raise NetworkError(f"backend {cfg.name}: no share server settings")
        self.backend_name = cfg.name
        self._cfg = cfg.share_servers
        self._dir = Path(cfg.share_servers.state_dir).resolve()
        self._timeout = timeout
        # One GaneshaServer object per server, so that a process this one
        # started is also reaped by it.
        self._ganeshas: dict[str, GaneshaServer] = {}
        self._ganeshas_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NetnsServerHelper({self.backend_name}, {self._dir})"

    # --- names, files -----------------------------------------------------------

    @classmethod
    def backend_details(cls, server_id: str) -> dict[str, str]:
        return {"netns": netns_name(server_id), "veth": veth_name(server_id), "nfs_server": "nfs-ganesha"}

    def server_dir(self, server_id: str) -> Path:
        return self._dir / check_server_id(server_id)

    def _ganesha(self, server_id: str, address: str | None) -> GaneshaServer:
        """``address`` None: only to stop it (any address will do for that)."""
        with self._ganeshas_lock:
            gs = self._ganeshas.get(server_id)
            if gs is None or (address is not None and gs.address != address):
                gs = GaneshaServer(
                    GaneshaConfig(address=address or "0.0.0.0", port=self._cfg.port,
                                  state_dir=self.server_dir(server_id) / GANESHA_DIR,
                                  netns=netns_name(server_id), managed=True,
                                  mount_table=self._cfg.mount_table),
                    timeout=self._timeout,
                )
                self._ganeshas[server_id] = gs
            return gs

    def _forget(self, server_id: str) -> None:
        with self._ganeshas_lock:
            self._ganeshas.pop(server_id, None)

    @contextlib.contextmanager
    def _server_lock(self, server_id: str, *, remove: bool = False):
        """Keeps the pool's restore and a teardown of one server apart."""
        locks = self._dir / LOCKS_DIR
        locks.mkdir(parents=True, exist_ok=True)
        with filelock.locked(locks / f"{check_server_id(server_id)}.lock", timeout=self._timeout,
                             error=NetworkError, remove=remove):
            yield

    def ganesha(self, server: dict) -> GaneshaServer | None:
        """The NFS-Ganesha of a share server the export driver was handed (by
        the server's id, validated, at the server's address); None when that
        server is not on this host (any more): never made, or taken down -
        its files are what :meth:`provide` makes first and :meth:`take_down`
        removes last."""
        sid = server.get("id") if isinstance(server, dict) else None
        if not sid:
            return None
        check_server_id(sid)
        address = server.get("address")
        if not address or not self.server_dir(sid).is_dir():
            return None
        return self._ganesha(sid, address)

    # --- plumbing ---------------------------------------------------------------

    def _plumb(self, server_id: str, net: dict) -> None:
        """Namespace, veth pair on the bridge, address and route. Each piece
        looks before it adds, so this completes a half-made server."""
        ns, veth, bridge = netns_name(server_id), veth_name(server_id), netns.ifname(net["bridge"])
        if not netns.link_exists(bridge):
            raise NetworkError(
                f"bridge {bridge} of the share server's provider network does not exist on this host",
                user_message="the provider network's bridge does not exist on the storage host",
            )
        netns.create(ns, timeout=self._timeout)
        if not netns.link_exists(veth):
            # The server's end left over from a pair whose host end is gone.
            netns.delete_link(SERVER_IFNAME, ns, timeout=self._timeout)
            netns.add_veth(veth, None, SERVER_IFNAME, ns, timeout=self._timeout)
        netns.set_mtu(veth, net["mtu"], timeout=self._timeout)
        netns.set_master(veth, bridge, timeout=self._timeout)
        netns.set_up(veth, timeout=self._timeout)
        netns.set_mtu(SERVER_IFNAME, net["mtu"], ns, timeout=self._timeout)
        netns.set_mac(SERVER_IFNAME, mac_address(net["network_id"], net["address"]), ns, timeout=self._timeout)
        netns.add_address(SERVER_IFNAME, f"{net['address']}/{net['prefixlen']}", ns, timeout=self._timeout)
        netns.set_up(SERVER_IFNAME, ns, timeout=self._timeout)
        if net.get("gateway"):
            netns.set_default_route(net["gateway"], ns, timeout=self._timeout)

    def _start(self, server_id: str, net: dict, *, supervised: bool = False) -> None:
        """``supervised``: this process keeps the Ganesha it starts as its
        child (the pool); otherwise (a conductor, which only makes the server)
        it lets it go (:meth:`GaneshaServer.let_go`)."""
        self._plumb(server_id, net)
        gs = self._ganesha(server_id, net["address"])
        gs.start()
        if not supervised:
            gs.let_go()

    def _take_off_host(self, server_id: str) -> None:
        """Stop the server's Ganesha (by its own pid), delete its veth pair and
        namespace; its files (exports) stay. Absent pieces: nothing to do.
        Call with the server's lock."""
        ns, veth = netns_name(server_id), veth_name(server_id)
        self._ganesha(server_id, None).stop()
        # Anything else still in the namespace is ours too (a Ganesha killed
        # before it wrote its pid file, say): it would keep the namespace,
        # and the address, alive.
        for pid in _pids_in_netns(ns):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                fd = os.pidfd_open(pid)
                try:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                finally:
                    os.close(fd)
        netns.delete_link(veth, timeout=self._timeout)  # takes eth0 with it
        netns.delete(ns, timeout=self._timeout)

    def is_running(self, server_id: str) -> bool:
        """Whether the server's Ganesha runs (by its pid file)."""
        return self.server_dir(server_id).is_dir() and self._ganesha(server_id, None).is_running()

    # --- ShareServerHelper --------------------------------------------------------

    def provide(self, server_id: str, network: dict) -> dict:
        """Namespace, veth pair, address, route and a running Ganesha for the
        server at ``network["address"]``; what is there already is kept, so
        this completes a server half made by a conductor that died. The
        Ganesha is let go: the conductor pool supervises it from then on."""
        check_server_id(server_id)
        log.info("creating share server %s at %s", server_id, network["address"])
        self._start(server_id, network)
        return self.backend_details(server_id)

    def take_down(self, server_id: str) -> None:
        """Take the server off the host (Ganesha, veth pair, namespace) and
        delete its files."""
        with self._server_lock(server_id, remove=True):
            self._take_off_host(server_id)
            shutil.rmtree(self.server_dir(server_id), ignore_errors=True)
            self._forget(server_id)
        log.info("share server %s torn down", server_id)

    # --- supervision (the conductor pool) ---------------------------------------

    def restore(self, server_id: str, network: dict, *,
                wanted: Callable[[str], bool] | None = None) -> bool:
        with self._server_lock(server_id):
            if wanted is not None and not wanted(server_id):
                return False
            if self._ganesha(server_id, network["address"]).is_running() and netns.exists(netns_name(server_id)):
                return False
            log.warning("share server %s is not running; restoring it with its exports", server_id)
            self._start(server_id, network, supervised=True)
            return True

    def supervise(self, servers: Mapping[str, dict], *, workers: int = 1,
                  wanted: Callable[[str], bool] | None = None) -> list[str]:
        """One failing does not stop the others. ``workers``: how many are
        restored at once (the pool's start, when every server is down, uses
        several; progress is logged). Servers this process started that are
        not in ``servers`` any more are forgotten once they stopped."""
        active = list(servers)
        with self._ganeshas_lock:
            stale = [(sid, gs) for sid, gs in self._ganeshas.items() if sid not in servers]
        for sid, gs in stale:
            if not gs.is_running():  # also reaps it, if it was our child
                self._forget(sid)
        with self._ganeshas_lock:
            known = dict(self._ganeshas)
        down = [sid for sid in active if not (sid in known and known[sid].is_running())]
        if not down:
            return []
        restored = []

        def restore_one(sid: str) -> None:
            if self.restore(sid, servers[sid], wanted=wanted):
                restored.append(sid)  # list.append is atomic

        run_batch(down, restore_one, workers=workers, label=f"share servers of {self.backend_name}",
                  what="checked", log=log)
        return [sid for sid in down if sid in restored]

    def stop_all(self, server_ids: Iterable[str]) -> None:
        for sid in server_ids:
            try:
                with self._server_lock(sid):
                    self._take_off_host(sid)
            except BackendError:
                log.exception("could not stop share server %s", sid)
