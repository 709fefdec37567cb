"""The interfaces tasks call, one per role (DESIGN.md keeps the three apart):

* :class:`ShareDriver`   - storage: volumes (and later snapshots, clones, resize);
* :class:`ExportDriver`  - NFS exports of volumes on a share server, and their client lists;
* :class:`NetworkHelper` - the host's side of a share's network allocation;
* :class:`ServerHelper`  - supplies the share server a share is exported from
  (DHSS=false), and :class:`ShareServerHelper` makes share servers (DHSS=true).

Drivers know nothing of the database: tasks and services own the records and
hand drivers plain values (what to make, what was made); a test keeps any
``shareflow.db`` import out of ``shareflow/drivers``.

Every method is idempotent: a conductor may die at any instruction and the
next one calls the same method again. Creating looks first and returns what is
already there; deleting tolerates absence. Arguments and results are small
JSON values (ids, paths, lists of dicts) because tasks persist them.

Errors are the project's own (``shareflow.exceptions.BackendError`` and
subclasses), translated where the driver meets its tool; the ones callers in
other layers catch by type (:class:`ServerBusy`, :class:`ServerInUse`) are
defined here.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from shareflow.exceptions import BackendError, StorageError


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


class ServerBusy(BackendError):
    """Another create is making the share network's server on this backend;
    the caller waits (without the share network's lock) and asks again."""


class ServerInUse(BackendError):
    """Manila's ShareServerInUse."""

    def __init__(self, server_id: str):
        super().__init__(f"Share server {server_id} is in use.",
                         user_message=f"Share server {server_id} is in use.")


class NetworkHelper(abc.ABC):
    """The host's side of a share's network allocation. Which address a share
    server gets is the caller's to choose and record (from the share
    network's IP pool, ``shareflow.services.network_allocations``); the
    helper only gets the chosen values."""

    #: Whether a share's server needs an address of its share network (the
    #: caller then reserves one and hands it to :meth:`allocate`).
    needs_address: bool = False

    @abc.abstractmethod
    def allocate(self, share_id: str, allocation: dict) -> dict:
        """Prepare the host for ``allocation`` (the address the caller reserved
        for the share's server, with its network's ``prefixlen``, ``gateway``,
        ``bridge``, ``mtu``; {} when nothing was reserved); returns the JSON
        dict describing it for the server step (empty when nothing is needed)."""

    @abc.abstractmethod
    def release(self, allocation: dict) -> None:
        """Undo what ``allocate`` prepared on the host (the caller gives the
        address back). Already released: nothing to do."""


class ServerHelper(abc.ABC):
    """The one pre-existing server of a backend that does not handle share
    servers (DHSS=false)."""

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


class ShareServerHelper(abc.ABC):
    """Makes and unmakes share servers on this host (DHSS=true).

    It knows nothing of records: which servers exist, which shares use them
    and which address each holds are the caller's (tasks and services, over
    the database), who hands it plain values - a server's id (a canonical
    UUID) and its ``network``: ``network_id``, ``address``, ``prefixlen``,
    ``gateway``, ``bridge``, ``mtu``. Every method is idempotent: a half-made
    server is completed by calling :meth:`provide` again, a server gone is
    taken down again without error.
    """

    @abc.abstractmethod
    def provide(self, server_id: str, network: dict) -> dict:
        """Make the server on the host (or complete it) and start its NFS
        server; returns what was made (:meth:`backend_details`)."""

    @abc.abstractmethod
    def take_down(self, server_id: str) -> None:
        """Stop the server's NFS server and remove everything :meth:`provide`
        made for it, files included. Absent pieces: nothing to do."""

    @abc.abstractmethod
    def restore(self, server_id: str, network: dict, *,
                wanted: Callable[[str], bool] | None = None) -> bool:
        """Bring a server that should be running back as it was, exports
        included; False when it was running already, or when ``wanted`` (asked
        under the server's own lock, so that a teardown in progress wins) says
        it should no longer be."""

    @abc.abstractmethod
    def supervise(self, servers: Mapping[str, dict], *, workers: int = 1,
                  wanted: Callable[[str], bool] | None = None) -> list[str]:
        """:meth:`restore` every one of ``servers`` (id -> network) that is not
        running; returns the ids restored."""

    @abc.abstractmethod
    def stop_all(self, server_ids: Iterable[str]) -> None:
        """Take these servers off the host, keeping their files (a shutdown:
        :meth:`supervise` brings them back with their exports)."""

    @classmethod
    @abc.abstractmethod
    def backend_details(cls, server_id: str) -> dict[str, str]:
        """What the helper makes on the host for a server, as Manila's
        ``backend_details`` shows it (strings). From the id alone, so that an
        API node without the backend's configuration can show it."""
