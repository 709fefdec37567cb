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

Its row in ``share_servers`` says where it is in its life (creating -> active
-> deleting -> deleted, or error). Which shares use it is the shares'
``share_server_id``: :meth:`provide` sets it, under the lock of the share
network on this backend that the calling task holds (Manila's
``share_manager_<subnet>`` lock), so that a server cannot be found unused and
torn down between being chosen for a share and being recorded as its server.

Every piece is idempotent and tolerates absence, because a conductor may die
anywhere: the server made for a share's allocation has an id derived from that
allocation, so a provide run again finds (and finishes) the server it began;
plumbing looks before it adds; teardown stops Ganesha by its own pid, deletes
what is there and ignores what is not.

The conductor pool keeps active servers running (:meth:`supervise`): a server
whose Ganesha died, or whose namespace is gone after a reboot, is put back as
it was, exports included (Ganesha re-reads the server's exports file at start).
A per-server file lock keeps that away from a teardown in progress.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import os
import shutil
import signal
import threading
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from shareflow.config import BackendConfig, GaneshaConfig
from shareflow.db import networks as networks_db
from shareflow.db import share_servers as servers_db
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import NetworkAllocation, ProviderNetwork, ShareNetwork, ShareServer
from shareflow.domain import states
from shareflow.drivers.base import ShareServerHelper
from shareflow.drivers.export.ganesha_server import GaneshaServer
from shareflow.exceptions import BackendError, NetworkError
from shareflow.system import filelock, netns
from shareflow.system.batch import run_batch

log = logging.getLogger(__name__)

#: Namespace of share server ids derived from allocation ids.
SERVER_NAMESPACE = uuid.UUID("3d0f6c52-9a7e-4d0b-8f61-2b5c1e7a9d44")
NETNS_PREFIX = "sf-srv-"
VETH_PREFIX = "sfv"
#: The server's end of its veth pair, inside its namespace.
SERVER_IFNAME = "eth0"
GANESHA_DIR = "ganesha"
LOCKS_DIR = ".locks"


class ServerBusy(BackendError):
    """Another create is making the share network's server on this backend;
    the caller waits (without the share network's lock) and asks again."""


class ServerInUse(BackendError):
    """Manila's ShareServerInUse."""

    def __init__(self, server_id: str):
        super().__init__(f"Share server {server_id} is in use.",
                         user_message=f"Share server {server_id} is in use.")


def check_server_id(value: object) -> str:
    """A server id in canonical UUID form (it becomes a namespace, interface and directory name)."""
    try:
        ok = isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        ok = False
    if not ok:
        raise NetworkError(f"invalid share server id {value!r}")
    return value  # type: ignore[return-value]


def server_id_for(allocation_id: str) -> str:
    """The id of the server made for an allocation: a provide run again after
    its conductor died finds the server it began."""
    return str(uuid.uuid5(SERVER_NAMESPACE, str(allocation_id)))


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
    def __init__(self, cfg: BackendConfig, db: Database, *, service_host: str,
                 clock: Callable[[], datetime], timeout: float):
        if cfg.share_servers is None:
            raise NetworkError(f"backend {cfg.name}: no share server settings")
        self.backend_name = cfg.name
        self.host = f"{service_host}@{cfg.name}"
        self._cfg = cfg.share_servers
        self._dir = Path(cfg.share_servers.state_dir).resolve()
        self._db = db
        self._clock = clock
        self._timeout = timeout
        # One GaneshaServer object per server, so that a process this one
        # started is also reaped by it.
        self._ganeshas: dict[str, GaneshaServer] = {}
        self._ganeshas_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"NetnsServerHelper({self.backend_name}, {self._dir})"

    # --- names, files, views ----------------------------------------------------

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
                                  netns=netns_name(server_id), managed=True),
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

    @staticmethod
    def _view(row: ShareServer, *, share_id: str | None, created: bool) -> dict:
        """What tasks keep of a server (small JSON): its own allocation goes by
        ``server_allocation`` - never ``allocation``, which names what a
        create's allocate step reserved."""
        return {
            "id": row.id,
            "share_id": share_id,
            "address": row.address,
            "netns": netns_name(row.id),
            "share_network_id": row.share_network_id,
            "server_allocation": {"allocation_id": row.allocation_id, "address": row.address},
            "created": created,
        }

    def ganesha(self, server: dict) -> GaneshaServer | None:
        """The NFS-Ganesha of a share server the export driver was handed
        (resolved from the database by the server's id, never from the rest of
        the dict); None when that server does not exist (any more)."""
        sid = server.get("id") if isinstance(server, dict) else None
        if not sid:
            return None
        check_server_id(sid)
        with self._db.read() as s:
            row = servers_db.get_any(s, sid)
            if row is None or row.deleted_at is not None or row.backend != self.host or not row.address:
                return None
            address = row.address
        return self._ganesha(sid, address)

    # --- plumbing ---------------------------------------------------------------

    @staticmethod
    def _network_of(session, row: ShareServer) -> dict:
        """Where the server's address lives: bridge, prefix, gateway, MTU."""
        alloc = session.get(NetworkAllocation, row.allocation_id) if row.allocation_id else None
        net = session.get(ProviderNetwork, alloc.network_id) if alloc is not None else None
        if net is None:
            raise NetworkError(
                f"share server {row.id}: its network allocation {row.allocation_id} is gone",
                user_message="the share server's network allocation is gone",
            )
        return {
            "network_id": net.id,
            "address": row.address,
            "prefixlen": ipaddress.ip_network(net.cidr, strict=False).prefixlen,
            "gateway": net.gateway,
            "bridge": net.bridge,
            "mtu": int(net.mtu),
        }

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

    def teardown(self, server_id: str) -> None:
        """Take the server off the host (Ganesha, veth pair, namespace) and
        delete its files. Absent pieces: nothing to do. Does not touch the
        server's row or its allocation."""
        with self._server_lock(server_id, remove=True):
            self._take_off_host(server_id)
            shutil.rmtree(self.server_dir(server_id), ignore_errors=True)
            self._forget(server_id)
        log.info("share server %s torn down", server_id)

    def is_running(self, server: dict) -> bool:
        gs = self.ganesha(server)
        return gs is not None and gs.is_running()

    # --- ServerHelper -----------------------------------------------------------

    def provide(self, share_id: str, allocation: dict) -> dict:
        """The share network's active server on this backend, or the one made
        for ``allocation`` (made now if needed); the share is recorded as
        using it. Call with the share network's lock held. Raises
        :class:`ServerBusy` while another create is making the share
        network's server, so the caller can wait for it without the lock."""
        allocation = allocation or {}
        mine = server_id_for(allocation["allocation_id"]) if allocation.get("allocation_id") else None
        now = self._clock()
        with self._db.write() as s:
            share = shares_db.get_any(s, share_id)
            if share is None or share.deleted_at is not None:
                raise BackendError(f"share {share_id} is gone", user_message="the share is gone")
            sn_id = share.share_network_id
            if not sn_id:
                raise NetworkError(f"share {share_id} has no share network",
                                   user_message="A share network is required for a share server.")
            row = servers_db.get_any(s, mine) if mine else None
            if row is not None:
                if row.deleted_at is not None or row.status not in (states.CREATING, states.SERVER_ACTIVE):
                    raise NetworkError(f"share server {mine} made for share {share_id} is {row.status}",
                                       user_message=f"the share server made for the share is {row.status}")
                if row.status == states.SERVER_ACTIVE:
                    servers_db.bind_share(s, share_id, row.id, now=now)
                    return self._view(row, share_id=share_id, created=True)
            else:
                reuse = servers_db.find(s, sn_id, self.host, {states.SERVER_ACTIVE})
                if reuse is not None:
                    servers_db.bind_share(s, share_id, reuse.id, now=now)
                    log.info("share %s: reusing share server %s", share_id, reuse.id)
                    return self._view(reuse, share_id=share_id, created=False)
                busy = servers_db.find(s, sn_id, self.host, {states.CREATING})
                if busy is not None:
                    raise ServerBusy(f"share server {busy.id} of share network {sn_id} is being created")
                if mine is None:
                    raise NetworkError(
                        f"share {share_id}: the share server of share network {sn_id} went away "
                        "after the network step found it",
                        user_message="The share network's share server was deleted while the share "
                                     "was being created; try again.",
                    )
                sn = s.get(ShareNetwork, sn_id)
                subnet = networks_db.default_subnet(sn) if sn is not None else None
                row = servers_db.create(
                    s, now=now, id=mine, share_network_id=sn_id,
                    share_network_subnet_id=subnet.id if subnet is not None else "",
                    project_id=share.project_id, backend=self.host, host=self.host,
                    address=allocation["address"], allocation_id=allocation["allocation_id"],
                    is_auto_deletable=True,
                )
                networks_db.bind_allocation(s, allocation["allocation_id"], mine)
            net = self._network_of(s, row)
        log.info("share %s: creating share server %s at %s", share_id, mine, net["address"])
        self._start(mine, net)
        with self._db.write() as s:
            row = servers_db.get_any(s, mine)
            if row.status != states.SERVER_ACTIVE and not servers_db.set_status(
                s, mine, states.SERVER_ACTIVE, now=self._clock(), expected={states.CREATING}
            ):
                raise NetworkError(f"share server {mine} left 'creating' while it was being created")
            servers_db.bind_share(s, share_id, mine, now=now)
            s.refresh(row)
            return self._view(row, share_id=share_id, created=True)

    def server_for(self, share_id: str) -> dict:
        """The server the share uses; {} when it has none (a share whose
        create failed before, or was undone after, getting one)."""
        with self._db.read() as s:
            share = shares_db.get_any(s, share_id)
            sid = share.share_server_id if share is not None else None
            row = servers_db.get_any(s, sid) if sid else None
            if row is None or row.deleted_at is not None:
                return {}
            return self._view(row, share_id=share_id, created=False)

    def reusable(self, share_id: str) -> str | None:
        """The id of the active server of the share's share network on this
        backend, kept from the unused-server cleanup for the share about to
        use it; None when there is none. Call with the share network's lock."""
        with self._db.write() as s:
            share = shares_db.get_any(s, share_id)
            if share is None or not share.share_network_id:
                return None
            row = servers_db.find(s, share.share_network_id, self.host, {states.SERVER_ACTIVE})
            if row is None:
                return None
            servers_db.keep(s, row.id)
            return row.id

    def holds(self, allocation: dict) -> bool:
        """Whether a live server holds ``allocation`` (it is then the server's
        to give back when it goes, not the create's that reserved it)."""
        aid = (allocation or {}).get("allocation_id")
        if not aid:
            return False
        with self._db.read() as s:
            row = servers_db.get_any(s, server_id_for(aid))
            return row is not None and row.deleted_at is None

    def release(self, server: dict) -> None:
        """Undo :meth:`provide` for ``server["share_id"]``, whether it finished
        or failed half-way: the share no longer uses a server, and the server
        made for ``server["allocation"]`` is torn down when no share uses it.
        A server another create made keeps serving its other shares. Call with
        the share network's lock."""
        share_id = server.get("share_id")
        allocation = server.get("allocation") or {}
        mine = server_id_for(allocation["allocation_id"]) if allocation.get("allocation_id") else None
        used = server.get("id")
        now = self._clock()
        doomed = False
        with self._db.write() as s:
            if share_id:
                servers_db.unbind_share(s, share_id, [used, mine])
            if used and used != mine and servers_db.get_any(s, used) is not None:
                if servers_db.shares_using(s, used) == 0:
                    servers_db.note_unused(s, used, now=now)
            row = servers_db.get_any(s, mine) if mine else None
            if row is not None and row.deleted_at is None and servers_db.shares_using(s, mine) == 0:
                if row.status in servers_db.DELETABLE:
                    servers_db.set_status(s, mine, states.DELETING, now=now)
                doomed = True
        if doomed:
            self.teardown(mine)
            with self._db.write() as s:
                servers_db.mark_deleted(s, mine, now=self._clock())

    def retire(self, share_id: str, server: dict) -> dict:
        """The share (being deleted) leaves its server. If no other share uses
        it: with ``delete_share_server_with_last_share`` (and the server
        auto-deletable) it is torn down and its row deleted, and its
        allocation is returned for the caller to give back; otherwise its
        unused clock starts (the conductors delete it once unused long enough).
        Returns {} when the server stays. Call with the share network's lock."""
        sid = (server or {}).get("id")
        if not sid:
            return {}
        now = self._clock()
        with self._db.write() as s:
            row = servers_db.get_any(s, sid)
            if row is None:
                return {}
            gone = {"id": sid, "server_allocation": {"allocation_id": row.allocation_id, "address": row.address}}
            if row.deleted_at is not None:
                return gone  # torn down by this step before its conductor died
            if servers_db.shares_using(s, sid, excluding=share_id):
                return {}
            deletable = self._cfg.delete_with_last_share and row.is_auto_deletable
            if not deletable or row.status not in (*servers_db.DELETABLE, states.DELETING):
                servers_db.note_unused(s, sid, now=now)
                return {}
            if row.status != states.DELETING:
                servers_db.set_status(s, sid, states.DELETING, now=now)
        log.info("share server %s: deleted with its last share %s", sid, share_id)
        self.teardown(sid)
        with self._db.write() as s:
            servers_db.mark_deleted(s, sid, now=self._clock())
        return gone

    def take_down(self, server_id: str) -> dict:
        """The delete_share_server job's teardown: refused while a share uses
        the server (Manila checks again when it runs); returns the server's
        allocation for the caller to give back. Call with the share network's lock."""
        with self._db.read() as s:
            row = servers_db.get_any(s, check_server_id(server_id))
            if row is None:
                raise servers_db.not_found(server_id)
            gone = {"id": row.id, "server_allocation": {"allocation_id": row.allocation_id, "address": row.address}}
            if row.deleted_at is not None:
                return gone
            if servers_db.shares_using(s, row.id):
                raise ServerInUse(row.id)
        self.teardown(row.id)
        return gone

    # --- supervision (the conductor pool) ---------------------------------------

    def restore(self, server_id: str) -> bool:
        """Bring an active server back as it was: namespace, veth, address,
        route, and its Ganesha with all its exports. Does nothing (False) when
        the server is not active or is running already."""
        with self._server_lock(server_id):
            with self._db.read() as s:
                row = servers_db.get_any(s, server_id)
                if row is None or row.deleted_at is not None or row.status != states.SERVER_ACTIVE:
                    return False
                net = self._network_of(s, row)
            if self._ganesha(server_id, net["address"]).is_running() and netns.exists(netns_name(server_id)):
                return False
            log.warning("share server %s is not running; restoring it with its exports", server_id)
            self._start(server_id, net, supervised=True)
            return True

    def active_servers(self) -> list[str]:
        with self._db.read() as s:
            return [r.id for r in servers_db.live_for_backend(s, self.host, {states.SERVER_ACTIVE})]

    def supervise(self, *, workers: int = 1) -> list[str]:
        """Restore every active server of this backend that is not running;
        returns the ids restored. One failing does not stop the others.
        ``workers``: how many are restored at once (the pool's start, when
        every server is down, uses several; progress is logged)."""
        active = self.active_servers()
        with self._ganeshas_lock:
            stale = [(sid, gs) for sid, gs in self._ganeshas.items() if sid not in active]
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
            if self.restore(sid):
                restored.append(sid)  # list.append is atomic

        run_batch(down, restore_one, workers=workers, label=f"share servers of {self.backend_name}",
                  what="checked", log=log)
        return [sid for sid in down if sid in restored]

    def stop_all(self) -> None:
        """Take every live server of this backend off the host (the pool's
        shutdown: Ganesha, veth pair, namespace), keeping their files; the
        next start's :meth:`supervise` brings them back with their exports,
        as after a reboot."""
        with self._db.read() as s:
            ids = [r.id for r in servers_db.live_for_backend(s, self.host)]
        for sid in ids:
            try:
                with self._server_lock(sid):
                    self._take_off_host(sid)
            except BackendError:
                log.exception("could not stop share server %s", sid)
