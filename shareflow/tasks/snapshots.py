"""Snapshots on the backend's storage: take, delete, a share from one, revert a share to one."""

from __future__ import annotations

import logging

from taskflow import task

from shareflow.db import snapshots as snapshots_db
from shareflow.domain import states
from shareflow.exceptions import BackendError, ResourceStateChanged

LOG = logging.getLogger(__name__)


class CreateSnapshot(task.Task):
    """Take the snapshot on the backend (a read-only btrfs snapshot of the
    share's subvolume); returns its provider location. Idempotent: one that
    is already there (a re-run after a conductor died) is kept.

    Revert: deletes the snapshot, whether execute finished or died half-way
    (the driver's delete tolerates absence).
    """

    def __init__(self):
        super().__init__(name="create_snapshot", provides="provider_location")

    def execute(self, runtime, backend, share_id, snapshot_id):
        return runtime.backend(backend).share.create_snapshot(share_id, snapshot_id)

    def revert(self, runtime, backend, snapshot_id, **kwargs):
        runtime.backend(backend).share.delete_snapshot(snapshot_id)


class DeleteSnapshot(task.Task):
    """Destroy the snapshot on the backend (subvolume and qgroup). With
    ``force`` (an admin's force_delete) a backend failure is logged and the
    snapshot is deleted from the records anyway, as Manila does.

    Revert: none - a snapshot once deleted cannot come back; the snapshot
    stays ``error_deleting`` and a new delete retries (absence tolerated).
    """

    def __init__(self, force: bool = False):
        self._force = force
        super().__init__(name="delete_snapshot")

    def execute(self, runtime, backend, snapshot_id):
        try:
            runtime.backend(backend).share.delete_snapshot(snapshot_id)
        except BackendError:
            if not self._force:
                raise
            LOG.exception("force-deleting snapshot %s: the backend failed; deleting its record anyway",
                          snapshot_id)


class CreateVolumeFromSnapshot(task.Task):
    """The create-volume step of a share created from a snapshot: the new
    share's volume starts as a writable copy of the snapshot (a writable
    btrfs snapshot of it, with the share's own quota of its size), mounted
    where the export server can export it. Idempotent: a volume already
    there is reused.

    Revert: deletes the volume, whether execute finished or died half-way;
    the snapshot is untouched either way.
    """

    def __init__(self):
        super().__init__(name="create_volume_from_snapshot", provides="volume_path")

    def execute(self, runtime, backend, share_id, snapshot_id, size):
        return runtime.backend(backend).share.create_volume_from_snapshot(share_id, snapshot_id, size)

    def revert(self, runtime, backend, share_id, **kwargs):
        runtime.backend(backend).share.delete_volume(share_id)


class HoldSnapshot(task.Task):
    """Check that the snapshot a share is reverted to is ``restoring`` (the
    API set it, with the share ``reverting``, before posting). Only looks.

    Revert: gives the snapshot back: ``restoring`` -> ``available``
    (conditional, so harmless when it was never taken or already given back).
    """

    def __init__(self):
        super().__init__(name="hold_snapshot")

    def execute(self, runtime, snapshot_id):
        with runtime.db.read() as s:
            snap = snapshots_db.get_any(s, snapshot_id)
            status = "gone" if snap is None or snap.deleted_at is not None else snap.status
        if status != states.RESTORING:
            raise ResourceStateChanged(
                f"snapshot {snapshot_id} is {status}, not restoring",
                user_message=f"the snapshot changed status to {status} before the job ran",
            )

    def revert(self, runtime, snapshot_id, **kwargs):
        with runtime.db.write() as s:
            snapshots_db.set_status(s, snapshot_id, states.AVAILABLE, now=runtime.clock(),
                                    expected={states.RESTORING})


class RevertToSnapshot(task.Task):
    """Make the share's content the snapshot's, in place (the share stays
    mounted and exported at the same path), and its size limit the
    snapshot's size. The driver call is all or nothing and resumable: see
    ``ShareDriver.revert_to_snapshot``.

    Revert: nothing to undo - a failed call already put the share's previous
    content back itself. (Should a later step fail after this one succeeded,
    the share keeps the snapshot's content; it is then ``reverting_error``.)
    """

    def __init__(self):
        super().__init__(name="revert_to_snapshot")

    def execute(self, runtime, backend, share_id, snapshot_id, snapshot_size):
        runtime.backend(backend).share.revert_to_snapshot(share_id, snapshot_id, snapshot_size)
