"""Queries on share group types, share groups and share group snapshots."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import (
    Share,
    ShareGroup,
    ShareGroupShareType,
    ShareGroupSnapshot,
    ShareGroupSnapshotMember,
    ShareGroupType,
    ShareGroupTypeProject,
    ShareGroupTypeShareType,
    ShareGroupTypeSpec,
)
from shareflow.db.type_common import TypeTables
from shareflow.exceptions import Conflict, NotFound

#: Visibility, access lists and specs as share types have them (:mod:`shareflow.db.type_common`).
TYPE_TABLES = TypeTables("share group type", ShareGroupType, ShareGroupTypeProject, "share_group_type_id",
                         ShareGroupTypeSpec, "group_specs")

# --- group types -------------------------------------------------------------------


def get_type(session: Session, type_id: str) -> ShareGroupType:
    gt = session.get(ShareGroupType, type_id) if isinstance(type_id, str) else None
    if gt is None or gt.deleted_at is not None:
        raise NotFound(f"Share group type {type_id} could not be found.",
                       user_message=f"Share group type with id {type_id} not found.")
    return gt


def type_by_name(session: Session, name: str) -> ShareGroupType | None:
    q = sa.select(ShareGroupType).where(ShareGroupType.name == name, ShareGroupType.deleted_at.is_(None))
    return session.scalars(q).first()


def create_type(session: Session, *, now: datetime, type_id: str, name: str, share_type_ids: list[str],
                specs: dict[str, str], is_public: bool) -> ShareGroupType:
    if type_by_name(session, name) is not None:
        raise Conflict(f"Share group type with name {name} already exists.")
    gt = ShareGroupType(id=type_id, name=name, is_public=is_public, created_at=now)
    gt.group_specs = [ShareGroupTypeSpec(key=k, value=v) for k, v in specs.items()]
    gt.share_types = [ShareGroupTypeShareType(share_type_id=t) for t in share_type_ids]
    session.add(gt)
    session.flush()
    return gt


def types_with_share_type(session: Session, share_type_id: str) -> int:
    """Live share group types that admit the share type."""
    q = (sa.select(sa.func.count()).select_from(ShareGroupTypeShareType)
         .join(ShareGroupType, ShareGroupType.id == ShareGroupTypeShareType.share_group_type_id)
         .where(ShareGroupTypeShareType.share_type_id == share_type_id, ShareGroupType.deleted_at.is_(None)))
    return session.scalar(q)


def type_in_use(session: Session, type_id: str) -> bool:
    q = sa.select(sa.func.count()).select_from(ShareGroup).where(
        ShareGroup.share_group_type_id == type_id, ShareGroup.deleted_at.is_(None))
    return session.scalar(q) > 0


# --- groups --------------------------------------------------------------------------


def get_group(session: Session, group_id: str, scope: str | None) -> ShareGroup:
    """A live group of project ``scope`` (None: any project)."""
    group = session.get(ShareGroup, group_id) if isinstance(group_id, str) else None
    if group is None or group.deleted_at is not None or (scope is not None and group.project_id != scope):
        raise NotFound(f"Share group {group_id} not found.")
    return group


def create_group(session: Session, *, now: datetime, share_type_ids: list[str], **fields) -> ShareGroup:
    group = ShareGroup(created_at=now, **fields)
    group.share_types = [ShareGroupShareType(share_type_id=t) for t in share_type_ids]
    session.add(group)
    session.flush()
    return group


def list_groups(session: Session, scope: str | None, filters: dict, *, sort_key: str = "created_at",
                sort_dir: str = "desc") -> list[ShareGroup]:
    q = sa.select(ShareGroup).where(ShareGroup.deleted_at.is_(None))
    if scope is not None:
        q = q.where(ShareGroup.project_id == scope)
    for key, value in filters.items():
        if key.endswith("~"):
            q = q.where(getattr(ShareGroup, key[:-1]).contains(value, autoescape=True))
        else:
            q = q.where(getattr(ShareGroup, key) == value)
    column = getattr(ShareGroup, sort_key)
    q = q.order_by(column.desc() if sort_dir == "desc" else column.asc(), ShareGroup.id)
    return list(session.scalars(q))


def hold_available_group(session: Session, group_id: str) -> bool:
    """Whether the group is available, taking its row's write lock for the
    rest of the transaction (a no-op update): a share or group snapshot is
    only added to a group whose delete cannot pass meanwhile (the delete
    changes the row first, then counts what the group holds)."""
    stmt = (sa.update(ShareGroup)
            .where(ShareGroup.id == group_id, ShareGroup.status == "available", ShareGroup.deleted_at.is_(None))
            .values(status=ShareGroup.status).execution_options(synchronize_session=False))
    return session.execute(stmt).rowcount == 1


def member_count(session: Session, group_id: str) -> int:
    q = sa.select(sa.func.count()).select_from(Share).where(
        Share.share_group_id == group_id, Share.deleted_at.is_(None))
    return session.scalar(q)


def members(session: Session, group_id: str) -> list[Share]:
    q = sa.select(Share).where(Share.share_group_id == group_id, Share.deleted_at.is_(None))
    return list(session.scalars(q.order_by(Share.created_at, Share.id)))


def set_group_status(session: Session, group_id: str, status: str, *, now: datetime,
                     expected: set[str] | frozenset[str] | None = None, **values) -> bool:
    stmt = sa.update(ShareGroup).where(ShareGroup.id == group_id, ShareGroup.deleted_at.is_(None))
    if expected is not None:
        stmt = stmt.where(ShareGroup.status.in_(expected))
    return session.execute(stmt.values(status=status, updated_at=now, **values)
                           .execution_options(synchronize_session=False)).rowcount == 1


# --- group snapshots -------------------------------------------------------------------


def get_snapshot(session: Session, snapshot_id: str, scope: str | None) -> ShareGroupSnapshot:
    snap = session.get(ShareGroupSnapshot, snapshot_id) if isinstance(snapshot_id, str) else None
    if snap is None or snap.deleted_at is not None or (scope is not None and snap.project_id != scope):
        raise NotFound(f"Share group snapshot {snapshot_id} not found.")
    return snap


def get_snapshot_any(session: Session, snapshot_id: str) -> ShareGroupSnapshot | None:
    return session.get(ShareGroupSnapshot, snapshot_id)


def snapshot_count(session: Session, group_id: str) -> int:
    q = sa.select(sa.func.count()).select_from(ShareGroupSnapshot).where(
        ShareGroupSnapshot.share_group_id == group_id, ShareGroupSnapshot.deleted_at.is_(None))
    return session.scalar(q)


def list_snapshots(session: Session, scope: str | None, filters: dict, *, sort_key: str = "created_at",
                   sort_dir: str = "desc") -> list[ShareGroupSnapshot]:
    q = sa.select(ShareGroupSnapshot).where(ShareGroupSnapshot.deleted_at.is_(None))
    if scope is not None:
        q = q.where(ShareGroupSnapshot.project_id == scope)
    for key, value in filters.items():
        q = q.where(getattr(ShareGroupSnapshot, key) == value)
    column = getattr(ShareGroupSnapshot, sort_key)
    q = q.order_by(column.desc() if sort_dir == "desc" else column.asc(), ShareGroupSnapshot.id)
    return list(session.scalars(q))


def set_snapshot_status(session: Session, snapshot_id: str, status: str, *, now: datetime,
                        expected: set[str] | frozenset[str] | None = None) -> bool:
    stmt = sa.update(ShareGroupSnapshot).where(ShareGroupSnapshot.id == snapshot_id,
                                               ShareGroupSnapshot.deleted_at.is_(None))
    if expected is not None:
        stmt = stmt.where(ShareGroupSnapshot.status.in_(expected))
    moved = session.execute(stmt.values(status=status, updated_at=now)
                            .execution_options(synchronize_session=False)).rowcount == 1
    if moved:
        session.execute(sa.update(ShareGroupSnapshotMember)
                        .where(ShareGroupSnapshotMember.share_group_snapshot_id == snapshot_id)
                        .values(status=status, updated_at=now).execution_options(synchronize_session=False))
    return moved


def set_member_statuses(session: Session, snapshot_id: str, status: str, *, now: datetime) -> None:
    """The members follow their group snapshot's status."""
    session.execute(sa.update(ShareGroupSnapshotMember)
                    .where(ShareGroupSnapshotMember.share_group_snapshot_id == snapshot_id)
                    .values(status=status, updated_at=now).execution_options(synchronize_session=False))


def mark_snapshot_deleted(session: Session, snapshot_id: str, *, now: datetime) -> bool:
    """Soft delete (from any live status: a job's last step, or an admin's
    force delete), members with it. Returns whether it moved."""
    moved = session.execute(
        sa.update(ShareGroupSnapshot)
        .where(ShareGroupSnapshot.id == snapshot_id, ShareGroupSnapshot.deleted_at.is_(None))
        .values(status="deleted", deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount == 1
    if moved:
        set_member_statuses(session, snapshot_id, "deleted", now=now)
    return moved


def snapshots_of_share(session: Session, share_id: str) -> int:
    """Live group snapshot members of a share (they hold it as snapshots do)."""
    q = (sa.select(sa.func.count()).select_from(ShareGroupSnapshotMember)
         .join(ShareGroupSnapshot, ShareGroupSnapshot.id == ShareGroupSnapshotMember.share_group_snapshot_id)
         .where(ShareGroupSnapshotMember.share_id == share_id, ShareGroupSnapshot.deleted_at.is_(None)))
    return session.scalar(q)
