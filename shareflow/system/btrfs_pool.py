"""A btrfs pool with quotas on a loop-mounted image (dev launcher and tests):
:mod:`shareflow.system.loop_pool` for btrfs, with quotas enabled once mounted.
"""

from __future__ import annotations

import os

from shareflow.config import BtrfsConfig
from shareflow.system import btrfs, loop_pool
from shareflow.system.loop_pool import DEFAULT_TIMEOUT, GiB, LoopPool, destroy_pool, unmount_pool

#: A btrfs pool is a loop pool; the name stays for its many users.
BtrfsPool = LoopPool

__all__ = ["BtrfsPool", "GiB", "destroy_pool", "ensure_pool", "pool_for", "unmount_pool"]


def ensure_pool(
    mount_point: str | os.PathLike,
    image: str | os.PathLike | None = None,
    size_gb: int = 4,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> BtrfsPool:
    """Make sure a btrfs pool with quotas is mounted on ``mount_point`` (see
    :func:`shareflow.system.loop_pool.ensure_mounted`)."""
    pool = loop_pool.ensure_mounted(
        mount_point, image, size_gb, fstype="btrfs", formatted=btrfs.has_btrfs_signature,
        mkfs=lambda path: btrfs.mkfs(path, timeout=timeout), timeout=timeout)
    # Idempotent, and cheap when quotas are already on.
    btrfs.quota_enable(pool.mount_point, timeout=timeout)
    return pool


def pool_for(cfg: BtrfsConfig, *, timeout: float = DEFAULT_TIMEOUT) -> BtrfsPool:
    """``ensure_pool`` for a backend's configuration."""
    return ensure_pool(cfg.mount_point, cfg.image, cfg.image_size_gb, timeout=timeout)
