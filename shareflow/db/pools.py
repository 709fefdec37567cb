"""Queries on pool capacity: conductors' reports and the space promised to shares.

``pools`` holds what each conductor last reported (total and free);
``pool_allocations`` what the live shares of each backend's pool were
promised, kept by triggers on ``shares`` in the transaction of every write to
them (migration 0005). The scheduler reads both, one row each, however many
shares a pool holds.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import Pool, PoolAllocation, Share


def report(
    session: Session, *, host: str, backend: str, pool: str, dhss: bool,
    total_gb: int, free_gb: int, now: datetime,
) -> None:
    row = session.get(Pool, host)
    if row is None:
        row = Pool(host=host, backend=backend, pool=pool)
        session.add(row)
    row.driver_handles_share_servers = dhss
    row.total_capacity_gb = total_gb
    row.free_capacity_gb = free_gb
    row.updated_at = now
    session.flush()


def ensure_started(session: Session, *, host: str, backend: str, pool: str, dhss: bool,
                   total_gb: int, free_gb: int, now: datetime) -> None:
    """The pool's start-up ensure has begun (with the capacity it found, so a
    pool that has never reported gets its row): the last one's figures are
    cleared, so nobody reads them as this one's."""
    report(session, host=host, backend=backend, pool=pool, dhss=dhss, total_gb=total_gb,
           free_gb=free_gb, now=now)
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


def allocated_gb(session: Session, backend: str) -> int:
    """Space promised to the live shares of ``backend`` (its pool's
    ``allocated_capacity_gb``): each share's size, or the size an extend in
    progress asks for."""
    return int(session.scalar(
        sa.select(PoolAllocation.allocated_capacity_gb).where(PoolAllocation.backend == backend)
    ) or 0)


def recount_allocated_gb(session: Session, backend: str) -> int:
    """:func:`allocated_gb` summed over the share rows (what the counter must equal)."""
    promised = sa.case((sa.func.coalesce(Share.pending_size, 0) > Share.size, Share.pending_size),
                       else_=Share.size)
    q = sa.select(sa.func.coalesce(sa.func.sum(promised), 0)).where(
        Share.backend == backend, Share.deleted_at.is_(None)
    )
    return int(session.scalar(q))


def drifted(session: Session) -> dict[str, tuple[int, int]]:
    """Every backend whose counter differs from a recount of its live shares:
    ``{backend: (counter, recount)}``; empty when all is well."""
    backends = set(session.scalars(sa.select(PoolAllocation.backend)))
    backends |= {b for b in session.scalars(sa.select(Share.backend).distinct()) if b is not None}
    out = {}
    for backend in sorted(backends):
        counter, counted = allocated_gb(session, backend), recount_allocated_gb(session, backend)
        if counter != counted:
            out[backend] = (counter, counted)
    return out
