"""The ids of share instances and snapshot instances.

shareflow has one instance per share and one per snapshot (no replication,
no migration), so an instance is its share (snapshot) seen through Manila's
instance API. Its id is not stored: it is the share's (snapshot's) id with a
fixed mask XORed into it. That is

* stable and real: the same instance id for the share's whole life, on every
  API node, without a column, a migration or a back-fill of existing rows;
* reversible in O(1): ``GET /share_instances/{id}`` finds its share by
  primary key (a name-based uuid5 would need a stored copy or a scan);
* distinct from the share id, as in Manila, so a client mixing the two gets
  Manila's 404 instead of silently acting on the wrong kind of resource;
* still a well-formed RFC 4122 UUID of the share id's version: the mask
  leaves the version nibble and the variant bits alone.

Pure: no I/O.
"""

from __future__ import annotations

import uuid

# Bits 76-79 (version) and 62-63 (variant) of the 128-bit integer stay as they are.
_KEEP = (0xF << 76) | (0x3 << 62)


def _mask(name: str) -> int:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"shareflow:{name}").int & ~_KEEP & ((1 << 128) - 1)


_SHARE_INSTANCE = _mask("share_instance")
_SNAPSHOT_INSTANCE = _mask("share_snapshot_instance")


def _flip(value: str, mask: int) -> str | None:
    try:
        return str(uuid.UUID(int=uuid.UUID(value).int ^ mask))
    except (ValueError, TypeError, AttributeError):
        return None


def share_instance_id(share_id: str) -> str:
    """The id of the one instance of share ``share_id``."""
    return _flip(share_id, _SHARE_INSTANCE) or share_id


def share_of_instance(instance_id: str) -> str | None:
    """The share whose instance ``instance_id`` would be; None when it is not
    a UUID (no instance has that id)."""
    return _flip(instance_id, _SHARE_INSTANCE)


def snapshot_instance_id(snapshot_id: str) -> str:
    return _flip(snapshot_id, _SNAPSHOT_INSTANCE) or snapshot_id


def snapshot_of_instance(instance_id: str) -> str | None:
    return _flip(instance_id, _SNAPSHOT_INSTANCE)
