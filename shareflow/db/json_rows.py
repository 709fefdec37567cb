"""Child rows fetched as one JSON array column of their parent's row.

A read that needs a row and its children (a share's metadata and export
locations, a user's roles) gets them in the same statement this way instead
of one statement per child table: one round trip, whatever the database.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by


def aggregate(dialect: str, values: list, order: list) -> sa.ColumnElement:
    """A JSON array of ``[*order, *values]`` per row of a correlated subquery.
    PostgreSQL orders inside the aggregate; SQLite 3.40 cannot (ORDER BY in
    an aggregate is 3.44), so its rows are sorted by the leading ``order``
    keys in Python (:func:`decode`): its binary collation is Python's order."""
    if dialect == "postgresql":
        return sa.func.json_agg(aggregate_order_by(sa.func.json_build_array(*order, *values), *order))
    return sa.func.json_group_array(sa.func.json_array(*order, *values))


def decode(value, dialect: str, *, keys: int, keep_keys: bool = False) -> list[list]:
    """The rows of an :func:`aggregate` column in order, without their
    ``keys`` leading order keys unless ``keep_keys``. SQLite answers text
    (``[]`` for no rows), psycopg decoded JSON (None for no rows)."""
    if value is None:
        return []
    rows = json.loads(value) if isinstance(value, str) else value
    if dialect != "postgresql":
        rows.sort(key=lambda row: row[:keys])
    return rows if keep_keys else [row[keys:] for row in rows]
