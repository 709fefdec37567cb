"""An XFS pool with reflink on a loop-mounted image (for the image share
driver: ``shareflow run`` and the tests make one):
:mod:`shareflow.system.loop_pool` for XFS. Its teardown unmounts the share
images mounted from files on the pool before the pool itself.
"""

from __future__ import annotations

import os

from shareflow.system import loop_pool, xfs
from shareflow.system.loop_pool import DEFAULT_TIMEOUT, GiB, LoopPool, destroy_pool, unmount_pool

#: An XFS pool is a loop pool.
XfsPool = LoopPool

__all__ = ["GiB", "XfsPool", "destroy_pool", "ensure_pool", "unmount_pool"]


def ensure_pool(mount_point: str | os.PathLike, image: str | os.PathLike | None = None, size_gb: int = 4, *,
                timeout: float = DEFAULT_TIMEOUT) -> XfsPool:
    """Make sure an XFS filesystem with reflink is mounted on ``mount_point``
    (see :func:`shareflow.system.loop_pool.ensure_mounted`)."""
    return loop_pool.ensure_mounted(
        mount_point, image, size_gb, fstype="xfs", formatted=xfs.has_xfs_signature,
        mkfs=lambda path: xfs.mkfs(path, reflink=True, timeout=timeout), timeout=timeout)
