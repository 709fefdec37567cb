"""Queries on share types and their extra specs."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import Share, ShareType, ShareTypeExtraSpec, ShareTypeProject
from shareflow.exceptions import Conflict, NotFound


def get(session: Session, type_id: str) -> ShareType:
    st = session.get(ShareType, type_id)
    if st is None or st.deleted_at is not None:
        raise NotFound(f"Share type {type_id} could not be found.")
    return st


def get_by_name(session: Session, name: str) -> ShareType | None:
    q = sa.select(ShareType).where(ShareType.name == name, ShareType.deleted_at.is_(None))
    return session.scalars(q).first()


def get_by_name_or_id(session: Session, ref: str) -> ShareType:
    st = get_by_name(session, ref)
    if st is None:
        st = session.get(ShareType, ref)
        if st is None or st.deleted_at is not None:
            raise NotFound(f"Share type {ref} could not be found.")
    return st


def _granted(project_id: str):
    """Types whose access list names ``project_id``."""
    return sa.select(ShareTypeProject.share_type_id).where(ShareTypeProject.project_id == project_id)


def visible_to(st: ShareType, session: Session, project_id: str | None) -> bool:
    """Manila's ``_share_type_get_query`` for a non-admin: public, or private
    with the project on its access list (``project_id`` None: an admin)."""
    if project_id is None or st.is_public:
        return True
    return session.scalar(sa.select(sa.func.count()).select_from(ShareTypeProject).where(
        ShareTypeProject.share_type_id == st.id, ShareTypeProject.project_id == project_id)) > 0


def list_(session: Session, *, public: bool | None = None, project_id: str | None = None) -> list[ShareType]:
    """Live types, by name. ``public`` True: the public ones and the private
    ones ``project_id`` has access to (Manila's ``is_public`` filter); False:
    private only; None: all."""
    q = sa.select(ShareType).where(ShareType.deleted_at.is_(None))
    if public is True:
        cond = ShareType.is_public.is_(True)
        if project_id is not None:
            cond = sa.or_(cond, ShareType.id.in_(_granted(project_id)))
        q = q.where(cond)
    elif public is False:
        q = q.where(ShareType.is_public.is_(False))
    return list(session.scalars(q.order_by(ShareType.name)))


def projects(session: Session, st: ShareType) -> list[str]:
    q = sa.select(ShareTypeProject.project_id).where(ShareTypeProject.share_type_id == st.id)
    return list(session.scalars(q.order_by(ShareTypeProject.id)))


def add_project(session: Session, st: ShareType, project_id: str, *, now: datetime) -> None:
    if project_id in projects(session, st):
        raise Conflict(f"Share type access for {st.id} / {project_id} combination already exists.")
    session.add(ShareTypeProject(share_type_id=st.id, project_id=project_id, created_at=now))
    session.flush()


def remove_project(session: Session, st: ShareType, project_id: str) -> None:
    result = session.execute(sa.delete(ShareTypeProject).where(
        ShareTypeProject.share_type_id == st.id, ShareTypeProject.project_id == project_id))
    if result.rowcount == 0:
        raise NotFound(f"Share type access not found for {st.id} / {project_id} combination.")


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


def set_specs(session: Session, st: ShareType, specs: dict[str, str], *, now: datetime) -> None:
    current = {s.key: s for s in st.extra_specs}
    for k, v in specs.items():
        if k in current:
            current[k].value = v
        else:
            st.extra_specs.append(ShareTypeExtraSpec(key=k, value=v))
    st.updated_at = now
    session.flush()


def unset_spec(session: Session, st: ShareType, key: str, *, now: datetime) -> None:
    for s in list(st.extra_specs):
        if s.key == key:
            st.extra_specs.remove(s)
            st.updated_at = now
            session.flush()
            return
    raise NotFound(f"Share type extra spec {key} could not be found.")


def in_use(session: Session, type_id: str) -> bool:
    q = sa.select(sa.func.count()).select_from(Share).where(
        Share.share_type_id == type_id, Share.deleted_at.is_(None)
    )
    return session.scalar(q) > 0


def delete(session: Session, st: ShareType, *, now: datetime) -> None:
    st.deleted_at = now
    session.flush()
