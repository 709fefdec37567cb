"""Queries on share snapshots.

A snapshot row is the truth about the snapshot: its ``status`` (Manila's) and
its ``size`` (the share's size when it was taken), which quotas count. Deleted
snapshots keep their row with ``deleted_at`` set (soft delete), like shares.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db import listing
from shareflow.db.models import Share, ShareSnapshot
from shareflow.db.transitions import transition
from shareflow.domain import states
from shareflow.exceptions import NotFound


def not_found(snapshot_id: str) -> NotFound:
    """Manila's ShareSnapshotNotFound."""
    return NotFound(f"Snapshot {snapshot_id} could not be found.")


def get(session: Session, snapshot_id: str, project_id: str | None = None) -> ShareSnapshot:
    """The live snapshot, seen by ``project_id`` (None = admin: any project)."""
    snap = session.get(ShareSnapshot, snapshot_id) if isinstance(snapshot_id, str) else None
    if snap is None or snap.deleted_at is not None or (
        project_id is not None and snap.project_id != project_id
    ):
        raise not_found(snapshot_id)
    return snap


def get_any(session: Session, snapshot_id: str) -> ShareSnapshot | None:
    """Including deleted rows; for jobs finishing after the fact."""
    return session.get(ShareSnapshot, snapshot_id)


def list_(
    session: Session,
    project_id: str | None,
    *,
    filters: dict | None = None,
    sort_key: str = "created_at",
    sort_dir: str = "desc",
    limit: int | None = None,
    offset: int = 0,
    marker: str | None = None,
) -> list[ShareSnapshot]:
    """One page in SQL; with a ``marker`` it starts right after that snapshot
    and ``offset`` is not applied (as for shares)."""
    q = sa.select(ShareSnapshot).where(ShareSnapshot.deleted_at.is_(None))
    owner = [] if project_id is None else [ShareSnapshot.project_id == project_id]
    q = q.where(*owner)
    for key, value in (filters or {}).items():
        q = q.where(listing.where(ShareSnapshot, key, value))
    if marker is not None:
        q = q.where(listing.after_marker(session, ShareSnapshot, marker, sort_key, sort_dir, owner))
        offset = 0
    return listing.page(session, q, ShareSnapshot, sort_key=sort_key, sort_dir=sort_dir, limit=limit, offset=offset)


def for_share(session: Session, share_id: str) -> list[ShareSnapshot]:
    """The share's live snapshots, newest first (Manila's
    ``share_snapshot_get_all_for_share`` / ``get_latest_for_share``)."""
    q = (
        sa.select(ShareSnapshot)
        .where(ShareSnapshot.share_id == share_id, ShareSnapshot.deleted_at.is_(None))
        .order_by(ShareSnapshot.created_at.desc(), ShareSnapshot.id.desc())
    )
    return list(session.scalars(q))


def count_for_share(session: Session, share_id: str) -> int:
    q = sa.select(sa.func.count()).select_from(ShareSnapshot).where(
        ShareSnapshot.share_id == share_id, ShareSnapshot.deleted_at.is_(None)
    )
    return int(session.scalar(q))


def usage(session: Session, project_id: str) -> tuple[int, int]:
    """(snapshots, gigabytes) of a project's live snapshots, whatever their
    status: what the ``snapshots`` and ``snapshot_gigabytes`` quotas count."""
    q = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(ShareSnapshot.size), 0)).where(
        ShareSnapshot.project_id == project_id, ShareSnapshot.deleted_at.is_(None)
    )
    count, gigabytes = session.execute(q).one()
    return int(count), int(gigabytes)


def hold_available_share(session: Session, share_id: str) -> bool:
    """Whether the share is available, taking its row's write lock for the
    rest of the transaction (a no-op update): a snapshot is only added to a
    share whose status a concurrent request cannot change meanwhile."""
    stmt = (
        sa.update(Share)
        .where(Share.id == share_id, Share.status == states.AVAILABLE, Share.deleted_at.is_(None))
        .values(status=Share.status)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def create(session: Session, *, now: datetime, **fields) -> ShareSnapshot:
    snap = ShareSnapshot(created_at=now, **fields)
    session.add(snap)
    session.flush()
    return snap


def hard_delete(session: Session, snapshot_id: str) -> None:
    """Remove a snapshot whose job could not be posted (nothing ran)."""
    session.execute(sa.delete(ShareSnapshot).where(ShareSnapshot.id == snapshot_id))


def set_status(session: Session, snapshot_id: str, target: str, *, now: datetime, expected=None,
               **values) -> bool:
    """Conditional: ``target`` only from a status it may be reached from."""
    return transition(session, ShareSnapshot, snapshot_id, states.SNAPSHOT, target, now=now,
                      expected=expected, values=values)


def force_status(session: Session, snapshot_id: str, target: str, *, now: datetime) -> bool:
    """An admin's reset: any live snapshot to ``target``, whatever its status."""
    stmt = (
        sa.update(ShareSnapshot)
        .where(ShareSnapshot.id == snapshot_id, ShareSnapshot.deleted_at.is_(None))
        .values(status=target, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def release_restoring(session: Session, share_id: str, *, now: datetime) -> int:
    """The share's snapshots that are ``restoring`` back to ``available`` (a
    revert of the share ended); returns how many."""
    stmt = (
        sa.update(ShareSnapshot)
        .where(ShareSnapshot.share_id == share_id, ShareSnapshot.status == states.RESTORING,
               ShareSnapshot.deleted_at.is_(None))
        .values(status=states.AVAILABLE, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount


def mark_deleted(session: Session, snapshot_id: str, *, now: datetime) -> bool:
    """DELETING -> deleted: the row stays (soft delete)."""
    return set_status(session, snapshot_id, states.DELETED, now=now, deleted_at=now)


def update_fields(session: Session, snap: ShareSnapshot, *, now: datetime, **fields) -> ShareSnapshot:
    for k, v in fields.items():
        setattr(snap, k, v)
    snap.updated_at = now
    session.flush()
    return snap
