"""Tasks of the delete_share_server job (an admin's delete, or the
conductors' cleanup of servers unused too long)."""

from __future__ import annotations

from taskflow import task

from shareflow.db import share_servers as servers_db
from shareflow.services import share_server_manager
from shareflow.tasks.server import share_network_lock

OPERATION = "delete_share_server"


class TeardownShareServer(task.Task):
    """Under the share network's lock: refuse if a share uses the server
    (Manila checks again when the job runs), else stop its Ganesha (by its
    own pid) and delete its veth pair, namespace and files. Returns the
    server with its allocation, for the next step to give back.

    Revert: none - a server half torn down is not put back; it ends ``error``
    (the begin step's revert) and deleting it again completes the teardown.
    """

    def __init__(self):
        super().__init__(name="teardown_share_server", provides="released_server")

    def execute(self, runtime, backend, resource_id):
        with runtime.db.read() as s:
            row = servers_db.get_any(s, resource_id)
            share_network_id = row.share_network_id if row is not None else None
        with share_network_lock(runtime, backend, share_network_id):
            return share_server_manager.for_backend(runtime, backend).take_down(resource_id)
