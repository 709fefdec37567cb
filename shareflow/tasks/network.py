"""Network allocation for a share's server."""

from __future__ import annotations

from taskflow import task

from shareflow.tasks.server import share_network_lock


class AllocateNetwork(task.Task):
    """Reserve what the share's server needs on its share network (DHSS=true);
    with DHSS=false the backend's static server needs nothing and this
    returns an empty allocation.

    DHSS=true (``share_servers``): when the share network already has an
    active server on this backend, nothing is reserved (an empty allocation)
    and that server is kept from the unused cleanup for this share; that is
    decided under the share network's lock. Exhaustion of the network's
    addresses fails the step with a message saying so.

    Revert: releases exactly the allocation this task returned - unless a
    share server that outlives this create holds it by then (another share
    uses the server this create made: the server gives it back when it goes);
    if execute itself failed there is no result and the helper's allocate is
    atomic (it reserved nothing), so there is nothing to release.
    """

    def __init__(self, share_servers: bool = False):
        self._share_servers = share_servers
        super().__init__(name="allocate_network", provides="allocation")

    def execute(self, runtime, backend, share_id, share_network_id=None):
        b = runtime.backend(backend)
        if self._share_servers:
            with share_network_lock(runtime, backend, share_network_id):
                if b.server.reusable(share_id):
                    return {}
        return b.network.allocate(share_id, share_network_id)

    def revert(self, runtime, backend, result, **kwargs):
        if isinstance(result, dict) and result:
            b = runtime.backend(backend)
            if self._share_servers and b.server.holds(result):
                return
            b.network.release(result)


class ReleaseNetwork(task.Task):
    """Give back the share server's allocation when the server goes away
    (nothing with DHSS=false).

    Revert: none - releasing is not undone; a failed delete is retried by a
    new delete request, and releasing twice is harmless.
    """

    def __init__(self):
        super().__init__(name="release_network")

    def execute(self, runtime, backend, server):
        runtime.backend(backend).network.release(server.get("allocation") or {})


class ReleaseServerNetwork(task.Task):
    """Give back the allocation of a share server that was deleted by the
    step before (``released_server``; {} when the server stays).

    Revert: none - releasing is not undone (it is retried by a new delete,
    and releasing twice is harmless: allocations go by id).
    """

    def __init__(self):
        super().__init__(name="release_network")

    def execute(self, runtime, backend, released_server):
        allocation = (released_server or {}).get("server_allocation") or {}
        if allocation.get("allocation_id"):
            runtime.backend(backend).network.release(allocation)
