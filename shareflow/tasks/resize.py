"""Extend and shrink: the volume's size limit, then the share's recorded size."""

from __future__ import annotations

import logging

from taskflow import task
from taskflow.types.failure import Failure

from shareflow.exceptions import ShrinkWouldLoseData

LOG = logging.getLogger(__name__)

RESIZE_VOLUME = "resize_volume"


class ResizeVolume(task.Task):
    """Set the volume's hard size limit to ``new_size`` GiB, online: the
    share stays mounted and exported, its clients keep working. A shrink below
    the data in use is refused by the driver
    (:class:`~shareflow.exceptions.ShrinkWouldLoseData`) before it changes
    anything. Re-running it after a conductor died is harmless (the driver
    finds the limit already set).

    Revert: if this step completed (a later step failed), sets the limit back
    to the share's recorded size ``old_size``. If this step itself failed,
    nothing: the driver's resize is one atomic limit change, so a failed call
    left the limit as it was (and a backend that just failed is not asked
    again). A volume that is gone meanwhile (force-deleted) is left alone.
    """

    def __init__(self):
        super().__init__(name=RESIZE_VOLUME)

    def execute(self, runtime, backend, share_id, new_size):
        runtime.backend(backend).share.resize_volume(share_id, new_size)

    def revert(self, runtime, backend, share_id, old_size, result, **kwargs):
        if isinstance(result, Failure):
            return
        driver = runtime.backend(backend).share
        if share_id not in driver.list_volumes():
            return
        try:
            driver.resize_volume(share_id, old_size)
        except ShrinkWouldLoseData:
            # Clients wrote past the old size while the new limit held. The
            # larger limit stays: setting the old one would block every write
            # (btrfs keeps the data either way). The share is failed and its
            # message tells the operator to look.
            LOG.warning("share %s: kept the larger limit on revert, its data exceeds %d GiB",
                        share_id, old_size)
