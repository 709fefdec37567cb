"""Queries on pool capacity reports."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import Pool


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


def list_(session: Session) -> list[Pool]:
    return list(session.scalars(sa.select(Pool).order_by(Pool.host)))


def get(session: Session, host: str) -> Pool | None:
    return session.get(Pool, host)
