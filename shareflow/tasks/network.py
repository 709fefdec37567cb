"""Network allocation for a share's server."""

from __future__ import annotations

from taskflow import task


class AllocateNetwork(task.Task):
    """Reserve what the share's server needs on its share network (DHSS=true);
    with DHSS=false the backend's static server needs nothing and this
    returns an empty allocation.

    Revert: releases exactly the allocation this task returned; if execute
    itself failed there is no result and the helper's allocate is atomic
    (it reserved nothing), so there is nothing to release.
    """

    def __init__(self):
        super().__init__(name="allocate_network", provides="allocation")

    def execute(self, runtime, backend, share_id, share_network_id=None):
        return runtime.backend(backend).network.allocate(share_id, share_network_id)

    def revert(self, runtime, backend, result, **kwargs):
        if isinstance(result, dict):
            runtime.backend(backend).network.release(result)


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
