"""Shares as XFS filesystem images: Manila's LVM-driver model, on files.

The kernel here has neither XFS/ext4 quotas nor device mapper, so a share's
size limit cannot be a quota or a logical volume; it is the share's own
filesystem. Layout for share ``ID`` on a pool (an XFS filesystem with
reflink) mounted at ``MOUNT_POINT``:

* ``MOUNT_POINT/shares/ID.img``: a sparse file of the share's size holding an
  XFS filesystem - writes past it get ENOSPC, a hard limit (the filesystem's
  own metadata and log take some of it, as on an LVM volume: about 100 MiB of
  1 GiB). Sparse, but not free: mkfs writes the 64 MiB log, so an empty share
  takes about 65 MiB of the pool;
* that image loop-mounted (``-o loop,nouuid,nodev,nosuid``) on
  ``EXPORTS_DIR/ID``, which the export driver exports like any path. The loop
  device is attached by the mount with autoclear: unmounting frees it, so no
  device outlives its mount;
* a lock file ``EXPORTS_DIR/.locks/ID`` serialising work on the share across
  conductor processes, and ``EXPORTS_DIR/.locks/.loop`` serialising the count
  of loop devices with the mount that takes one.

Snapshot ``SNAP`` is ``MOUNT_POINT/snapshots/SNAP.img``: a reflink copy of
the share's image taken while its filesystem is frozen (consistent, and only
metadata is copied: tens of milliseconds). A share from a snapshot is a
reflink copy of the snapshot's image (grown to its size) given a UUID of its
own - NFS-Ganesha tells filesystems apart by UUID and will not export a
second one with its origin's - after one mount that replays the frozen
image's log (on ``EXPORTS_DIR/.replay-ID.img.new``). Shares are mounted
``nouuid`` all the same, so one with a duplicate UUID still mounts. Images
are whole or absent: each is made as ``NAME.img.new`` and renamed into place.

What it does not do, and reports so in :attr:`CAPABILITIES`:

* shrink: XFS cannot shrink; ``resize_volume`` to a smaller size raises
  :class:`NotSupportedByBackend` and the resize service refuses the request
  before any job (``shrink_support`` False);
* revert to a snapshot: the only way is to swap the image under an unmount,
  which needs the export removed first and leaves every NFS client with
  stale handles (the new image is another device) - not the in-place revert
  the interface promises (``revert_to_snapshot_support`` False).

Loop devices are a per-host resource: each mounted share holds one. Before a
share is made, the devices already held by images of this pool are counted
against ``max_loop_devices``; at the limit, or when the kernel gives none,
the create is refused with :class:`NoLoopDevice` and nothing is left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from shareflow.config import ImageConfig, parse_image
from shareflow.drivers.base import Capacity, ShareDriver, VolumesNotEnsured
from shareflow.drivers.share import registry
from shareflow.drivers.share.btrfs import share_id_of, snapshot_id_of
from shareflow.exceptions import (
    CapacityExceeded,
    CommandError,
    InvalidInput,
    NoLoopDevice,
    NotSupportedByBackend,
    StorageError,
)
from shareflow.system import filelock, loop, mounts, xfs
from shareflow.system.batch import run_batch
from shareflow.system.process import run

log = logging.getLogger(__name__)

GiB = 1 << 30
SHARES_DIR = "shares"
SNAPSHOTS_DIR = "snapshots"
IMAGE_SUFFIX = ".img"
#: An image being made; renamed to ``.img`` once whole.
NEW_SUFFIX = ".img.new"
LOCKS_DIR = ".locks"
#: Lock (in LOCKS_DIR) held while loop devices are counted and one is taken.
LOOP_LOCK = ".loop"
#: ``nouuid``: XFS refuses a second mount of a UUID (a clone gets its own, but
#: a copy made by hand would not).
MOUNT_OPTIONS = "loop,nouuid,nodev,nosuid"
SHRINK_REFUSED = "shares on this backend cannot be shrunk (XFS cannot shrink)"
REVERT_REFUSED = "shares on this backend cannot be reverted to a snapshot"


def _check_size(size_gb: object) -> None:
    if not isinstance(size_gb, int) or isinstance(size_gb, bool) or size_gb <= 0:
        raise InvalidInput(f"invalid share size {size_gb!r}")


def _id_of_image(name: str) -> str | None:
    for suffix in (NEW_SUFFIX, IMAGE_SUFFIX):
        if name.endswith(suffix):
            stem = name[: -len(suffix)]
            with contextlib.suppress(InvalidInput):
                return share_id_of(stem)
    return None


def _ids_in(directory: Path) -> set[str]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return set()
    return {i for i in map(_id_of_image, names) if i is not None}


class XfsImageShareDriver(ShareDriver):
    CAPABILITIES = {
        "snapshot_support": True,
        "create_share_from_snapshot_support": True,
        "revert_to_snapshot_support": False,
        "mount_snapshot_support": False,
        # Images are sparse: their sizes may add up past the pool.
        "thin_provisioning": True,
        "shrink_support": False,
        "driver_name": "XfsImageShareDriver",
        "driver_version": "1.0",
        "share_driver": "image",
        "filesystem": "xfs",
    }

    def __init__(self, cfg: ImageConfig, *, timeout: float):
        self._cfg = cfg
        self._pool = Path(cfg.mount_point)
        self._exports = Path(cfg.exports_dir)
        self._timeout = timeout
        #: (st_dev, st_ino) of the pool directory when it was last found mounted.
        self._pool_seen: tuple[int, int] | None = None

    # --- paths ------------------------------------------------------------

    def _image(self, share_id: str) -> Path:
        return self._pool / SHARES_DIR / (share_id + IMAGE_SUFFIX)

    def _snapshot(self, snapshot_id: str) -> Path:
        return self._pool / SNAPSHOTS_DIR / (snapshot_id + IMAGE_SUFFIX)

    @staticmethod
    def _new(image: Path) -> Path:
        return image.with_name(image.name.removesuffix(IMAGE_SUFFIX) + NEW_SUFFIX)

    def volume_path(self, share_id: str) -> str:
        return str(self._exports / share_id_of(share_id))

    def _lock(self, name: str, *, remove: bool = False):
        locks = self._exports / LOCKS_DIR
        locks.mkdir(parents=True, exist_ok=True)
        return filelock.locked(locks / name, timeout=self._timeout, error=StorageError, remove=remove)

    @contextlib.contextmanager
    def _refused_leaves_nothing(self, share_id: str):
        """Around a create: when it fails and nothing of the share is left
        (it removed what it made), its lock file goes too. Removed under the
        lock (whoever takes it next checks it locked the file still there)."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(StorageError), self._lock(share_id):
                if not self._image(share_id).exists() and not (self._exports / share_id).exists():
                    (self._exports / LOCKS_DIR / share_id).unlink(missing_ok=True)
            raise

    def _check_pool(self) -> None:
        """The pool is mounted (XFS). The mount table is read once; after that
        a stat of the pool directory says whether it is still that mount."""
        try:
            st = os.stat(self._pool)
            seen = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            seen = None
        if seen is not None and seen == self._pool_seen:
            return
        m = mounts.find_mount(self._pool)
        if m is None or m.fstype != "xfs":
            self._pool_seen = None
            raise StorageError(f"no XFS pool is mounted on {self._pool}")
        self._pool_seen = seen

    # --- volumes ----------------------------------------------------------

    def create_volume(self, share_id: str, size_gb: int) -> str:
        share_id = share_id_of(share_id)
        _check_size(size_gb)
        self._check_pool()
        with self._refused_leaves_nothing(share_id), self._lock(share_id):
            image = self._image(share_id)
            made = not image.exists()
            if made:
                self._check_fits(size_gb)
                self._check_loop_room()  # before anything is made
                self._make_image(image, size_gb)
            self._mount(share_id, made=made)
        log.info("volume for share %s ready (%d GiB image)", share_id, size_gb)
        return self.volume_path(share_id)

    def delete_volume(self, share_id: str) -> None:
        share_id = share_id_of(share_id)
        self._check_pool()  # without the pool, absence proves nothing
        with self._lock(share_id, remove=True):
            self._unmount(share_id)
            image = self._image(share_id)
            for device in loop.devices_of(image):  # attached by something else, not mounted
                loop.detach(device, image=image, timeout=self._timeout)
            image.unlink(missing_ok=True)
            self._unmount_scratch(self._new(image))
            self._new(image).unlink(missing_ok=True)
        log.info("volume for share %s deleted", share_id)

    def list_volumes(self) -> list[str]:
        found = _ids_in(self._pool / SHARES_DIR)
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self._exports):
                with contextlib.suppress(InvalidInput):
                    found.add(share_id_of(name))
        return sorted(found)

    def ensure_volumes(self, *, workers: int = 1) -> list[str]:
        """Mount every share's image that is not mounted (after a reboot or a
        restart). One listing, then per share a lock, a stat and a sysfs read
        and, if it is not mounted, one mount. Every volume is tried; then
        :class:`VolumesNotEnsured` names the failures."""
        self._check_pool()
        try:
            names = sorted(os.listdir(self._pool / SHARES_DIR))
        except FileNotFoundError:
            return []
        ids = [n.removesuffix(IMAGE_SUFFIX) for n in names
               if n.endswith(IMAGE_SUFFIX) and _id_of_image(n) is not None]

        def ensure_one(share_id: str) -> None:
            with self._lock(share_id):
                self._mount(share_id, made=False)

        result = run_batch(ids, ensure_one, workers=workers, label=f"ensure {self._pool}",
                           what="volumes mounted", log=log)
        if result.failed:
            raise VolumesNotEnsured(result.done, result.failed)
        return result.done

    def capacity(self) -> Capacity:
        self._check_pool()
        st = os.statvfs(self._pool)
        return Capacity(total_gb=st.f_blocks * st.f_frsize // GiB, free_gb=st.f_bavail * st.f_frsize // GiB)

    def resize_volume(self, share_id: str, new_size_gb: int) -> None:
        """Grow online: the image file, then the loop device's idea of its
        size (``losetup -c``), then the filesystem (``xfs_growfs``), all
        while mounted and exported. Each step is a no-op when done, so a call
        interrupted anywhere is completed by the next. A smaller size is
        refused (:class:`NotSupportedByBackend`): XFS cannot shrink."""
        share_id = share_id_of(share_id)
        _check_size(new_size_gb)
        self._check_pool()
        new_bytes = new_size_gb * GiB
        with self._lock(share_id):
            image = self._existing_image(share_id)
            current = image.stat().st_size
            if new_bytes < current:
                raise NotSupportedByBackend(
                    f"share {share_id}: cannot shrink an XFS image from {current} to {new_bytes} bytes",
                    user_message=SHRINK_REFUSED)
            if new_bytes > current:
                self._check_fits(new_size_gb)
                os.truncate(image, new_bytes)
            self._mount(share_id, made=False)
            target = self._exports / share_id
            device = loop.device_of_mount(target)
            if device is None:
                raise StorageError(f"{target} is not mounted from a loop device")
            loop.refresh_size(device[0], timeout=self._timeout)
            xfs.growfs(target, timeout=self._timeout)
        log.info("volume for share %s resized to %d GiB", share_id, new_size_gb)

    def used_bytes(self, share_id: str) -> int:
        """Blocks in use in the share's filesystem (its metadata and log
        included: they count against the image's size too), once the frees
        XFS defers are done."""
        share_id = share_id_of(share_id)
        self._check_pool()
        self._existing_image(share_id)
        target = self._exports / share_id
        if self._mounted_image(target) != os.path.realpath(self._image(share_id)):
            raise StorageError(f"share {share_id}'s image is not mounted on {target}")
        xfs.settle_free_space(target)  # current: deferred frees done
        st = os.statvfs(target)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    # --- snapshots ----------------------------------------------------------

    def create_snapshot(self, share_id: str, snapshot_id: str) -> str:
        """Freeze the share's filesystem (flushes it; writers wait), reflink-
        copy its image, unfreeze - the unfreeze in ``finally``, and a call
        that died while the filesystem was frozen is repaired by the next,
        which unfreezes first. Returns the snapshot image's path."""
        share_id, snapshot_id = share_id_of(share_id), snapshot_id_of(snapshot_id)
        self._check_pool()
        with self._lock(snapshot_id), self._lock(share_id):
            target = self._snapshot(snapshot_id)
            if target.exists():
                return str(target)
            image = self._existing_image(share_id, what="the share's volume")
            mount = self._exports / share_id
            mounted = self._mounted_image(mount) == os.path.realpath(image)
            new = self._new(target)
            new.unlink(missing_ok=True)
            target.parent.mkdir(exist_ok=True)
            if mounted:
                xfs.unfreeze(mount, timeout=self._timeout)  # left frozen by a call that died
                xfs.freeze(mount, timeout=self._timeout)
            try:
                xfs.reflink_copy(image, new)
            finally:
                if mounted:
                    xfs.unfreeze(mount, timeout=self._timeout)
            os.rename(new, target)
        log.info("snapshot %s of share %s ready", snapshot_id, share_id)
        return str(target)

    def delete_snapshot(self, snapshot_id: str) -> None:
        snapshot_id = snapshot_id_of(snapshot_id)
        self._check_pool()
        with self._lock(snapshot_id, remove=True):
            target = self._snapshot(snapshot_id)
            target.unlink(missing_ok=True)
            self._new(target).unlink(missing_ok=True)
        log.info("snapshot %s deleted", snapshot_id)

    def list_snapshots(self) -> list[str]:
        return sorted(_ids_in(self._pool / SNAPSHOTS_DIR))

    def create_volume_from_snapshot(self, share_id: str, snapshot_id: str, size_gb: int) -> str:
        """A reflink copy of the snapshot's image, grown to ``size_gb``,
        mounted like any share (``nouuid``: its origin's UUID) and its
        filesystem grown to the image. Independent of the snapshot and its
        share: their extents are shared until written, then copied."""
        share_id, snapshot_id = share_id_of(share_id), snapshot_id_of(snapshot_id)
        _check_size(size_gb)
        self._check_pool()
        with self._lock(snapshot_id), self._refused_leaves_nothing(share_id), self._lock(share_id):
            image = self._image(share_id)
            made = not image.exists()
            if made:
                source = self._snapshot(snapshot_id)
                if not source.exists():
                    raise StorageError(f"the snapshot is missing: no {source}",
                                       user_message="the snapshot is missing on the backend")
                if size_gb * GiB < source.stat().st_size:
                    raise InvalidInput(f"share of {size_gb} GiB is smaller than snapshot {snapshot_id}")
                self._check_fits(size_gb)
                self._check_loop_room()
                self._make_image(image, size_gb, source=source)
            self._mount(share_id, made=made)
            xfs.growfs(self._exports / share_id, timeout=self._timeout)
        log.info("volume for share %s ready from snapshot %s (%d GiB)", share_id, snapshot_id, size_gb)
        return self.volume_path(share_id)

    def revert_to_snapshot(self, share_id: str, snapshot_id: str, size_gb: int) -> None:
        """Refused (``revert_to_snapshot_support`` is False): the interface
        wants the volume to stay mounted and exported while its content
        becomes the snapshot's. Here that means swapping the image under an
        unmount, which NFS-Ganesha's open export forbids (the mount is busy)
        unless the export is removed first - a job of the export driver, not
        this one - and which gives clients another filesystem (new device,
        handles stale). Copying the snapshot's files into the live image
        instead would be a full data copy (no reflink across filesystems).
        Share types asking for revert are therefore not placed here."""
        share_id, snapshot_id = share_id_of(share_id), snapshot_id_of(snapshot_id)
        raise NotSupportedByBackend(f"share {share_id}: the image driver does not revert in place",
                                    user_message=REVERT_REFUSED)

    # --- steps ------------------------------------------------------------

    def _existing_image(self, share_id: str, *, what: str = "the share's volume") -> Path:
        image = self._image(share_id)
        if not image.exists():
            raise StorageError(f"share {share_id} has no image at {image}",
                               user_message=f"{what} is missing on the backend")
        return image

    def _check_fits(self, size_gb: int) -> None:
        total = self.capacity().total_gb
        if size_gb > total:
            raise CapacityExceeded(f"share of {size_gb} GiB does not fit in pool {self._pool} ({total} GiB)",
                                   user_message=f"no pool can hold a share of {size_gb} GiB")

    def _loop_devices_held(self) -> int:
        return len(loop.devices_under(self._pool))

    def _check_loop_room(self) -> None:
        held = self._loop_devices_held()
        if held >= self._cfg.max_loop_devices:
            raise NoLoopDevice(
                f"pool {self._pool}: {held} loop devices in use, the limit is {self._cfg.max_loop_devices}",
                user_message="the backend has no loop device left for another share")

    def _make_image(self, image: Path, size_gb: int, *, source: Path | None = None) -> None:
        """Make ``image`` whole or not at all: built as ``.img.new`` (a
        leftover of a call that died is discarded), renamed when done."""
        new = self._new(image)
        self._unmount_scratch(new)
        new.unlink(missing_ok=True)
        image.parent.mkdir(exist_ok=True)
        try:
            if source is None:
                with open(new, "xb") as f:
                    f.truncate(size_gb * GiB)  # sparse
                xfs.mkfs(new, timeout=self._timeout)
            else:
                xfs.reflink_copy(source, new)
                if size_gb * GiB > new.stat().st_size:
                    os.truncate(new, size_gb * GiB)
                self._give_own_uuid(new)
            os.rename(new, image)
        except BaseException:
            self._unmount_scratch(new)
            new.unlink(missing_ok=True)
            raise

    def _scratch(self, new: Path) -> Path:
        return self._exports / f".replay-{new.name}"

    def _give_own_uuid(self, new: Path) -> None:
        """A reflink copy of a snapshot has its origin's filesystem UUID, and
        NFS-Ganesha tells filesystems apart by UUID: it refuses to export a
        second one with the same (``resolve_posix_filesystem``: ENOENT). The
        copy of a frozen filesystem has a dirty log, which xfs_admin refuses
        to touch, so: mount it once (``nouuid``: XFS replays the log), unmount
        it, then give it a new UUID - about 0.1 s."""
        scratch = self._scratch(new)
        self._unmount_scratch(new)
        scratch.mkdir(parents=True, exist_ok=True)
        with self._lock(LOOP_LOCK):
            self._check_loop_room()
            try:
                run(["mount", "-t", "xfs", "-o", "loop,nouuid,nodev,nosuid,noexec", str(new), str(scratch)],
                    timeout=self._timeout)
            except CommandError as e:
                if "loop device" in e.stderr:
                    raise NoLoopDevice(f"no loop device for {new}: {e.stderr}") from e
                raise
        self._unmount_scratch(new)
        xfs.generate_uuid(new, timeout=self._timeout)

    def _unmount_scratch(self, new: Path) -> None:
        """Undo the log-replay mount of ``new`` (also one a call that died left)."""
        scratch = self._scratch(new)
        if os.path.ismount(scratch):
            mounts.unmount(scratch, timeout=self._timeout)
        with contextlib.suppress(FileNotFoundError):
            scratch.rmdir()

    def _mounted_image(self, target: Path) -> str | None:
        """The image mounted on ``target`` (a stat and a sysfs read), or None."""
        if not os.path.ismount(target):
            return None
        found = loop.device_of_mount(target)
        return found[1] if found else ""

    def _mount(self, share_id: str, *, made: bool) -> None:
        """Mount the share's image on its export path unless it is. When this
        call ``made`` the image, a failure to mount removes it again (and the
        mount point): a refused create leaves nothing."""
        image, target = self._image(share_id), self._exports / share_id
        target.mkdir(parents=True, exist_ok=True)
        shown = self._mounted_image(target)
        if shown == os.path.realpath(image):
            return
        try:
            if shown is not None:
                raise StorageError(f"{target} has {shown or 'something else'} mounted, expected {image}")
            with self._lock(LOOP_LOCK):
                self._check_loop_room()
                try:
                    run(["mount", "-t", "xfs", "-o", MOUNT_OPTIONS, str(image), str(target)],
                        timeout=self._timeout)
                except CommandError as e:
                    if "loop device" in e.stderr:
                        raise NoLoopDevice(f"no loop device for {image}: {e.stderr}") from e
                    raise
        except BaseException:
            if made:
                image.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    target.rmdir()
            raise

    def _unmount(self, share_id: str) -> None:
        target = self._exports / share_id
        for _ in range(8):
            if not os.path.ismount(target):
                break
            mounts.unmount(target, timeout=self._timeout)
        else:
            raise StorageError(f"{target} is still mounted")
        try:
            target.rmdir()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StorageError(f"cannot remove {target}: {e}") from e


def _prepare_pool(cfg: ImageConfig, timeout: float) -> registry.PreparedPool | None:
    from shareflow.system import xfs_pool

    if cfg.image is None:
        return None
    pool = xfs_pool.ensure_pool(cfg.mount_point, cfg.image, cfg.image_size_gb, timeout=timeout)
    return registry.PreparedPool(pool.mount_point, lambda: xfs_pool.unmount_pool(pool, timeout=timeout))


registry.register(registry.ShareDriverKind(
    name="image", section="image", parse=parse_image, driver=XfsImageShareDriver, prepare_pool=_prepare_pool,
))
