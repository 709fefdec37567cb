"""Choosing a pool for a new share from the pools conductors reported.

The scheduler reads only the reports (``shareflow.db.pools.pool_states``):
an API node needs no backend configuration, and a pool not reported for
``stale_after`` seconds (its conductors dead or cut off) or whose share
service an admin disabled is never chosen.

Filters: the pool's DHSS mode matches the share type's, and it has room
(reported free space, and the space promised to its live shares, which is
never overcommitted). Weigher: most free space first (ties: the host's
configured order). Both figures are one row each (the conductor's report and
the pool's ``allocated_capacity_gb`` counter), so placing a share costs the
same however many a pool holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from shareflow.db import pools as pools_db
from shareflow.scheduler.pool_state import PoolState, backend_host, split_pool_host


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def stale_after_of(config) -> float:
    """``[scheduler] pool_stale_after`` where the configuration has it, else
    the default (:data:`shareflow.db.pools.DEFAULT_POOL_STALE_AFTER`)."""
    scheduler = getattr(config, "scheduler", None)
    value = getattr(scheduler, "pool_stale_after", None)
    return float(value) if value is not None else pools_db.DEFAULT_POOL_STALE_AFTER


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


def room_gb(pool: PoolState) -> float:
    """What the pool can still promise: reported free space, and never more
    than its total less what its live shares were promised."""
    return min(pool.free_capacity_gb, pool.total_capacity_gb - pool.allocated_capacity_gb)


class Scheduler:
    def __init__(self, *, stale_after: float = pools_db.DEFAULT_POOL_STALE_AFTER,
                 clock: Callable[[], datetime] = _utcnow):
        self._stale_after = stale_after
        self._clock = clock

    def pools(self, session: Session) -> list[PoolState]:
        """The pools the scheduler sees now (reported within ``stale_after``)."""
        return pools_db.pool_states(session, now=self._clock(), stale_after=self._stale_after)

    def place(self, session: Session, *, dhss: bool, size_gb: int) -> Placement | None:
        """The best pool for the share, or None when no pool can take it."""
        candidates = [
            p for p in self.pools(session)
            if p.enabled and bool(p.capabilities.get("driver_handles_share_servers")) == dhss
            and room_gb(p) >= size_gb
        ]
        if not candidates:
            return None
        best = max(candidates, key=lambda p: (room_gb(p), -p.config_order))
        return Placement.of_pool(best)

    def has_room(self, session: Session, host: str, increase_gb: int) -> bool:
        """Whether the pool ``host@backend#pool`` a share lives on can take
        ``increase_gb`` more (an extend), by the same measure as :meth:`place`;
        a pool not reported lately is given the benefit of the doubt (its
        driver decides when its conductors are back). A disabled service
        still extends its shares (it only takes no new ones)."""
        pool = pools_db.pool_state(session, host, now=self._clock(), stale_after=self._stale_after)
        if pool is None:
            return True
        return room_gb(pool) >= increase_gb
