"""A storage pool on a filesystem image, loop-mounted (``shareflow run``, the
tests, the benchmarks); what the btrfs and XFS pools share.

``ensure_mounted`` skips every step already done: a pool already mounted is
reused, an image already attached to a loop device is not attached twice, an
image already formatted is not formatted again. The handle it returns names
the loop device, so a teardown unmounts exactly the mounts made from it -
loop-mounted files on the pool first (the image driver's shares), then the
pool's own mounts, newest first - and detaches exactly that device, never
"all loop devices" or anything found by name.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from shareflow.exceptions import StorageError
from shareflow.system import loop, mounts
from shareflow.system.process import run

GiB = 1 << 30
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True)
class LoopPool:
    mount_point: Path
    #: Device the pool is mounted from (``/dev/loopN`` for an image pool).
    device: str
    #: The backing image, or None for a pool on a real device (not ours to tear down).
    image: Path | None

    @property
    def loop_device(self) -> str | None:
        return self.device if self.image is not None else None


def ensure_mounted(mount_point: str | os.PathLike, image: str | os.PathLike | None, size_gb: int, *,
                   fstype: str, formatted: Callable[[Path], bool], mkfs: Callable[[Path], None],
                   timeout: float = DEFAULT_TIMEOUT) -> LoopPool:
    """Make sure a ``fstype`` filesystem is mounted on ``mount_point``.

    With ``image``: create the sparse image (``size_gb``), format it with
    ``mkfs`` unless ``formatted`` says it is, attach it to a loop device and
    mount it. Without: the pool must already be mounted (a real device)."""
    mount_point = Path(mount_point).resolve()
    image = Path(image).resolve() if image is not None else None
    mount_point.mkdir(parents=True, exist_ok=True)
    current = mounts.find_mount(mount_point)
    if current is not None:
        if current.fstype != fstype:
            raise StorageError(f"{mount_point} is a {current.fstype} mount, not a {fstype} pool")
        return LoopPool(mount_point=mount_point, device=current.source, image=image)
    if image is None:
        raise StorageError(f"no {fstype} pool is mounted on {mount_point} and no image is configured")
    if not image.exists():
        image.parent.mkdir(parents=True, exist_ok=True)
        with open(image, "xb") as f:
            f.truncate(size_gb * GiB)  # sparse: costs no space until written
    if not formatted(image):
        mkfs(image)
    attached = loop.devices_of(image)
    device = attached[0] if attached else run(["losetup", "--find", "--show", str(image)],
                                              timeout=timeout).stdout.strip()
    run(["mount", "-t", fstype, device, str(mount_point)], timeout=timeout)
    return LoopPool(mount_point=mount_point, device=device, image=image)


def unmount_pool(pool: LoopPool, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Unmount the files loop-mounted from the pool (their loop devices go
    with them), then every mount of the pool's device, then detach it.
    Repeatable."""
    if pool.loop_device is None:
        raise StorageError(f"pool on {pool.mount_point} is not a loop pool; not tearing it down")
    on_pool = set(loop.devices_under(pool.mount_point))
    for m in reversed(mounts.read_mounts()):
        if m.source in on_pool:
            mounts.unmount(m.mount_point, timeout=timeout)
    for device, image in loop.devices_under(pool.mount_point).items():
        loop.detach(device, image=image, timeout=timeout)  # attached but not mounted (not by us)
    for m in reversed(mounts.read_mounts()):
        if m.source == pool.device:
            mounts.unmount(m.mount_point, timeout=timeout)
    loop.detach(pool.device, image=pool.image, timeout=timeout)


def destroy_pool(pool: LoopPool, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Unmount and detach the pool, then delete its image."""
    unmount_pool(pool, timeout=timeout)
    if pool.image is not None:
        pool.image.unlink(missing_ok=True)
