"""Share servers: which NFS server a share is exported from.

With ``share_servers=True`` (backends with driver_handles_share_servers =
true) the tasks work on real share servers, under the lock of the share
network on the backend (:func:`share_network_lock`, Manila's
``share_manager_<subnet>`` lock): finding or making a server for a share,
letting a share go from its server and deleting a server are serialised per
share network, so concurrent creates on one share network make one server,
and a server is never torn down while a create is choosing it. The records
(which server, which shares use it) are the tasks' through
:class:`~shareflow.services.share_server_manager.ShareServerManager`; the
backend's server helper only makes and takes down servers on the host.
"""

from __future__ import annotations

import time

from taskflow import task

from shareflow.drivers.base import ServerBusy
from shareflow.services import share_server_manager
from shareflow.services.network_allocations import NetworkAllocations

#: While another create makes the share network's server, a create asks again this often.
BUSY_POLL = 0.05


def share_network_lock(runtime, backend: str, share_network_id: str | None):
    """The ZooKeeper lock of a share network on one backend (a kazoo lock: a
    holder that dies loses it when its session expires)."""
    return runtime.locks.hold("share_network", f"{share_network_id or 'none'}@{backend}")


def allocations(runtime) -> NetworkAllocations:
    """The share networks' IP pools, as the tasks record what they reserve."""
    return NetworkAllocations(runtime.db, clock=runtime.clock)


def release_allocation(runtime, backend: str, allocation: dict) -> None:
    """Undo the network helper's part of an allocation, then give its address
    back to the pool (by allocation id: twice is harmless)."""
    runtime.backend(backend).network.release(allocation)
    if allocation.get("allocation_id"):
        allocations(runtime).release(allocation)


class ProvideShareServer(task.Task):
    """Reuse the share network's active server on this backend or create one
    (DHSS=true); with DHSS=false, the backend's static server.

    DHSS=true: under the share network's lock; while another create is
    making the share network's server, it waits (lock released) and asks
    again, then uses that server. The share is recorded as using the server.
    An address the network step reserved for a new server that was then not
    needed (another create made the server first) is given back here, since
    nothing else would.

    With DHSS=false it creates nothing: its start is not written
    (``shareflow.engine.storage.unrecorded_start``) and it does not wait for
    the claim watch's first answer (``shareflow.engine.listeners.reads_only``).

    Revert: releases the server only if this task created it - a reused
    server keeps serving its other shares. DHSS=true: the share stops using
    its server, and the server made for this create's allocation is torn
    down (Ganesha, namespace, veth) if no share uses it - also after an
    execute that failed half-way.
    """

    def __init__(self, share_servers: bool = False):
        self._share_servers = share_servers
        super().__init__(name="provide_share_server", provides="server")
        self.unrecorded_start = self.reads_only = not share_servers

    def execute(self, runtime, backend, share_id, allocation, share_network_id=None):
        b = runtime.backend(backend)
        if not self._share_servers:
            return b.server.provide(share_id, allocation)
        servers = share_server_manager.for_backend(runtime, backend)
        deadline = time.monotonic() + runtime.config.conductor.step_timeout
        while True:
            with share_network_lock(runtime, backend, share_network_id):
                try:
                    server = servers.provide(share_id, allocation)
                    break
                except ServerBusy:
                    if time.monotonic() >= deadline:
                        raise
            time.sleep(BUSY_POLL)
        if allocation and not server.get("created"):
            release_allocation(runtime, backend, allocation)
        return server

    def revert(self, runtime, backend, share_id, result, allocation=None, share_network_id=None, **kwargs):
        if not self._share_servers:
            if isinstance(result, dict) and result.get("created"):
                runtime.backend(backend).server.release(result)
            return
        used = result.get("id") if isinstance(result, dict) else None
        with share_network_lock(runtime, backend, share_network_id):
            share_server_manager.for_backend(runtime, backend).release(
                {"id": used, "share_id": share_id, "allocation": allocation or {}})


class FindShareServer(task.Task):
    """Look up the server a share is exported from, creating nothing (DHSS=true:
    {} for a share that has none, and the steps after it have nothing to do).
    It only reads: its start is not written
    (``shareflow.engine.storage.unrecorded_start``), nor does it wait for
    the claim watch's first answer (``shareflow.engine.listeners.reads_only``).

    Revert: nothing to undo (no side effect).
    """

    unrecorded_start = True
    reads_only = True

    def __init__(self):
        super().__init__(name="find_share_server", provides="server")

    def execute(self, runtime, backend, share_id):
        b = runtime.backend(backend)
        if b.config.driver_handles_share_servers:
            return share_server_manager.for_backend(runtime, backend).server_for(share_id)
        return b.server.server_for(share_id)


class ReleaseShareServer(task.Task):
    """Let the server go when its last share is gone (DHSS=true, when so
    configured); nothing with DHSS=false.

    DHSS=true (``share_servers``): under the share network's lock, the share
    leaves its server; a server left without shares is deleted now when
    ``delete_share_server_with_last_share`` is set (Ganesha, namespace, veth;
    its row deleted; its allocation handed to the next step), otherwise its
    unused clock starts and the conductors' housekeeping deletes it once
    unused for ``unused_share_server_cleanup_interval``.

    With DHSS=false it releases nothing: its start is not written
    (``shareflow.engine.storage.unrecorded_start``).

    Revert: none - a released server is not brought back; a new share
    creates or reuses one.
    """

    def __init__(self, share_servers: bool = False):
        self._share_servers = share_servers
        super().__init__(name="release_share_server", provides="released_server" if share_servers else None)
        self.unrecorded_start = not share_servers

    def execute(self, runtime, backend, server, share_id=None):
        b = runtime.backend(backend)
        if not self._share_servers:
            if server.get("created"):
                b.server.release(server)
            return None
        if not server.get("id"):
            return {}
        with share_network_lock(runtime, backend, server.get("share_network_id")):
            return share_server_manager.for_backend(runtime, backend).retire(share_id, server)
