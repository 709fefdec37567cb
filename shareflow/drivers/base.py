"""The interfaces tasks call, one per role (DESIGN.md keeps the three apart):

* :class:`ShareDriver`   - storage: volumes (and later snapshots, clones, resize);
* :class:`ExportDriver`  - NFS exports of volumes on a share server, and their client lists;
* :class:`NetworkHelper` - allocates and releases addresses on a share network;
* :class:`ServerHelper`  - supplies the share server a share is exported from.

Every method is idempotent: a conductor may die at any instruction and the
next one calls the same method again. Creating looks first and returns what is
already there; deleting tolerates absence. Arguments and results are small
JSON values (ids, paths, lists of dicts) because tasks persist them.

Errors are the project's own (``shareflow.exceptions.BackendError`` and
subclasses), translated where the driver meets its tool.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from shareflow.exceptions import StorageError


class VolumesNotEnsured(StorageError):
    """Some volumes could not be mounted at start-up (the others were):
    what ``ShareDriver.ensure_volumes`` raises after trying every one."""

    def __init__(self, done: list[str], failed: dict):
        first = next(iter(failed.items()))
        super().__init__(f"{len(failed)} of {len(done) + len(failed)} volumes could not be mounted "
                         f"(first: {first[0]}: {first[1].message})")
        self.done = done
        self.failed = failed


@dataclass(frozen=True)
class Capacity:
    total_gb: int
    free_gb: int


@dataclass(frozen=True)
class ClientRule:
    """One entry of an export's client list: an address or CIDR (already
    normalised by ``shareflow.domain.validation.ip_access_to``) and ``rw``/``ro``."""

    access_to: str
    access_level: str

    def to_json(self) -> dict:
        return {"access_to": self.access_to, "access_level": self.access_level}

    @classmethod
    def from_json(cls, data: dict) -> ClientRule:
        return cls(access_to=data["access_to"], access_level=data["access_level"])


#: Manila's capability names every share driver reports (``capabilities``).
CAPABILITY_NAMES = (
    "snapshot_support", "create_share_from_snapshot_support", "revert_to_snapshot_support",
    "mount_snapshot_support", "thin_provisioning", "shrink_support", "storage_protocol",
    "driver_name", "vendor_name", "driver_version", "share_driver", "filesystem",
)
VENDOR_NAME = "shareflow"
STORAGE_PROTOCOL = "NFS"


class ShareDriver(abc.ABC):
    """Storage for shares on one pool."""

    #: What the driver can do, whatever its pool: Manila's capability names
    #: (``snapshot_support``, ...) with honest values, plus ``shrink_support``,
    #: ``share_driver`` (its name in the registry) and ``filesystem`` (what a
    #: share is), which a share type's extra specs can ask for. Read without
    #: an instance (``registry.capabilities_of``) by whoever must refuse a
    #: request the driver cannot do before any job is posted.
    CAPABILITIES: ClassVar[Mapping[str, Any]] = {}

    def capabilities(self) -> dict:
        """Manila's capabilities of this driver's pool, as conductors report
        them (capacity is :meth:`capacity`'s, not here)."""
        caps = {"storage_protocol": STORAGE_PROTOCOL, "vendor_name": VENDOR_NAME, **self.CAPABILITIES}
        missing = [n for n in CAPABILITY_NAMES if n not in caps]
        if missing:
            raise TypeError(f"{type(self).__name__}.CAPABILITIES lacks {', '.join(missing)}")
        return caps

    @abc.abstractmethod
    def create_volume(self, share_id: str, size_gb: int) -> str:
        """Create (or find) the share's volume with a hard size limit of
        ``size_gb`` GiB, mounted where the export server can export it.
        Returns that path."""

    @abc.abstractmethod
    def delete_volume(self, share_id: str) -> None:
        """Unmount and destroy the volume and everything the driver made for it.
        Absent volume: nothing to do."""

    @abc.abstractmethod
    def volume_path(self, share_id: str) -> str:
        """The path ``create_volume`` returns for this share (whether or not it exists)."""

    @abc.abstractmethod
    def list_volumes(self) -> list[str]:
        """Share ids that have a volume (or any remnant of one) on this pool."""

    @abc.abstractmethod
    def create_snapshot(self, share_id: str, snapshot_id: str) -> str:
        """Take (or find) a read-only point-in-time copy of the share's volume.
        Returns where the backend keeps it (the snapshot's provider location)."""

    @abc.abstractmethod
    def delete_snapshot(self, snapshot_id: str) -> None:
        """Destroy the snapshot and everything the driver made for it.
        Absent snapshot: nothing to do."""

    @abc.abstractmethod
    def list_snapshots(self) -> list[str]:
        """Snapshot ids that have a snapshot (or any remnant of one) on this pool."""

    @abc.abstractmethod
    def create_volume_from_snapshot(self, share_id: str, snapshot_id: str, size_gb: int) -> str:
        """Like :meth:`create_volume`, but the new volume starts with the
        snapshot's content; it is independent of the snapshot and of the
        snapshot's share from then on. ``size_gb`` is at least the snapshot's
        size. Returns the volume's path."""

    @abc.abstractmethod
    def revert_to_snapshot(self, share_id: str, snapshot_id: str, size_gb: int) -> None:
        """Make the content of the share's volume the snapshot's, in place: the
        volume stays mounted (and exported) where it is. Its size limit becomes
        ``size_gb`` (the snapshot's size). All or nothing: a call that raises
        leaves the volume's previous content and limit; a call interrupted by
        the death of its process is completed by calling it again."""

    @abc.abstractmethod
    def capacity(self) -> Capacity:
        """Total and free space of the pool, in whole GiB."""

    @abc.abstractmethod
    def ensure_volumes(self) -> list[str]:
        """Bring every existing volume back to where ``create_volume`` left it
        (after a reboot or a restart of the service: mounts are gone). Returns
        the share ids it found."""

    @abc.abstractmethod
    def resize_volume(self, share_id: str, new_size_gb: int) -> None:
        """Make the volume's hard size limit ``new_size_gb`` GiB, online (the
        volume stays mounted and exported). Already that size: nothing to do.
        Shrinking below the data in use raises
        :class:`~shareflow.exceptions.ShrinkWouldLoseData` and changes nothing;
        growing past what the pool can hold raises ``CapacityExceeded``. One
        atomic change: a call that raises left the limit as it was."""

    @abc.abstractmethod
    def used_bytes(self, share_id: str) -> int:
        """Bytes the volume's data takes now (what its size limit counts),
        current as of this call. Raises ``StorageError`` if there is no volume."""


class ExportDriver(abc.ABC):
    """NFS exports on share servers. ``server`` is the JSON dict a
    :class:`ServerHelper` returned (it has at least ``id`` and ``address``)."""

    @abc.abstractmethod
    def add_export(self, server: dict, share_id: str, path: str) -> list[str]:
        """Export ``path`` for the share, with an empty client list (nobody may
        mount it yet), and make the server serve it. Returns the export
        locations (``host:/pseudo``). Already exported: returns the same."""

    @abc.abstractmethod
    def remove_export(self, server: dict, share_id: str) -> None:
        """Stop exporting the share. Not exported: nothing to do."""

    @abc.abstractmethod
    def update_access(self, server: dict, share_id: str, rules: list[ClientRule]) -> None:
        """Make the export's client list exactly ``rules`` (the full set, not a
        delta), and make the server serve the new list."""

    @abc.abstractmethod
    def list_exports(self, server: dict) -> dict[str, list[ClientRule]]:
        """share id -> its client list, for every export on the server."""

    def has_export(self, server: dict, share_id: str) -> bool:
        """Whether the share is exported on the server. What a step asks
        before it changes one export: a driver should answer it without
        reading every export (this default does, for drivers that cannot)."""
        return share_id in self.list_exports(server)


class NetworkHelper(abc.ABC):
    @abc.abstractmethod
    def allocate(self, share_id: str, share_network_id: str | None) -> dict:
        """Reserve what the share's server needs on the share network; returns
        a JSON dict describing the allocation (empty when nothing is needed)."""

    @abc.abstractmethod
    def release(self, allocation: dict) -> None:
        """Give back exactly what ``allocate`` reserved. Already released: nothing to do."""


class ServerHelper(abc.ABC):
    @abc.abstractmethod
    def provide(self, share_id: str, allocation: dict) -> dict:
        """Return the share server to export the share from, creating one if
        needed. The dict has ``id``, ``address`` and ``created`` (whether this
        call created it, so a revert knows whether to tear it down)."""

    @abc.abstractmethod
    def server_for(self, share_id: str) -> dict:
        """The server the share is exported from, without creating anything
        (for delete and access flows). Raises ``BackendError`` if there is none."""

    @abc.abstractmethod
    def release(self, server: dict) -> None:
        """Undo ``provide``: tear the server down if ``provide`` created it and
        no share uses it any more."""


class ShareServerHelper(ServerHelper):
    """A server helper that creates and deletes share servers (DHSS=true).

    Which share uses which server is recorded by ``provide``; ``provide``,
    ``release``, ``reusable``, ``retire`` and ``take_down`` are called with
    the lock of the share network on the backend held (the tasks take it), so
    a server is never chosen for a share and found unused at the same time.
    ``server_for`` returns {} for a share that has no server.
    """

    @abc.abstractmethod
    def reusable(self, share_id: str) -> str | None:
        """The id of an active server the share can use (kept from the unused
        cleanup for it), or None: then its network must be allocated."""

    @abc.abstractmethod
    def holds(self, allocation: dict) -> bool:
        """Whether a live server holds ``allocation`` (then the server gives it
        back when it goes, not the create that reserved it)."""

    @abc.abstractmethod
    def retire(self, share_id: str, server: dict) -> dict:
        """The share, being deleted, leaves its server; a server left without
        shares is deleted at once when so configured: then returns it (with
        its ``server_allocation`` to give back), else {}."""

    @abc.abstractmethod
    def take_down(self, server_id: str) -> dict:
        """Tear down a server no share uses (its row is the caller's); returns
        it with its ``server_allocation``."""

    @abc.abstractmethod
    def supervise(self) -> list[str]:
        """Bring back every active server that is not running (with its
        exports); returns their ids."""

    @abc.abstractmethod
    def stop_all(self) -> None:
        """Stop every server's NFS process (the supervisor's shutdown)."""
