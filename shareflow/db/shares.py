"""Queries on shares, their export locations and metadata."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.orm import Session

from shareflow.db import listing, share_records
from shareflow.db.models import AccessRule, ExportLocation, Share, ShareMetadata, ShareType, ShareTypeExtraSpec
from shareflow.db.transitions import transition
from shareflow.domain import states
from shareflow.exceptions import NotFound


def get(session: Session, share_id: str, project_id: str | None = None) -> Share:
    """The live share, seen by ``project_id`` (None = admin: any project).
    Another project's share does not exist for the caller."""
    share = session.get(Share, share_id)
    if share is None or share.deleted_at is not None or (
        project_id is not None and share.project_id != project_id and not share.is_public
    ):
        raise NotFound(f"Share {share_id} could not be found.")
    return share


def get_any(session: Session, share_id: str) -> Share | None:
    """Including deleted rows; for jobs finishing after the fact."""
    return session.get(Share, share_id)


def for_placement(session: Session, share_id: str) -> Share | None:
    """:func:`get_any` with its type, the type's specs and its metadata (which
    the scheduler hints read), as the scheduling job reads it: in ONE
    statement, joined (selectin loads each relationship with a statement of
    its own, a round trip each on PostgreSQL: four where one does); the
    export locations are loaded only if asked for. A new share has a few
    specs and metadata items, so the joined rows (specs x items) stay few."""
    return session.get(Share, share_id, options=[
        orm.joinedload(Share.share_type).joinedload(ShareType.extra_specs),
        orm.joinedload(Share.metadata_items),
        orm.lazyload(Share.export_locations),
    ])


def owned(session: Session, share_id: str, project_id: str | None) -> Share:
    """Like :func:`get`, but public shares of other projects are not writable."""
    share = get(session, share_id, project_id)
    if project_id is not None and share.project_id != project_id:
        raise NotFound(f"Share {share_id} could not be found.")
    return share


def visible(project_id: str | None, *, public: bool = True) -> list[sa.ColumnElement]:
    """Live shares ``project_id`` may see (None = admin: every project's);
    other projects' public shares only when ``public``."""
    conds = [Share.deleted_at.is_(None)]
    if project_id is not None:
        conds.append(_owner(project_id, public))
    return conds


def _owner(project_id: str, public: bool) -> sa.ColumnElement:
    mine = Share.project_id == project_id
    return sa.or_(mine, Share.is_public.is_(True)) if public else mine


def filtered(project_id: str | None, filters: dict | None = None, *,
             public: bool = False) -> list[sa.ColumnElement]:
    """The WHERE of a list: visibility, then each filter - exact columns,
    ``name~``/``description~``, ``metadata`` and the type's ``extra_specs``
    (every pair), and an export
    location's ``export_location_id``/``export_location_path`` (one location
    matching both when both are given). As Manila's
    ``share_get_all_by_project``, other projects' public shares are listed
    only when ``public`` (the list's ``is_public=true``)."""
    conds = visible(project_id, public=public)
    filters = dict(filters or {})
    location = {k: filters.pop(k) for k in ("export_location_id", "export_location_path") if k in filters}
    if location:
        match = [ExportLocation.id == location[k] for k in ("export_location_id",) if k in location]
        match += [ExportLocation.path == location[k] for k in ("export_location_path",) if k in location]
        conds.append(Share.export_locations.any(sa.and_(*match)))
    for key, value in filters.items():
        if key == "metadata":
            for mk, mv in value.items():
                conds.append(Share.metadata_items.any(sa.and_(ShareMetadata.key == mk, ShareMetadata.value == mv)))
        elif key == "extra_specs":
            # The share's type has every pair (Manila joins one spec row,
            # so that two pairs never match there; here they all must).
            for sk, sv in value.items():
                conds.append(Share.share_type_id.in_(sa.select(ShareTypeExtraSpec.share_type_id).where(
                    ShareTypeExtraSpec.key == sk, ShareTypeExtraSpec.value == sv)))
        else:
            conds.append(listing.where(Share, key, value))
    return conds


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
    summary: bool = False,
    public: bool = False,
) -> list:
    """One page of shares as records (:mod:`shareflow.db.share_records`):
    filtered, ordered and paged in SQL. With a ``marker`` the page starts
    right after that share and ``offset`` is not applied: the marker already
    says where the page starts (a next link carries both, see the API)."""
    conds = filtered(project_id, filters, public=public)
    if marker is not None:
        owner = [] if project_id is None else [_owner(project_id, public)]
        conds.append(listing.after_marker(session, Share, marker, sort_key, sort_dir, owner))
        offset = 0
    stmt = sa.select(*share_records.columns(summary)).where(*conds)
    stmt = listing.paged(stmt, Share, sort_key=sort_key, sort_dir=sort_dir, limit=limit, offset=offset)
    return share_records.load(session, stmt, summary=summary)


