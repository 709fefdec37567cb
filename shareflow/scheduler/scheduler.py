"""Choosing a pool for a new share from the pools conductors reported.

The scheduler reads only the reports (``shareflow.db.pools.pool_states``):
an API node needs no backend configuration, and a pool not reported for
``[scheduler] pool_stale_after`` seconds (its conductors dead or cut off) is
never seen. What is chosen among the rest is the filter scheduler's decision
(``shareflow.scheduler.filter_scheduler``: the configured filters, then the
configured weighers; a disabled share service is removed by its mandatory
ServiceEnabledFilter), on a :class:`RequestSpec` built by
:func:`request_spec` from the request and its share type. Every figure is one
row per pool (the conductor's report and the pool's ``allocated_capacity_gb``
counter), so placing a share costs the same however many a pool holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from shareflow.db import pools as pools_db
from shareflow.scheduler import capacity
from shareflow.scheduler.filter_scheduler import Decision, FilterScheduler
from shareflow.scheduler.pool_state import PoolState, RequestSpec, backend_host, split_pool_host


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def stale_after_of(config) -> float:
    """``[scheduler] pool_stale_after``."""
    return float(config.scheduler.pool_stale_after)


@dataclass(frozen=True)
class Placement:
    """Where a share goes: the pool ``host@backend#pool`` and its parts."""

    host: str
    service_host: str
    backend: str
    driver_handles_share_servers: bool = False
    availability_zone: str | None = None

    @property
    def backend_host(self) -> str:
        """``host@backend``: the share service, whose board its jobs go to."""
        return backend_host(self.service_host, self.backend)

    @classmethod
    def of_pool(cls, pool: PoolState) -> Placement:
        return cls(host=pool.host, service_host=pool.service_host, backend=pool.backend,
                   driver_handles_share_servers=bool(pool.capabilities.get("driver_handles_share_servers")),
                   availability_zone=pool.availability_zone or None)

    @classmethod
    def of_share(cls, share) -> Placement | None:
        """Where an existing share is (its row's ``host``); None when it never
        was placed or its host is not ``host@backend#pool``."""
        try:
            service_host, backend, _pool = split_pool_host(share.host or "")
        except ValueError:
            return None
        return cls(host=share.host, service_host=service_host, backend=backend,
                   driver_handles_share_servers=share.share_network_id is not None,
                   availability_zone=share.availability_zone)


def request_spec(*, size_gb: int, share_proto: str, share_type=None,
                 availability_zone: str | None = None, snapshot_host: str | None = None,
                 ignore_hosts: Iterable[str] = (), same_host: Iterable[str] | None = None,
                 different_host: Iterable[str] = (), only_host: str | None = None) -> RequestSpec:
    """What a share asks of its pool: the request's size, protocol and zone,
    its share type's id, name and extra specs (``share_type``: a
    ``ShareType`` row, or None), the pool of its snapshot for a share made
    from one, the pools already tried, and the create's scheduler hints
    resolved to pools (``shareflow.services.scheduler_hints.resolve``)."""
    specs: Mapping[str, str] = share_type.specs() if share_type is not None else {}
    return RequestSpec(
        size_gb=int(size_gb), share_proto=share_proto,
        share_type_id=share_type.id if share_type is not None else None,
        share_type_name=share_type.name if share_type is not None else None,
        extra_specs=dict(specs), availability_zone=availability_zone,
        snapshot_host=snapshot_host, ignore_hosts=frozenset(ignore_hosts),
        same_host=frozenset(same_host) if same_host is not None else None,
        different_host=frozenset(different_host), only_host=only_host,
    )


class Scheduler:
    def __init__(self, filter_scheduler: FilterScheduler, *,
                 stale_after: float = pools_db.DEFAULT_POOL_STALE_AFTER,
                 clock: Callable[[], datetime] = _utcnow):
        self._filter_scheduler = filter_scheduler
        self._stale_after = stale_after
        self._clock = clock

    @classmethod
    def from_config(cls, config, *, clock: Callable[[], datetime] = _utcnow) -> Scheduler:
        """From the whole ``shareflow.config.Config`` (its ``[scheduler]``)."""
        return cls(FilterScheduler.from_config(config.scheduler), stale_after=stale_after_of(config),
                   clock=clock)

    def pools(self, session: Session) -> list[PoolState]:
        """The pools the scheduler sees now (reported within ``stale_after``)."""
        return pools_db.pool_states(session, now=self._clock(), stale_after=self._stale_after)

    def decide(self, session: Session, spec: RequestSpec) -> Decision:
        """The filter scheduler's whole decision over the pools seen now."""
        return self._filter_scheduler.decide(self.pools(session), spec)

    def place(self, session: Session, spec: RequestSpec) -> Placement:
        """The best pool for the request; :class:`shareflow.exceptions.NoValidHost`
        (naming the filter that removed the last pools) when none passes."""
        return Placement.of_pool(self._filter_scheduler.select(self.pools(session), spec))

    def has_room(self, session: Session, host: str, increase_gb: int,
                 extra_specs: Mapping[str, str] | None = None) -> bool:
        """Whether the pool ``host@backend#pool`` a share lives on can take
        ``increase_gb`` more (an extend), by the CapacityFilter's measure
        (``capacity.can_hold``: thick or thin as the pool and the share's type
        say). Only capacity is asked: the share cannot move, so the other
        filters (zone, capabilities, retry) have nothing to decide. A pool not
        reported lately is given the benefit of the doubt (its driver decides
        when its conductors are back), and so is one whose figures are
        unusable. A disabled share service still extends its shares: disabling
        means "no new shares here", and an existing share has nowhere else to
        grow (shareflow does not migrate shares), so refusing would only strand
        its owner (Manila's extend also skips the service-enabled check)."""
        pool = pools_db.pool_state(session, host, now=self._clock(), stale_after=self._stale_after)
        if pool is None:
            return True
        try:
            return capacity.can_hold(pool, increase_gb, extra_specs or {})
        except capacity.UnknownCapacity:
            return True
