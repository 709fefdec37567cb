"""Share servers: which NFS server a share is exported from."""

from __future__ import annotations

from taskflow import task


class ProvideShareServer(task.Task):
    """Reuse the share network's active server on this backend or create one
    (DHSS=true); with DHSS=false, the backend's static server.

    Revert: releases the server only if this task created it (``created`` in
    its result) - a reused server keeps serving its other shares.
    """

    def __init__(self):
        super().__init__(name="provide_share_server", provides="server")

    def execute(self, runtime, backend, share_id, allocation):
        return runtime.backend(backend).server.provide(share_id, allocation)

    def revert(self, runtime, backend, result, **kwargs):
        if isinstance(result, dict) and result.get("created"):
            runtime.backend(backend).server.release(result)


class FindShareServer(task.Task):
    """Look up the server a share is exported from, creating nothing.

    Revert: nothing to undo (no side effect).
    """

    def __init__(self):
        super().__init__(name="find_share_server", provides="server")

    def execute(self, runtime, backend, share_id):
        return runtime.backend(backend).server.server_for(share_id)


class ReleaseShareServer(task.Task):
    """Let the server go when its last share is gone (DHSS=true, when so
    configured); nothing with DHSS=false.

    Revert: none - a released server is not brought back; a new share
    creates or reuses one.
    """

    def __init__(self):
        super().__init__(name="release_share_server")

    def execute(self, runtime, backend, server):
        if server.get("created"):
            runtime.backend(backend).server.release(server)
