"""Network allocation for a share's server.

The tasks own the records: the address a new share server gets is chosen
from the share network's IP pool and recorded here
(:class:`~shareflow.services.network_allocations.NetworkAllocations`), then
handed to the backend's network helper as a plain value.
"""

from __future__ import annotations

from taskflow import task

from shareflow.services import share_server_manager
from shareflow.services.network_allocations import allocation_id_for
from shareflow.tasks.server import allocations, release_allocation, share_network_lock


class AllocateNetwork(task.Task):
    """Reserve what the share's server needs on its share network (DHSS=true);
    with DHSS=false the backend's static server needs nothing and this
    returns an empty allocation.

    DHSS=true (``share_servers``): when the share network already has an
    active server on this backend, nothing is reserved (an empty allocation)
    and that server is kept from the unused cleanup for this share; that is
    decided under the share network's lock. Otherwise the lowest free address
    of the share network's provider network is recorded for the share (one
    per share: a re-run finds it) and handed to the network helper.
    Exhaustion of the network's addresses fails the step with a message
    saying so.

    With DHSS=false it changes nothing: its start is not written
    (``shareflow.engine.storage.unrecorded_start``) and it does not wait for
    the claim watch's first answer (``shareflow.engine.listeners.reads_only``).

    Revert: releases exactly the allocation this task returned - unless a
    share server that outlives this create holds it by then (another share
    uses the server this create made: the server gives it back when it goes).
    If execute itself failed there is no result: reserving is atomic (one
    row, inserted or not), but an address recorded before the network helper
    failed is found by its id (derived from the share's) and given back.
    """

    def __init__(self, share_servers: bool = False):
        self._share_servers = share_servers
        super().__init__(name="allocate_network", provides="allocation")
        self.unrecorded_start = self.reads_only = not share_servers

    def execute(self, runtime, backend, share_id, share_network_id=None):
        b = runtime.backend(backend)
        if not self._share_servers:
            return b.network.allocate(share_id, {})
        with share_network_lock(runtime, backend, share_network_id):
            if share_server_manager.for_backend(runtime, backend).reusable(share_id):
                return {}
        allocation = allocations(runtime).allocate(share_id, share_network_id)
        return b.network.allocate(share_id, allocation)

    def revert(self, runtime, backend, result, share_id=None, **kwargs):
        if not self._share_servers:
            if isinstance(result, dict) and result:
                runtime.backend(backend).network.release(result)
            return
        if isinstance(result, dict):
            allocation = result
        else:
            # Execute failed: what it may have recorded before the failure.
            allocation = allocations(runtime).get(allocation_id_for(share_id)) if share_id else None
        if not allocation:
            return
        if share_server_manager.for_backend(runtime, backend).holds(allocation):
            return
        release_allocation(runtime, backend, allocation)


class ReleaseNetwork(task.Task):
    """Give back the share server's allocation when the server goes away
    (nothing with DHSS=false, the one kind of backend whose delete flow has
    this step: so its start is not written,
    ``shareflow.engine.storage.unrecorded_start``).

    Revert: none - releasing is not undone; a failed delete is retried by a
    new delete request, and releasing twice is harmless.
    """

    unrecorded_start = True

    def __init__(self):
        super().__init__(name="release_network")

    def execute(self, runtime, backend, server):
        release_allocation(runtime, backend, server.get("allocation") or {})


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
            release_allocation(runtime, backend, allocation)
