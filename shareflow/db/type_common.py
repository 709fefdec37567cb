"""What share types and share group types have alike in the database: who
may see and list them (public, or private with the project on the type's
access list), the access list itself, and the key/value specs (a share
type's extra specs, a group type's group specs). Manila keeps the two apart
with the same rules; here each kind names its tables once (:class:`TypeTables`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.exceptions import Conflict, NotFound


@dataclass(frozen=True)
class TypeTables:
    """One kind of type: its model, its access list's model and the column
    of that list naming the type, its specs' model and the type's
    relationship holding them, and its noun in messages."""

    noun: str
    model: type
    project_model: type
    project_type_column: str
    spec_model: type
    specs_attr: str

    @property
    def _listed_type(self):
        return getattr(self.project_model, self.project_type_column)


def visible_to(session: Session, t: TypeTables, row, project_id: str | None) -> bool:
    """Manila's ``_share_type_get_query`` for a non-admin: public, or private
    with the project on its access list (``project_id`` None: an admin)."""
    if project_id is None or row.is_public:
        return True
    return session.scalar(sa.select(sa.func.count()).select_from(t.project_model).where(
        t._listed_type == row.id, t.project_model.project_id == project_id)) > 0


def list_types(session: Session, t: TypeTables, *, public: bool | None, project_id: str | None) -> list:
    """Live types, by name. ``public`` True: the public ones and the private
    ones ``project_id`` has access to (Manila's ``is_public`` filter); False:
    private only; None: all."""
    q = sa.select(t.model).where(t.model.deleted_at.is_(None))
    if public is True:
        cond = t.model.is_public.is_(True)
        if project_id is not None:
            granted = sa.select(t._listed_type).where(t.project_model.project_id == project_id)
            cond = sa.or_(cond, t.model.id.in_(granted))
        q = q.where(cond)
    elif public is False:
        q = q.where(t.model.is_public.is_(False))
    return list(session.scalars(q.order_by(t.model.name)))


def projects(session: Session, t: TypeTables, row) -> list[str]:
    """The access list of a type, in the order the projects were added."""
    q = sa.select(t.project_model.project_id).where(t._listed_type == row.id)
    return list(session.scalars(q.order_by(t.project_model.id)))


def add_project(session: Session, t: TypeTables, row, project_id: str, *, now: datetime) -> None:
    if project_id in projects(session, t, row):
        raise Conflict(f"{t.noun.capitalize()} access for {row.id} / {project_id} combination already exists.")
    session.add(t.project_model(**{t.project_type_column: row.id}, project_id=project_id, created_at=now))
    session.flush()


def remove_project(session: Session, t: TypeTables, row, project_id: str) -> None:
    result = session.execute(sa.delete(t.project_model).where(
        t._listed_type == row.id, t.project_model.project_id == project_id))
    if result.rowcount == 0:
        raise NotFound(f"{t.noun.capitalize()} access not found for {row.id} / {project_id} combination.")


def set_specs(session: Session, t: TypeTables, row, specs: dict[str, str], *, now: datetime) -> None:
    held = getattr(row, t.specs_attr)
    current = {s.key: s for s in held}
    for k, v in specs.items():
        if k in current:
            current[k].value = v
        else:
            held.append(t.spec_model(key=k, value=v))
    row.updated_at = now
    session.flush()


def unset_spec(session: Session, t: TypeTables, row, key: str, *, now: datetime) -> bool:
    """Whether the type had the spec (now gone); each kind says its own 404."""
    held = getattr(row, t.specs_attr)
    for s in list(held):
        if s.key == key:
            held.remove(s)
            row.updated_at = now
            session.flush()
            return True
    return False
