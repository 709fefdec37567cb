"""Queries on share types and their extra specs (visibility, access lists and
specs as share group types have them: :mod:`shareflow.db.type_common`)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.orm import Session

from shareflow.db.models import Share, ShareType, ShareTypeExtraSpec, ShareTypeProject
from shareflow.db.type_common import TypeTables
from shareflow.exceptions import Conflict, NotFound

TYPE_TABLES = TypeTables("share type", ShareType, ShareTypeProject, "share_type_id", ShareTypeExtraSpec, "extra_specs")


def get(session: Session, type_id: str) -> ShareType:
    st = session.get(ShareType, type_id)
    if st is None or st.deleted_at is not None:
        raise NotFound(f"Share type {type_id} could not be found.")
    return st


def get_by_name(session: Session, name: str) -> ShareType | None:
    """The live type named ``name``, with its specs in the same statement
    (joined: their ``selectin`` sent a second one, a round trip on
    PostgreSQL in the API's create, which reads the specs)."""
    q = sa.select(ShareType).options(orm.joinedload(ShareType.extra_specs)).where(
        ShareType.name == name, ShareType.deleted_at.is_(None))
    found = session.scalars(q).unique().all()  # all the rows: a joined collection spans several
    return found[0] if found else None


def get_by_name_or_id(session: Session, ref: str) -> ShareType:
    st = get_by_name(session, ref)
    if st is None:
        st = session.get(ShareType, ref)
        if st is None or st.deleted_at is not None:
            raise NotFound(f"Share type {ref} could not be found.")
    return st


def rename_conflicts(session: Session, st: ShareType, name: str) -> bool:
    other = get_by_name(session, name)
    return other is not None and other.id != st.id


def create(
    session: Session, *, now: datetime, name: str, specs: dict[str, str],
    description: str | None = None, is_public: bool = True, type_id: str | None = None,
) -> ShareType:
    if get_by_name(session, name) is not None:
        raise Conflict(f"Share Type {name} already exists.")
    st = ShareType(
        id=type_id or str(uuid.uuid4()), name=name, description=description,
        is_public=is_public, created_at=now,
    )
    st.extra_specs = [ShareTypeExtraSpec(key=k, value=v) for k, v in specs.items()]
    session.add(st)
    session.flush()
    return st


def in_use(session: Session, type_id: str) -> bool:
    q = sa.select(sa.func.count()).select_from(Share).where(
        Share.share_type_id == type_id, Share.deleted_at.is_(None)
    )
    return session.scalar(q) > 0


def delete(session: Session, st: ShareType, *, now: datetime) -> None:
    st.deleted_at = now
    session.flush()
