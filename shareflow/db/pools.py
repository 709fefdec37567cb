"""Pools as their conductors report them, and the space promised to shares.

``pools`` holds what the conductors of each host last reported of each pool
``host@backend#pool`` (capacity, capabilities, zone, configured order);
``services`` the heartbeat of each share service ``host@backend`` and whether
an admin disabled it; ``pool_allocations`` what the live shares of each pool
were promised, kept by triggers on ``shares`` in the transaction of every
write to them (migrations 0005, 0008). :func:`pool_states` makes of them the
:class:`~shareflow.scheduler.pool_state.PoolState` values the scheduler
decides on: one row each per pool, however many shares a pool holds.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow import config as config_defaults
from shareflow.db import share_services
from shareflow.db.models import Pool, PoolAllocation, Service, Share
from shareflow.scheduler.pool_state import PoolState, split_pool_host

LOG = logging.getLogger(__name__)

#: Seconds after its last report a pool is no longer offered to the
#: scheduler (``[scheduler] pool_stale_after``). Reports come every
#: housekeeping interval (30 s at most), so three are missed first.
DEFAULT_POOL_STALE_AFTER = config_defaults.DEFAULT_POOL_STALE_AFTER


def report(
    session: Session, *, host: str, backend: str, pool: str, dhss: bool,
    total_gb: int, free_gb: int, now: datetime, capabilities: dict | None = None,
    availability_zone: str | None = None, config_order: int = 0,
) -> None:
    """A conductor's report of the pool ``host`` (``host@backend#pool``), and
    the heartbeat of its share service ``host@backend``."""
    row = session.get(Pool, host)
    if row is None:
        row = Pool(host=host, backend=backend, pool=pool)
        session.add(row)
    row.driver_handles_share_servers = dhss
    row.total_capacity_gb = total_gb
    row.free_capacity_gb = free_gb
    row.updated_at = now
    if capabilities is not None:
        row.capabilities = json.dumps(capabilities, sort_keys=True)
    if availability_zone is not None:
        row.availability_zone = availability_zone
    row.config_order = config_order
    session.flush()
    share_services.heartbeat(session, host.partition("#")[0], availability_zone=availability_zone, now=now)


def ensure_started(session: Session, *, host: str, backend: str, pool: str, dhss: bool,
                   total_gb: int, free_gb: int, now: datetime, **reported) -> None:
    """The pool's start-up ensure has begun (with the capacity it found, so a
    pool that has never reported gets its row): the last one's figures are
    cleared, so nobody reads them as this one's."""
    report(session, host=host, backend=backend, pool=pool, dhss=dhss, total_gb=total_gb,
           free_gb=free_gb, now=now, **reported)
    row = session.get(Pool, host)
    row.ensure_started_at = now
    row.ensure_finished_at = None
    row.ensure_seconds = None
    row.ensure_volumes = None
    row.ensure_failures = None
    session.flush()


def ensure_finished(session: Session, *, host: str, now: datetime, seconds: float, volumes: int,
                    failures: int) -> None:
    row = session.get(Pool, host)
    if row is None:
        return  # the row is made when the ensure starts; gone meanwhile: nothing to record on
    row.ensure_finished_at = now
    row.ensure_seconds = seconds
    row.ensure_volumes = volumes
    row.ensure_failures = failures
    session.flush()


def list_(session: Session) -> list[Pool]:
    return list(session.scalars(sa.select(Pool).order_by(Pool.host)))


def get(session: Session, host: str) -> Pool | None:
    return session.get(Pool, host)


def capabilities(row: Pool) -> dict:
    """The reported capabilities of a pool row; a row from before migration
    0008 (or unreadable JSON) has only what its columns say."""
    found = {}
    if row.capabilities:
        try:
            found = json.loads(row.capabilities)
        except ValueError:
            LOG.warning("pool %s: capabilities are not JSON; ignored", row.host)
        if not isinstance(found, dict):
            found = {}
    found.setdefault("driver_handles_share_servers", row.driver_handles_share_servers)
    found.setdefault("share_backend_name", row.backend)
    return found


