"""What the scheduler decides on: the pools conductors reported, and a request.

Pure values, no I/O: the database layer builds :class:`PoolState` from the
conductors' reports (``shareflow.db.pools``), the share service builds a
:class:`RequestSpec` from the request and its share type, and the filters and
weighers (``shareflow.scheduler.filters`` / ``.weighers``) see nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def pool_host(service_host: str, backend: str, pool: str) -> str:
    """Manila's ``host@backend#pool``."""
    return f"{service_host}@{backend}#{pool}"


def backend_host(service_host: str, backend: str) -> str:
    """Manila's ``host@backend``: a share service, and the key of its job board."""
    return f"{service_host}@{backend}"


def split_pool_host(value: str) -> tuple[str, str, str]:
    """``host@backend#pool`` -> (host, backend, pool); ValueError when malformed."""
    service_host, sep, rest = value.partition("@")
    backend, sep2, pool = rest.partition("#")
    if not (sep and sep2 and service_host and backend and pool):
        raise ValueError(f"{value!r} is not host@backend#pool")
    return service_host, backend, pool


@dataclass(frozen=True)
class PoolState:
    """One pool as its conductors last reported it (Manila's ``PoolState``)."""

    #: ``host@backend#pool``
    host: str
    service_host: str
    backend: str
    pool: str
    availability_zone: str
    #: What the driver reports it can do, Manila's names:
    #: ``driver_handles_share_servers``, ``snapshot_support``,
    #: ``create_share_from_snapshot_support``, ``revert_to_snapshot_support``,
    #: ``thin_provisioning``, ``max_over_subscription_ratio``,
    #: ``reserved_percentage``, ``share_backend_name``, ``storage_protocol``,
    #: ``driver_name``, ``vendor_name``, ``driver_version``, and any
    #: driver-specific key (values as the driver gives them: bool, number, str).
    capabilities: Mapping[str, Any]
    total_capacity_gb: float
    free_capacity_gb: float
    #: Space promised to the pool's live shares (the ``pool_allocations`` counter).
    allocated_capacity_gb: float
    updated_at: datetime
    #: The backend's position in its host's configuration (for ``first_fit``).
    config_order: int = 0
    #: False while an admin has disabled the backend's share service.
    enabled: bool = True

    @property
    def backend_host(self) -> str:
        return backend_host(self.service_host, self.backend)


@dataclass(frozen=True)
class RequestSpec:
    """What a share asks of its pool."""

    size_gb: int
    share_proto: str = "NFS"
    share_type_id: str | None = None
    share_type_name: str | None = None
    #: The share type's extra specs, as stored (strings).
    extra_specs: Mapping[str, str] = field(default_factory=dict)
    availability_zone: str | None = None
    #: A share from a snapshot: the ``host@backend#pool`` of its snapshot's share.
    snapshot_host: str | None = None
    #: Pools already tried for this share (a reschedule skips them).
    ignore_hosts: frozenset[str] = frozenset()
    #: The ``same_host`` hint (2.65), resolved: the pools every named share
    #: is on; None when there is no such hint (AffinityFilter).
    same_host: frozenset[str] | None = None
    #: The ``different_host`` hint (2.65), resolved: the pools any named
    #: share is on (AntiAffinityFilter).
    different_host: frozenset[str] = frozenset()
    #: The ``only_host`` hint (2.67, an admin's): ``host@backend#pool`` or
    #: ``host@backend`` (OnlyHostFilter).
    only_host: str | None = None
