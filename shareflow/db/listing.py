"""What every Manila list query shares: its ``name~``/``description~``
(substring) filters, and its order (one column, then the id, so pages are
stable) with offset and limit."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

#: Manila's inexact filters -> the column they search in.
SUBSTRING_FILTERS = {"name~": "name", "description~": "description"}


def where(model, key: str, value) -> sa.ColumnElement:
    """The condition of filter ``key``: a substring for Manila's inexact
    filters, otherwise equality on the column of that name."""
    if key in SUBSTRING_FILTERS:
        return getattr(model, SUBSTRING_FILTERS[key]).contains(value)
    return getattr(model, key) == value


def page(session: Session, q, model, *, sort_key: str, sort_dir: str, limit: int | None, offset: int) -> list:
    col = getattr(model, sort_key)
    q = q.order_by(col.asc() if sort_dir == "asc" else col.desc(), model.id)
    if offset:
        q = q.offset(offset)
    if limit is not None:
        q = q.limit(limit)
    return list(session.scalars(q))
