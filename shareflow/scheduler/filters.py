"""The scheduler's filters: each says whether one pool may take one request.

Each is a small class with Manila's class name as ``name`` and a pure
``passes(pool, spec)``; the scheduler keeps the pools every configured filter
passes, in the configured order (``shareflow.scheduler.filter_scheduler``).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from shareflow.scheduler import capabilities as caps
from shareflow.scheduler import capacity, evaluator
from shareflow.scheduler.pool_state import PoolState, RequestSpec

LOG = logging.getLogger(__name__)


class BaseFilter:
    #: The name the configuration uses (Manila's class name).
    name: ClassVar[str] = ""
    #: Manila's user message detail for "this filter removed the last pools"
    #: (``manila/message/message_field.py``), and the filter's word in it.
    detail_id: ClassVar[str] = "002"
    detail_word: ClassVar[str | None] = None

    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        raise NotImplementedError


class ServiceEnabledFilter(BaseFilter):
    """Drops pools whose share service an admin disabled (``backend
    disable``): in Manila these never reach the filters at all."""

    name = "ServiceEnabledFilter"

    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        return pool.enabled


class RetryFilter(BaseFilter):
    """Drops pools this share was already tried on (a reschedule)."""

    name = "RetryFilter"
    detail_id, detail_word = "013", "Retry"

    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        return pool.host not in spec.ignore_hosts


class AvailabilityZoneFilter(BaseFilter):
    """The pool is in the zone the request names, and among the zones its
    share type allows (the ``availability_zones`` extra spec: a
    comma-separated list)."""

    name = "AvailabilityZoneFilter"
    detail_id, detail_word = "007", "AvailabilityZone"

    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        if spec.availability_zone is not None and pool.availability_zone != spec.availability_zone:
            return False
        allowed = spec.extra_specs.get(caps.AVAILABILITY_ZONES)
        if allowed is None:
            allowed = spec.extra_specs.get(f"{caps.SCOPE_CAPABILITIES}:{caps.AVAILABILITY_ZONES}")
        if allowed:
            zones = {z.strip() for z in allowed.split(",") if z.strip()}
            return pool.availability_zone in zones
        return True


class CapacityFilter(BaseFilter):
    """The pool has room for the share: thick pools by what is free and not
    yet promised, less the reserved percentage; thin pools (the pool reports
    ``thin_provisioning`` and the type does not say false) up to
    ``max_over_subscription_ratio`` times their size
    (``shareflow.scheduler.capacity``)."""

    name = "CapacityFilter"
    detail_id, detail_word = "009", "Capacity"

    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        try:
            return capacity.can_hold(pool, spec.size_gb, spec.extra_specs)
        except capacity.UnknownCapacity as e:
            LOG.warning("CapacityFilter: %s: pool skipped", e)
            return False


class CapabilitiesFilter(BaseFilter):
    """The pool's capabilities satisfy the share type's extra specs
    (``shareflow.scheduler.capabilities``), ``driver_handles_share_servers``
    included."""

    name = "CapabilitiesFilter"
    detail_id, detail_word = "008", "Capabilities"

    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        missing = caps.unmet(pool.capabilities, caps.scheduler_extra_specs(spec))
        if missing is not None:
            LOG.debug("CapabilitiesFilter: %s does not satisfy %s=%s", pool.host, *missing)
            return False
        return True


FILTER_FUNCTION = "filter_function"


def driver_filter_variables(pool: PoolState, spec: RequestSpec) -> dict[str, dict[str, Any]]:
    """What a filter function can read (Manila's ``generate_stats``)."""
    c = pool.capabilities
    stats = {
        "host": pool.host,
        "share_backend_name": c.get("share_backend_name", pool.backend),
        "vendor_name": c.get("vendor_name"),
        "driver_version": c.get("driver_version"),
        "storage_protocol": c.get("storage_protocol"),
        "total_capacity_gb": pool.total_capacity_gb,
        "free_capacity_gb": pool.free_capacity_gb,
        "allocated_capacity_gb": pool.allocated_capacity_gb,
        "provisioned_capacity_gb": pool.allocated_capacity_gb,
        "reserved_percentage": c.get(capacity.RESERVED_PERCENTAGE, capacity.DEFAULT_RESERVED_PERCENTAGE),
        "max_over_subscription_ratio": c.get(capacity.MAX_OVER_SUBSCRIPTION_RATIO,
                                             capacity.DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO),
        "thin_provisioning": capacity.thin_capable(pool),
        "driver_handles_share_servers": c.get(caps.DHSS),
        "snapshot_support": c.get("snapshot_support", False),
        "create_share_from_snapshot_support": c.get("create_share_from_snapshot_support", False),
        "revert_to_snapshot_support": c.get("revert_to_snapshot_support", False),
        "availability_zone": pool.availability_zone,
    }
    share = {
        "size": spec.size_gb,
        "share_proto": spec.share_proto,
        "availability_zone": spec.availability_zone,
        "share_type_id": spec.share_type_id,
    }
    return {"share": share, "stats": stats, "capabilities": dict(c), "extra": dict(spec.extra_specs)}


class DriverFilter(BaseFilter):
    """The pool's own ``filter_function`` capability, if it reports one,
    accepts the request (evaluated by ``shareflow.scheduler.evaluator``; a
    function that is malformed or fails rejects the pool, as in Manila)."""

    name = "DriverFilter"
    detail_id, detail_word = "010", "Driver"

    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        function = pool.capabilities.get(FILTER_FUNCTION)
        if function is None:
            return True
        try:
            result = evaluator.parse(str(function)).evaluate(driver_filter_variables(pool, spec))
        except evaluator.EvaluatorError as e:
            LOG.warning("DriverFilter: %s: error in filter function %r: %s: pool skipped",
                        pool.host, function, e)
            return False
        return bool(result)


class CreateFromSnapshotFilter(BaseFilter):
    """A share made from a snapshot goes to its snapshot's pool. (Manila also
    allows any pool of the snapshot's backend, or of its replication domain;
    shareflow's drivers clone within a pool only.)"""

    name = "CreateFromSnapshotFilter"
    detail_id, detail_word = "016", "CreateFromSnapshot"

    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        return spec.snapshot_host is None or pool.host == spec.snapshot_host


class AffinityFilter(BaseFilter):
    """The ``same_host`` scheduler hint (2.65): the pool holds every share
    the hint names (Manila compares the pool's ``host@backend#pool`` with
    the named shares' hosts, as here). A named share gone or never placed
    leaves no pool (Manila stops scheduling then)."""

    name = "AffinityFilter"
    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        return spec.same_host is None or pool.host in spec.same_host


class AntiAffinityFilter(BaseFilter):
    """The ``different_host`` scheduler hint (2.65): the pool holds none of
    the shares the hint names."""

    name = "AntiAffinityFilter"
    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        return pool.host not in spec.different_host


class OnlyHostFilter(BaseFilter):
    """The ``only_host`` scheduler hint (2.67, honoured for admins only: the
    API drops it for anyone else): the pool is the one named
    (``host@backend#pool``), or one of the backend named (``host@backend``)."""

    name = "OnlyHostFilter"
    def passes(self, pool: PoolState, spec: RequestSpec) -> bool:
        if spec.only_host is None:
            return True
        return spec.only_host in (pool.host, pool.backend_host)


#: Every filter, by name.
FILTERS: dict[str, type[BaseFilter]] = {
    cls.name: cls
    for cls in (ServiceEnabledFilter, RetryFilter, AvailabilityZoneFilter, CapacityFilter,
                CapabilitiesFilter, DriverFilter, CreateFromSnapshotFilter, AffinityFilter,
                AntiAffinityFilter, OnlyHostFilter)
}