def count(session: Session, project_id: str | None, *, filters: dict | None = None,
          public: bool = False) -> int:
    """How many shares match, whatever the page (``with_count``)."""
    return int(session.scalar(sa.select(sa.func.count()).select_from(Share).where(
        *filtered(project_id, filters, public=public))))


def record(session: Session, share_id: str, project_id: str | None = None) -> share_records.ShareRecord:
    """Like :func:`get`, as a record for the API's views."""
    if not isinstance(share_id, str):
        raise NotFound(f"Share {share_id} could not be found.")
    stmt = sa.select(*share_records.columns()).where(Share.id == share_id, *visible(project_id))
    found = share_records.load(session, stmt)
    if not found:
        raise NotFound(f"Share {share_id} could not be found.")
    return found[0]


def create(session: Session, *, now: datetime, **fields) -> Share:
    metadata = fields.pop("metadata", None) or {}
    share = Share(created_at=now, access_rules_status=states.RULES_ACTIVE, **fields)
    share.metadata_items = [ShareMetadata(key=k, value=v) for k, v in metadata.items()]
    session.add(share)
    session.flush()
    return share


def set_status(session: Session, share_id: str, target: str, *, now: datetime, expected=None, **values) -> bool:
    return transition(session, Share, share_id, states.SHARE, target, now=now, expected=expected, values=values)


def override_status(session: Session, share_id: str, status: str, *, now: datetime, expected: str,
                    **values) -> bool:
    """An admin's override (reset_status, force_delete): any status from any
    status, not a transition of ``states.TRANSITIONS``; still conditional on
    the status the admin's request read (``expected``), so it cannot silently
    undo a change made meanwhile. Returns whether it moved."""
    stmt = (
        sa.update(Share)
        .where(Share.id == share_id, Share.status == expected, Share.deleted_at.is_(None))
        .values(status=status, updated_at=now, **values)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def mark_deleted(session: Session, share_id: str, *, now: datetime) -> bool:
    """DELETING -> deleted: the row stays (soft delete) with its rules and locations gone."""
    moved = transition(
        session, Share, share_id, states.SHARE, states.DELETED, now=now, values={"deleted_at": now}
    )
    if moved:
        session.execute(sa.delete(ExportLocation).where(ExportLocation.share_id == share_id))
        session.execute(
            sa.update(AccessRule)
            .where(AccessRule.share_id == share_id, AccessRule.deleted_at.is_(None))
            .values(deleted_at=now, updated_at=now)
        )
    return moved


def hard_delete(session: Session, share_id: str) -> None:
    """Remove a share that never reached a backend (its job could not be posted)."""
    session.execute(sa.delete(Share).where(Share.id == share_id))


_LOCATIONS = ExportLocation.__table__
#: Built once: a create's last step replaces its share's locations.
_DELETE_LOCATIONS = sa.delete(_LOCATIONS).where(_LOCATIONS.c.share_id == sa.bindparam("share_id"))
_INSERT_LOCATION = sa.insert(_LOCATIONS)


def replace_export_locations(session: Session, share_id: str, paths: list[str], *, now: datetime) -> None:
    """On the table, at once (no ORM objects to flush at commit): nothing in
    the session holds the share's locations when a job's last step writes
    them."""
    session.execute(_DELETE_LOCATIONS, {"share_id": share_id})
    if paths:
        session.execute(_INSERT_LOCATION, [
            {"id": str(uuid.uuid4()), "share_id": share_id, "path": path, "is_admin_only": False,
             "preferred": i == 0, "created_at": now, "updated_at": None}
            for i, path in enumerate(paths)
        ])


def update_fields(session: Session, share: Share, *, now: datetime, **fields) -> Share:
    for k, v in fields.items():
        setattr(share, k, v)
    share.updated_at = now
    session.flush()
    return share
