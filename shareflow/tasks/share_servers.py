"""Tasks of the delete_share_server job (an admin's delete, or the
conductors' cleanup of servers unused too long)."""

from __future__ import annotations

from taskflow import task

from shareflow.db import share_servers as servers_db
from shareflow.domain import states
from shareflow.engine.outcomes import first_failure, user_reason
from shareflow.exceptions import ResourceStateChanged
from shareflow.tasks.lifecycle import BEGIN, FINISH
from shareflow.tasks.server import share_network_lock

OPERATION = "delete_share_server"


class BeginDeleteShareServer(task.Task):
    """Check that the server is still ``deleting`` (the API or the cleanup
    set it before posting): anything else means it moved on without this job
    (an admin reset it), and the job must not touch it.

    Revert: marks the server ``error`` (from ``deleting``), so an admin can
    delete it again; does nothing when this task itself failed.
    """

    def __init__(self):
        super().__init__(name=BEGIN)

    def execute(self, runtime, resource_id):
        with runtime.db.read() as s:
            row = servers_db.get_any(s, resource_id)
            status = "gone" if row is None else ("deleted" if row.deleted_at else row.status)
            if status != states.DELETING:
                raise ResourceStateChanged(
                    f"share server {resource_id} is {status}, not deleting",
                    user_message=f"the share server changed status to {status} before the job ran",
                )

    def revert(self, runtime, job_id, flow_failures, **kwargs):
        failed = first_failure(flow_failures, ignore=BEGIN)
        if failed is None:
            return
        step, failure = failed
        runtime.recorder.resource_failed(job_id, step, user_reason(failure), failure)


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
            return runtime.backend(backend).server.take_down(resource_id)


class FinishDeleteShareServer(task.Task):
    """Mark the server deleted (soft delete: the row stays for the record).

    Revert: nothing to undo (last step, one write).
    """

    def __init__(self):
        super().__init__(name=FINISH)

    def execute(self, runtime, resource_id):
        with runtime.db.write() as s:
            row = servers_db.get_any(s, resource_id)
            if row is not None and row.deleted_at is None:
                if not servers_db.mark_deleted(s, resource_id, now=runtime.clock()):
                    raise ResourceStateChanged(
                        f"share server {resource_id} left 'deleting' while it was being deleted")
