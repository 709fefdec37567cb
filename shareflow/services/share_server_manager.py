"""The records of share servers (DHSS=true), kept around the backend's share
server helper, which only does the work on the host.

A server's row in ``share_servers`` says where it is in its life (creating ->
active -> deleting -> deleted, or error). Which shares use it is the shares'
``share_server_id``: :meth:`ShareServerManager.provide` sets it, under the
lock of the share network on the backend that the calling task holds
(Manila's ``share_manager_<subnet>`` lock), so that a server cannot be found
unused and torn down between being chosen for a share and being recorded as
its server.

A conductor may die anywhere, so every step can be run again: the server made
for a share's allocation has an id derived from that allocation, so a provide
run again finds (and finishes) the server it began; the row is written before
the helper makes anything on the host and marked deleted only after the
helper took everything down, so a row that is not deleted is how a half-made
or half-taken-down server is found again.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from shareflow.config import BackendConfig
from shareflow.db import networks as networks_db
from shareflow.db import share_servers as servers_db
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import NetworkAllocation, ProviderNetwork, ShareNetwork, ShareServer
from shareflow.domain import states
from shareflow.drivers.base import ServerBusy, ServerInUse, ShareServerHelper
from shareflow.exceptions import BackendError, NetworkError
from shareflow.services import security_services

log = logging.getLogger(__name__)

#: Namespace of share server ids derived from allocation ids.
SERVER_NAMESPACE = uuid.UUID("3d0f6c52-9a7e-4d0b-8f61-2b5c1e7a9d44")


def server_id_for(allocation_id: str) -> str:
    """The id of the server made for an allocation: a provide run again after
    its conductor died finds the server it began."""
    return str(uuid.uuid5(SERVER_NAMESPACE, str(allocation_id)))


def network_of(session, row: ShareServer) -> dict:
    """Where the server's address lives (what the helper is handed): network
    id, address, prefix length, gateway, bridge, MTU."""
    alloc = session.get(NetworkAllocation, row.allocation_id) if row.allocation_id else None
    return _network(row, session.get(ProviderNetwork, alloc.network_id) if alloc is not None else None)


def _network(row: ShareServer, net: ProviderNetwork | None) -> dict:
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


def _view(row: ShareServer, *, share_id: str | None, created: bool) -> dict:
    """What tasks keep of a server (small JSON): its own allocation goes by
    ``server_allocation`` - never ``allocation``, which names what a create's
    allocate step reserved."""
    return {
        "id": row.id,
        "share_id": share_id,
        "address": row.address,
        "share_network_id": row.share_network_id,
        "server_allocation": {"allocation_id": row.allocation_id, "address": row.address},
        "created": created,
    }


def _gone(row: ShareServer) -> dict:
    return {"id": row.id, "server_allocation": {"allocation_id": row.allocation_id, "address": row.address}}


class ShareServerManager:
    """The share servers of one DHSS=true backend: their records, and the
    backend's helper (``helper``) told what to make and take down. ``provide``,
    ``release``, ``reusable``, ``retire`` and ``take_down`` are called with the
    lock of the share network on the backend held (the tasks take it), so a
    server is never chosen for a share and found unused at the same time."""

    def __init__(self, db: Database, helper: ShareServerHelper, cfg: BackendConfig, *,
                 service_host: str, clock: Callable[[], datetime]):
        if cfg.share_servers is None:
            raise NetworkError(f"backend {cfg.name}: no share server settings")
        self.backend_name = cfg.name
        #: ``host@backend``: the key of this backend's server rows (migration
        #: 0008), so equally named backends of two hosts never share them.
        self.host = f"{service_host}@{cfg.name}"
        self._cfg = cfg.share_servers
        self._db = db
        self._helper = helper
        self._clock = clock

    def __repr__(self) -> str:
        return f"ShareServerManager({self.backend_name}, {self._helper!r})"

    # --- creating ---------------------------------------------------------------

    def provide(self, share_id: str, allocation: dict) -> dict:
        """The share network's active server on this backend, or the one made
        for ``allocation`` (made now if needed); the share is recorded as
        using it. Call with the share network's lock held. Raises
        :class:`ServerBusy` while another create is making the share
        network's server, so the caller can wait for it without the lock.
        A new server is refused (:class:`NetworkError`, with a user message)
        on a share network that has a security service: these servers cannot
        join an LDAP, Kerberos or AD domain."""
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
                    return _view(row, share_id=share_id, created=True)
            else:
                reuse = servers_db.find(s, sn_id, self.host, {states.SERVER_ACTIVE})
                if reuse is not None:
                    servers_db.bind_share(s, share_id, reuse.id, now=now)
                    log.info("share %s: reusing share server %s", share_id, reuse.id)
                    return _view(reuse, share_id=share_id, created=False)
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
                # Under the share network's row lock, which adding a security
                # service takes too: a server is made or a service added, not both.
                networks_db.lock_share_network(s, sn_id)
                refused = security_services.refusal(s, sn_id)
                if refused is not None:
                    raise NetworkError(f"share {share_id}: {refused}", user_message=refused)
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
            net = network_of(s, row)
        log.info("share %s: creating share server %s at %s", share_id, mine, net["address"])
        self._helper.provide(mine, net)
        with self._db.write() as s:
            row = servers_db.get_any(s, mine)
            if row.status != states.SERVER_ACTIVE and not servers_db.set_status(
                s, mine, states.SERVER_ACTIVE, now=self._clock(), expected={states.CREATING}
            ):
                raise NetworkError(f"share server {mine} left 'creating' while it was being created")
            servers_db.bind_share(s, share_id, mine, now=now)
            s.refresh(row)
            return _view(row, share_id=share_id, created=True)

    def server_for(self, share_id: str) -> dict:
        """The server the share uses; {} when it has none (a share whose
        create failed before, or was undone after, getting one)."""
        with self._db.read() as s:
            share = shares_db.get_any(s, share_id)
            sid = share.share_server_id if share is not None else None
            row = servers_db.get_any(s, sid) if sid else None
            if row is None or row.deleted_at is not None:
                return {}
            return _view(row, share_id=share_id, created=False)

    def reusable(self, share_id: str) -> str | None:
        """The id of the active server of the share's share network on this
        backend, kept from the unused-server cleanup for the share about to
        use it; None when there is none (then its network must be allocated).
        Call with the share network's lock."""
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

    # --- letting go -------------------------------------------------------------

    def _take_down(self, server_id: str) -> None:
        """The helper takes the server off the host, then its row is deleted
        (a conductor dying in between leaves the row ``deleting``: the step
        run again takes down what is left and deletes it)."""
        self._helper.take_down(server_id)
        with self._db.write() as s:
            servers_db.mark_deleted(s, server_id, now=self._clock())

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
            self._take_down(mine)

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
            gone = _gone(row)
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
        self._take_down(sid)
        return gone

    def take_down(self, server_id: str) -> dict:
        """The delete_share_server job's teardown: refused while a share uses
        the server (Manila checks again when it runs); returns the server's
        allocation for the caller to give back. The row is the caller's (the
        job's finish marks it deleted). Call with the share network's lock."""
        with self._db.read() as s:
            row = servers_db.get_any(s, server_id)
            if row is None:
                raise servers_db.not_found(server_id)
            gone = _gone(row)
            if row.deleted_at is not None:
                return gone
            if servers_db.shares_using(s, row.id):
                raise ServerInUse(row.id)
        self._helper.take_down(row.id)
        return gone

    # --- supervision (the conductor pool) ---------------------------------------

    def active_servers(self) -> list[str]:
        with self._db.read() as s:
            return [r.id for r in servers_db.live_for_backend(s, self.host, {states.SERVER_ACTIVE})]

    def _is_active(self, server_id: str) -> bool:
        with self._db.read() as s:
            row = servers_db.get_any(s, server_id)
            return row is not None and row.deleted_at is None and row.status == states.SERVER_ACTIVE

    def supervise(self, *, workers: int = 1) -> list[str]:
        """Restore every active server of this backend that is not running
        (asked again under each server's lock whether it is still active);
        returns the ids restored."""
        servers = {}
        with self._db.read() as s:
            for row, net in servers_db.live_with_networks(s, self.host, {states.SERVER_ACTIVE}):
                try:
                    servers[row.id] = _network(row, net)
                except NetworkError:
                    log.exception("share server %s cannot be restored", row.id)
        return self._helper.supervise(servers, workers=workers, wanted=self._is_active)

    def stop_all(self) -> None:
        """Take every live server of this backend off the host (the pool's
        shutdown), keeping their files; the next start's :meth:`supervise`
        brings them back with their exports, as after a reboot."""
        with self._db.read() as s:
            ids = [r.id for r in servers_db.live_for_backend(s, self.host)]
        self._helper.stop_all(ids)


def for_backend(runtime, backend: str) -> ShareServerManager:
    """The share servers of a DHSS=true backend of a conductor's runtime
    (cheap: tasks make one per call)."""
    b = runtime.backend(backend)
    return ShareServerManager(runtime.db, b.server, b.config, service_host=runtime.config.host,
                              clock=runtime.clock)
