"""What every Manila list query shares: its ``name~``/``description~``
(substring) filters, and its order (one column, then the id, so pages are
stable) with a marker, offset and limit - all in SQL, so a page costs what
the page holds, not what the table holds.

NULLs of a nullable sort column come first in ascending order and last in
descending order on every database (SQLite's default; PostgreSQL's is the
opposite), so a page and the marker after it mean the same on both.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.exceptions import InvalidInput

#: Manila's inexact filters -> the column they search in.
SUBSTRING_FILTERS = {"name~": "name", "description~": "description"}


def where(model, key: str, value) -> sa.ColumnElement:
    """The condition of filter ``key``: a substring for Manila's inexact
    filters, otherwise equality on the column of that name."""
    if key in SUBSTRING_FILTERS:
        return getattr(model, SUBSTRING_FILTERS[key]).contains(value)
    return getattr(model, key) == value


def _nullable(col) -> bool:
    return bool(getattr(col.expression, "nullable", True))


def order(model, sort_key: str, sort_dir: str) -> list:
    """ORDER BY the sort column (NULLs as the module says), then the id ascending."""
    col = getattr(model, sort_key)
    ordered = col.asc() if sort_dir == "asc" else col.desc()
    if _nullable(col):
        ordered = ordered.nulls_first() if sort_dir == "asc" else ordered.nulls_last()
    return [ordered, model.id.asc()]


def after(model, sort_key: str, sort_dir: str, marker_value, marker_id: str) -> sa.ColumnElement:
    """The rows that come after the marker row (its sort value and id) in
    :func:`order`'s order: a keyset condition the sort column's index serves."""
    col, ident = getattr(model, sort_key), model.id
    if sort_dir == "asc":
        if marker_value is None:  # NULLs first: every non-NULL row is after
            return sa.or_(sa.and_(col.is_(None), ident > marker_id), col.is_not(None))
        return sa.or_(col > marker_value, sa.and_(col == marker_value, ident > marker_id))
    if marker_value is None:  # NULLs last: only later NULLs are after
        return sa.and_(col.is_(None), ident > marker_id)
    later = [col < marker_value, sa.and_(col == marker_value, ident > marker_id)]
    if _nullable(col):
        later.append(col.is_(None))
    return sa.or_(*later)


def after_marker(session: Session, model, marker: str, sort_key: str, sort_dir: str,
                 visible: list) -> sa.ColumnElement:
    """:func:`after` the row whose id is ``marker``, looked up among the rows
    the caller may see (``visible``: conditions; a deleted row still marks its
    place). None there is Manila's MarkerNotFound, a 400."""
    row = session.execute(sa.select(getattr(model, sort_key)).where(model.id == marker, *visible)).first()
    if row is None:
        raise InvalidInput(f"Marker {marker} could not be found.")
    return after(model, sort_key, sort_dir, row[0], marker)


def paged(q, model, *, sort_key: str, sort_dir: str, limit: int | None, offset: int):
    """``q`` ordered, with OFFSET and LIMIT in the statement."""
    q = q.order_by(*order(model, sort_key, sort_dir))
    if offset:
        q = q.offset(offset)
    if limit is not None:
        q = q.limit(limit)
    return q


def page(session: Session, q, model, *, sort_key: str, sort_dir: str, limit: int | None, offset: int) -> list:
    return list(session.scalars(paged(q, model, sort_key=sort_key, sort_dir=sort_dir, limit=limit,
                                      offset=offset)))


def count(session: Session, q) -> int:
    """How many rows ``q`` (unordered, unpaged) selects."""
    return int(session.scalar(sa.select(sa.func.count()).select_from(q.order_by(None).subquery())))
