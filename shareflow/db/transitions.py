"""Conditional status changes: the one way any status column is written.

``UPDATE ... SET status = target WHERE id = :id AND status IN (sources)`` so two
requests (or a request and a job) can never both win; the caller learns from
the row count whether it did.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.domain import states
from shareflow.exceptions import ResourceStateChanged


def transition(
    session: Session,
    model: Any,
    row_id: str,
    kind: str,
    target: str,
    *,
    now: datetime,
    expected: frozenset[str] | set[str] | None = None,
    column: str = "status",
    values: dict | None = None,
) -> bool:
    """Move one row to ``target`` if its status is one ``target`` may be reached
    from (narrowed to ``expected`` when given). Returns whether it moved."""
    allowed = states.sources(kind, target)
    if expected is not None:
        allowed = allowed & frozenset(expected)
    if not allowed:
        return False
    params = {column: target, "updated_at": now, **(values or {})}
    stmt = _conditional_update(model, column, tuple(sorted(allowed)), tuple(params))
    params = {f"v_{k}": v for k, v in params.items()}
    params["b_row_id"] = row_id
    return session.execute(stmt, params).rowcount == 1


@functools.lru_cache(maxsize=1024)
def _conditional_update(model: Any, column: str, allowed: tuple[str, ...], keys: tuple[str, ...]) -> sa.Update:
    """The UPDATE of :func:`transition`, built once per shape (table, status
    column, sources, columns set) with every value a parameter bound at
    execution: on the table, not the ORM entity (no ORM bulk-update
    machinery, nothing in the session to synchronise - as
    ``synchronize_session=False`` said), and no statement rebuilt, coerced
    and keyed for SQLAlchemy's cache on every call. The conductors run
    several per job."""
    table = model.__table__
    stmt = sa.update(table).where(table.c.id == sa.bindparam("b_row_id"), table.c[column].in_(allowed))
    if "deleted_at" in table.c:
        stmt = stmt.where(table.c.deleted_at.is_(None))
    return stmt.values({k: sa.bindparam(f"v_{k}", type_=table.c[k].type) for k in keys})


def require_transition(session: Session, model: Any, row_id: str, kind: str, target: str, **kw) -> None:
    """Like :func:`transition`, raising :class:`ResourceStateChanged` when the row did not move."""
    if not transition(session, model, row_id, kind, target, **kw):
        raise ResourceStateChanged(
            f"{kind} {row_id} is not in a status that allows {target}",
            user_message=f"{kind.replace('_', ' ')} status does not allow this operation now",
        )


def give_back(
    session: Session,
    model: Any,
    row_id: str,
    *,
    working: frozenset[str] | set[str],
    previous: str,
    now: datetime,
    column: str = "status",
    values: dict | None = None,
) -> bool:
    """Undo a request's own just-committed move into a working status, when
    the job that was to finish it could not be posted (nothing ran): back to
    ``previous``, only while the row is still in ``working``. Not a
    transition of ``states.TRANSITIONS``: it erases one that never took
    effect. Returns whether it moved."""
    col = getattr(model, column)
    stmt = (
        sa.update(model)
        .where(model.id == row_id, col.in_(sorted(working)))
        .values({column: previous, "updated_at": now, **(values or {})})
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1
