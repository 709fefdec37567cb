"""NFS exports of share volumes."""

from __future__ import annotations

from taskflow import task


class Export(task.Task):
    """Export the volume on the share server, with an empty client list
    (nobody may mount it until access is applied); returns the export
    locations.

    Revert: removes the export (absence tolerated).
    """

    def __init__(self):
        super().__init__(name="export", provides="export_locations")

    def execute(self, runtime, backend, server, share_id, volume_path):
        return runtime.backend(backend).export.add_export(server, share_id, volume_path)

    def revert(self, runtime, backend, server, share_id, **kwargs):
        runtime.backend(backend).export.remove_export(server, share_id)


class Unexport(task.Task):
    """Stop exporting the share.

    Revert: none - the share is being deleted; a new delete request retries
    (absence tolerated).
    """

    def __init__(self):
        super().__init__(name="unexport")

    def execute(self, runtime, backend, server, share_id):
        runtime.backend(backend).export.remove_export(server, share_id)
