"""A btrfs pool backed by a loop-mounted image file (dev launcher and tests).

``ensure_pool`` is idempotent: a pool already mounted is reused, an image
already attached to a loop device is not attached twice, an image already
formatted is not formatted again. The returned handle names the loop device,
so teardown detaches exactly that device and unmounts exactly the mounts made
from it - never "all loop devices" or anything found by name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shareflow.config import BtrfsConfig
from shareflow.exceptions import StorageError
from shareflow.system import btrfs, mounts
from shareflow.system.process import run

GiB = 1 << 30
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class BtrfsPool:
    mount_point: Path
    #: Device the pool is mounted from (``/dev/loopN`` for an image pool).
    device: str
    #: The backing image, or None for a pool on a real device (not ours to tear down).
    image: Path | None

    @property
    def loop_device(self) -> str | None:
        return self.device if self.image is not None else None


def ensure_pool(
    mount_point: str | os.PathLike,
    image: str | os.PathLike | None = None,
    size_gb: int = 4,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> BtrfsPool:
    """Make sure a btrfs pool with quotas is mounted on ``mount_point``.

    With ``image``: create the sparse image (``size_gb``), format it, attach
    it to a loop device and mount it, skipping every step already done.
    Without: the pool must already be mounted (a real device).
    """
    mount_point = Path(mount_point).resolve()
    image = Path(image).resolve() if image is not None else None
    mount_point.mkdir(parents=True, exist_ok=True)
    current = mounts.find_mount(mount_point)
    if current is not None:
        if current.fstype != "btrfs":
            raise StorageError(f"{mount_point} is a {current.fstype} mount, not a btrfs pool")
        device = current.source
    elif image is None:
        raise StorageError(f"no btrfs pool is mounted on {mount_point} and no image is configured")
    else:
        _ensure_image(image, size_gb, timeout=timeout)
        device = _attached_loop(image, timeout=timeout) or _attach(image, timeout=timeout)
        run(["mount", "-t", "btrfs", device, str(mount_point)], timeout=timeout)
    # Idempotent, and cheap when quotas are already on.
    btrfs.quota_enable(mount_point, timeout=timeout)
    return BtrfsPool(mount_point=mount_point, device=device, image=image)


def pool_for(cfg: BtrfsConfig, *, timeout: float = DEFAULT_TIMEOUT) -> BtrfsPool:
    """``ensure_pool`` for a backend's configuration."""
    return ensure_pool(cfg.mount_point, cfg.image, cfg.image_size_gb, timeout=timeout)


def _ensure_image(image: Path, size_gb: int, *, timeout: float) -> None:
    if not image.exists():
        image.parent.mkdir(parents=True, exist_ok=True)
        with open(image, "xb") as f:
            f.truncate(size_gb * GiB)  # sparse: costs no space until written
    if not btrfs.has_btrfs_signature(image):
        btrfs.mkfs(image, timeout=timeout)


def _attached_loop(image: Path, *, timeout: float) -> str | None:
    """A loop device already backed by ``image`` (left by an earlier run)."""
    out = run(["losetup", "--noheadings", "--output", "NAME", "--associated", str(image)], timeout=timeout).stdout
    devices = out.split()
    return devices[0] if devices else None


def _attach(image: Path, *, timeout: float) -> str:
    return run(["losetup", "--find", "--show", str(image)], timeout=timeout).stdout.strip()


def unmount_pool(pool: BtrfsPool, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Unmount every mount made from the pool's device (subvolume mounts
    first, newest first), then detach the loop device. Repeatable."""
    if pool.loop_device is None:
        raise StorageError(f"pool on {pool.mount_point} is not a loop pool; not tearing it down")
    for m in reversed(mounts.read_mounts()):
        if m.source == pool.device:
            mounts.unmount(m.mount_point, timeout=timeout)
    if os.path.exists(pool.device) and _backs(pool.device, pool.image, timeout=timeout):
        run(["losetup", "--detach", pool.device], timeout=timeout)


def _backs(device: str, image: Path, *, timeout: float) -> bool:
    """Whether ``device`` is still attached to ``image`` (so we never detach
    a loop device that was reused for something else)."""
    out = run(["losetup", "--noheadings", "--output", "NAME", "--associated", str(image)], timeout=timeout, check=False)
    return device in out.stdout.split()


def destroy_pool(pool: BtrfsPool, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Unmount and detach the pool, then delete its image."""
    unmount_pool(pool, timeout=timeout)
    if pool.image is not None:
        pool.image.unlink(missing_ok=True)
