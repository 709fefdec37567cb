"""Share volumes on the backend's storage."""

from __future__ import annotations

from taskflow import task


class CreateVolume(task.Task):
    """Create the share's volume (btrfs subvolume with a quota of the share's
    size, mounted where the export server can export it). Idempotent: a
    volume already there (this atom re-run after a conductor died) is reused.

    Revert: deletes the volume, whether execute finished or died half-way;
    the driver's delete tolerates absence.
    """

    def __init__(self):
        super().__init__(name="create_volume", provides="volume_path")

    def execute(self, runtime, backend, share_id, size):
        return runtime.backend(backend).share.create_volume(share_id, size)

    def revert(self, runtime, backend, share_id, **kwargs):
        runtime.backend(backend).share.delete_volume(share_id)


class DeleteVolume(task.Task):
    """Destroy the share's volume and its data.

    Revert: none - data once deleted cannot come back; the share stays
    ``error_deleting`` and a new delete request retries (absence tolerated).
    """

    def __init__(self):
        super().__init__(name="delete_volume")

    def execute(self, runtime, backend, share_id):
        runtime.backend(backend).share.delete_volume(share_id)
