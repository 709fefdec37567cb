"""Queries on quotas: a project's own limits, its usage, and the per-project
lock that serialises checking against them.

Usage is read from ``quota_usages`` (Manila's table), one row per project and
resource, which database triggers on ``shares`` and ``share_snapshots`` keep in
the transaction of every write to those rows (migration 0005), so a check
costs the same however many shares a project has, and the counters cannot
drift from what exists. :func:`recount` counts the live rows the slow way, for
an administrator's check (``shareflow db check-usage``) and the tests. What
counts:

* shares: live shares (``deleted_at`` null) not in ``error``, that is, every
  share that holds or will hold storage; a failed create gives its share back;
* gigabytes: over those shares, the larger of ``size`` and ``pending_size``
  (an extend in progress holds its new size until its job settles it);
* snapshots and snapshot_gigabytes: likewise over live snapshots not in ``error``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import Quota, QuotaUsage, Share, ShareSnapshot
from shareflow.domain import states

SHARES = "shares"
GIGABYTES = "gigabytes"
SNAPSHOTS = "snapshots"
SNAPSHOT_GIGABYTES = "snapshot_gigabytes"
#: The resources this service counts and enforces, in Manila's order.
RESOURCES = (SHARES, GIGABYTES, SNAPSHOTS, SNAPSHOT_GIGABYTES)
UNLIMITED = -1

#: Statuses that hold no storage and do not count against a quota.
NOT_COUNTED = (states.ERROR,)


def lock_project(session: Session, project_id: str) -> None:
    """Serialise quota checks of one project until this transaction ends.

    SQLite write transactions are already serial (``BEGIN IMMEDIATE``). On
    PostgreSQL (READ COMMITTED) two transactions could otherwise both count
    the same usage and both add to it; a transaction-scoped advisory lock on
    the project makes the second one wait until the first has committed, and
    its counts, each a new statement, then see the first one's rows.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(lock_key(project_id))))


def lock_key(project_id: str) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` (the same in every process)."""
    digest = hashlib.blake2b(f"shareflow-quota:{project_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def overrides(session: Session, project_id: str) -> dict[str, int]:
    """The project's own limits (only where they differ from the defaults)."""
    rows = session.scalars(sa.select(Quota).where(Quota.project_id == project_id))
    return {q.resource: q.hard_limit for q in rows if q.resource in RESOURCES}


def limits(session: Session, project_id: str, defaults: dict[str, int]) -> dict[str, int]:
    return {**defaults, **overrides(session, project_id)}


def usage(session: Session, project_id: str) -> dict[str, int]:
    """The project's counters (zero for a resource it never used)."""
    rows = session.execute(
        sa.select(QuotaUsage.resource, QuotaUsage.in_use).where(QuotaUsage.project_id == project_id)
    )
    used = dict.fromkeys(RESOURCES, 0)
    used.update({resource: int(in_use) for resource, in_use in rows if resource in used})
    return used


def recount(session: Session, project_id: str) -> dict[str, int]:
    """The project's usage counted from the live rows (what the counters of
    :func:`usage` must equal)."""
    shares = session.execute(
        sa.select(
            sa.func.count(Share.id),
            sa.func.coalesce(sa.func.sum(
                sa.case(
                    (sa.func.coalesce(Share.pending_size, 0) > Share.size, Share.pending_size),
                    else_=Share.size,
                )
            ), 0),
        ).where(
            Share.project_id == project_id, Share.deleted_at.is_(None),
            Share.status.not_in(NOT_COUNTED),
        )
    ).one()
    snapshots = session.execute(
        sa.select(sa.func.count(ShareSnapshot.id), sa.func.coalesce(sa.func.sum(ShareSnapshot.size), 0))
        .where(
            ShareSnapshot.project_id == project_id, ShareSnapshot.deleted_at.is_(None),
            ShareSnapshot.status.not_in(NOT_COUNTED),
        )
    ).one()
    return {
        SHARES: int(shares[0]), GIGABYTES: int(shares[1]),
        SNAPSHOTS: int(snapshots[0]), SNAPSHOT_GIGABYTES: int(snapshots[1]),
    }


def set_limits(session: Session, project_id: str, values: dict[str, int], *, now: datetime) -> None:
    for resource, limit in values.items():
        row = session.get(Quota, (project_id, resource))
        if row is None:
            session.add(Quota(project_id=project_id, resource=resource, hard_limit=limit, created_at=now))
        else:
            row.hard_limit = limit
            row.updated_at = now
    session.flush()


def delete_all(session: Session, project_id: str) -> None:
    """Back to the defaults."""
    session.execute(sa.delete(Quota).where(Quota.project_id == project_id))


def drifted(session: Session) -> dict[str, tuple[dict[str, int], dict[str, int]]]:
    """Every project whose counters differ from a recount of its live rows:
    ``{project: (counters, recount)}``; empty when all is well."""
    projects = set(session.scalars(sa.select(QuotaUsage.project_id).distinct()))
    projects |= set(session.scalars(sa.select(Share.project_id).distinct()))
    projects |= set(session.scalars(sa.select(ShareSnapshot.project_id).distinct()))
    out = {}
    for project_id in sorted(projects):
        counters, counted = usage(session, project_id), recount(session, project_id)
        if counters != counted:
            out[project_id] = (counters, counted)
    return out
