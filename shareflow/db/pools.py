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