def state(row: Pool, *, allocated_gb: int, enabled: bool) -> PoolState:
    try:
        service_host, backend, pool = split_pool_host(row.host)
    except ValueError:
        service_host, backend, pool = row.host, row.backend, row.pool
    return PoolState(
        host=row.host, service_host=service_host, backend=backend, pool=pool,
        availability_zone=row.availability_zone or "", capabilities=capabilities(row),
        total_capacity_gb=float(row.total_capacity_gb), free_capacity_gb=float(row.free_capacity_gb),
        allocated_capacity_gb=float(allocated_gb), updated_at=row.updated_at,
        config_order=row.config_order or 0, enabled=enabled,
    )


def pool_states(session: Session, *, now: datetime,
                stale_after: float | None = DEFAULT_POOL_STALE_AFTER) -> list[PoolState]:
    """Every pool reported within ``stale_after`` seconds of ``now`` (None:
    every pool ever reported), with its allocated counter and whether its
    share service is enabled; in the order of their hosts. One statement."""
    # Whether the pool's share service (its key before the '#') is disabled,
    # in the same statement: reading the few services with one of their own
    # cost a round trip more on PostgreSQL (place_share's critical path).
    disabled = sa.exists().where(
        Service.binary == share_services.SHARE_BINARY, Service.disabled.is_(True),
        sa.func.substr(Pool.host, 1, sa.func.length(Service.host) + 1) == Service.host.concat("#"),
    )
    q = sa.select(Pool, PoolAllocation.allocated_capacity_gb, disabled).outerjoin(
        PoolAllocation, PoolAllocation.host == Pool.host).order_by(Pool.host)
    if stale_after is not None:
        q = q.where(Pool.updated_at >= now - timedelta(seconds=stale_after))
    return [
        state(row, allocated_gb=int(allocated or 0), enabled=not off)
        for row, allocated, off in session.execute(q).all()
    ]


def pool_state(session: Session, host: str, *,
               now: datetime, stale_after: float | None = DEFAULT_POOL_STALE_AFTER) -> PoolState | None:
    """The pool ``host@backend#pool`` if reported within ``stale_after``."""
    row = session.get(Pool, host)
    if row is None or (stale_after is not None and row.updated_at < now - timedelta(seconds=stale_after)):
        return None
    service = share_services.get(session, host.partition("#")[0])
    return state(row, allocated_gb=allocated_gb(session, host),
                 enabled=service is None or not service.disabled)


def allocated_gb(session: Session, host: str) -> int:
    """Space promised to the live shares of the pool ``host@backend#pool``
    (its ``allocated_capacity_gb``): each share's size, or the size an
    extend in progress asks for."""
    return int(session.scalar(
        sa.select(PoolAllocation.allocated_capacity_gb).where(PoolAllocation.host == host)
    ) or 0)


def recount_allocated_gb(session: Session, host: str) -> int:
    """:func:`allocated_gb` summed over the share rows (what the counter must equal)."""
    promised = sa.case((sa.func.coalesce(Share.pending_size, 0) > Share.size, Share.pending_size),
                       else_=Share.size)
    q = sa.select(sa.func.coalesce(sa.func.sum(promised), 0)).where(
        Share.host == host, Share.deleted_at.is_(None)
    )
    return int(session.scalar(q))


def shares_count(session: Session, host: str) -> int:
    """Live shares on the pool ``host@backend#pool``."""
    return int(session.scalar(sa.select(sa.func.count()).select_from(Share).where(
        Share.host == host, Share.deleted_at.is_(None))))


def drifted(session: Session) -> dict[str, tuple[int, int]]:
    """Every pool whose counter differs from a recount of its live shares:
    ``{host@backend#pool: (counter, recount)}``; empty when all is well."""
    pools = set(session.scalars(sa.select(PoolAllocation.host)))
    pools |= {h for h in session.scalars(sa.select(Share.host).distinct()) if h is not None}
    out = {}
    for host in sorted(pools):
        counter, counted = allocated_gb(session, host), recount_allocated_gb(session, host)
        if counter != counted:
            out[host] = (counter, counted)
    return out
