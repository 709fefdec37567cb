"""The snapshots of a share group snapshot's members on the backend: one
btrfs snapshot per member share, named by the member's id."""

from __future__ import annotations

import logging

from taskflow import task

from shareflow.exceptions import BackendError

LOG = logging.getLogger(__name__)


class CreateMemberSnapshot(task.Task):
    """Take one member's snapshot (a read-only btrfs snapshot of its share's
    subvolume, named by the member id). Idempotent: one already there (a
    re-run after a conductor died) is kept.

    Revert: deletes that snapshot, whether execute finished or died half-way
    (the driver's delete tolerates absence): when another member's snapshot
    fails, the ones already taken go, and the group snapshot is ``error``
    with nothing left on the backend.
    """

    def __init__(self, index: int, member_id: str, share_id: str):
        super().__init__(name=f"create_member_snapshot_{index}",
                         inject={"member_id": member_id, "member_share_id": share_id})

    def execute(self, runtime, backend, member_id, member_share_id):
        runtime.backend(backend).share.create_snapshot(member_share_id, member_id)

    def revert(self, runtime, backend, member_id, **kwargs):
        runtime.backend(backend).share.delete_snapshot(member_id)


class DeleteMemberSnapshot(task.Task):
    """Destroy one member's snapshot (absence tolerated). With ``force`` (an
    admin's force_delete) a backend failure is logged and the records go
    anyway, as Manila's force delete does.

    Revert: none - a snapshot once deleted cannot come back; the group
    snapshot is ``error_deleting`` and a new delete retries every member.
    """

    def __init__(self, index: int, member_id: str, force: bool = False):
        self._force = force
        super().__init__(name=f"delete_member_snapshot_{index}", inject={"member_id": member_id})

    def execute(self, runtime, backend, member_id):
        try:
            runtime.backend(backend).share.delete_snapshot(member_id)
        except BackendError:
            if not self._force:
                raise
            LOG.exception("force-deleting group snapshot member %s: the backend failed; deleting its record "
                          "anyway", member_id)
