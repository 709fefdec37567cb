"""What polling clients read of one share, each in ONE statement.

Clients that wait for an operation poll: manilaclient and Terraform GET the
share (create, delete, extend), its access rules (after allow_access) or its
export locations, every 20 ms to 1 s each - most of what a deployment serves.
Read the general way, a share's GET was five statements in a read transaction
(share, export locations, metadata, type and specs, plus BEGIN/COMMIT), the
rules' poll seven (the share loaded as an ORM entity with four ``selectin``
loads only to check it is visible); most of its CPU went into building those
statements, not into SQL.

Here each read is one statement built once per database and kept (executing a
prebuilt statement skips SQLAlchemy's expression building, ~70 us each), run
through :meth:`shareflow.db.engine.Database.snapshot`, outside any
transaction: one statement is its own consistent snapshot, so there is
nothing to BEGIN or COMMIT. A share's collections (export locations, metadata,
its type's extra specs, a rule's metadata) come back as JSON arrays built by
correlated subqueries (``json_group_array`` on SQLite, ``json_agg`` on
PostgreSQL); "not found" and "found, with no rules or locations" are told
apart by the share's row itself (an outer join).

What comes back are the read-only records of :mod:`shareflow.db.share_records`
(or their kin below), so the views render them as they render a list's.
"""

from __future__ import annotations

import sqlalchemy as sa

from shareflow.db import json_rows, share_records
from shareflow.db.models import (
    AccessRule,
    AccessRuleMetadata,
    ExportLocation,
    Share,
    ShareMetadata,
    ShareType,
    ShareTypeExtraSpec,
)
from shareflow.db.share_records import LocationRecord, ShareRecord, TypeRecord
from shareflow.exceptions import NotFound

_SHARE = Share.__table__
_LOCATION = ExportLocation.__table__
_METADATA = ShareMetadata.__table__
_TYPE = ShareType.__table__
_SPECS = ShareTypeExtraSpec.__table__
_RULE = AccessRule.__table__
_RULE_METADATA = AccessRuleMetadata.__table__
#: Parameters of every statement here.
SHARE_ID, PROJECT_ID = "share_id", "project_id"


class ExportLocationRecord:
    """What :mod:`shareflow.api.views.export_locations` reads of an export location."""

    __slots__ = ("id", "share_id", "path", "is_admin_only", "preferred", "created_at", "updated_at")

    def __init__(self, id, share_id, path, is_admin_only, preferred, created_at, updated_at):
        self.id, self.share_id, self.path = id, share_id, path
        self.is_admin_only, self.preferred = is_admin_only, preferred
        self.created_at, self.updated_at = created_at, updated_at


class RuleRecord:
    """What :mod:`shareflow.api.views.access` reads of an access rule."""

    __slots__ = ("id", "share_id", "access_type", "access_to", "access_level", "state", "created_at",
                 "updated_at", "_metadata")

    def __init__(self, id, share_id, access_type, access_to, access_level, state, created_at, updated_at,
                 metadata: dict[str, str]):
        self.id, self.share_id, self.access_type, self.access_to = id, share_id, access_type, access_to
        self.access_level, self.state = access_level, state
        self.created_at, self.updated_at, self._metadata = created_at, updated_at, metadata

    def metadata_dict(self) -> dict[str, str]:
        return self._metadata


def _visible(scoped: bool) -> list[sa.ColumnElement]:
    """:func:`shareflow.db.shares.visible` with the project as a parameter."""
    conds = [_SHARE.c.id == sa.bindparam(SHARE_ID), _SHARE.c.deleted_at.is_(None)]
    if scoped:
        conds.append(sa.or_(_SHARE.c.project_id == sa.bindparam(PROJECT_ID), _SHARE.c.is_public.is_(True)))
    return conds


_statements: dict[tuple[str, str, bool], sa.Select] = {}


def _statement(kind: str, dialect: str, scoped: bool) -> sa.Select:
    key = (kind, dialect, scoped)
    stmt = _statements.get(key)
    if stmt is None:
        stmt = _statements[key] = _BUILDERS[kind](dialect, scoped)
    return stmt


def _share_statement(dialect: str, scoped: bool) -> sa.Select:
    """The share's columns, its type's id and name, and three JSON columns:
    export locations (oldest first, as lists show them), metadata (in
    insertion order) and the type's extra specs (likewise)."""
    locations = json_rows.aggregate(dialect, [_LOCATION.c.id, _LOCATION.c.path, _LOCATION.c.is_admin_only, _LOCATION.c.preferred],
                      [_LOCATION.c.created_at, _LOCATION.c.id])
    metadata = json_rows.aggregate(dialect, [_METADATA.c.key, _METADATA.c.value], [_METADATA.c.id])
    specs = json_rows.aggregate(dialect, [_SPECS.c.key, _SPECS.c.value], [_SPECS.c.id])
    return (
        sa.select(
            *share_records.columns(), _TYPE.c.id, _TYPE.c.name,
            sa.select(locations).where(_LOCATION.c.share_id == _SHARE.c.id).scalar_subquery(),
            sa.select(metadata).where(_METADATA.c.share_id == _SHARE.c.id).scalar_subquery(),
            sa.select(specs).where(_SPECS.c.share_type_id == _SHARE.c.share_type_id).scalar_subquery(),
        )
        .select_from(_SHARE.outerjoin(_TYPE, _TYPE.c.id == _SHARE.c.share_type_id))
        .where(*_visible(scoped))
    )


def _rules_statement(dialect: str, scoped: bool) -> sa.Select:
    """The share's id, then each live rule (oldest first) with its metadata
    (by key); one row of NULL rule columns when the share has none."""
    metadata = json_rows.aggregate(dialect, [_RULE_METADATA.c.key, _RULE_METADATA.c.value], [_RULE_METADATA.c.key])
    return (
        sa.select(
            _SHARE.c.id, _RULE.c.id, _RULE.c.share_id, _RULE.c.access_type, _RULE.c.access_to,
            _RULE.c.access_level, _RULE.c.state, _RULE.c.created_at, _RULE.c.updated_at,
            sa.select(metadata).where(_RULE_METADATA.c.access_id == _RULE.c.id).scalar_subquery(),
        )
        .select_from(_SHARE.outerjoin(
            _RULE, sa.and_(_RULE.c.share_id == _SHARE.c.id, _RULE.c.deleted_at.is_(None))))
        .where(*_visible(scoped))
        .order_by(_RULE.c.created_at, _RULE.c.id)
    )


def _locations_statement(dialect: str, scoped: bool) -> sa.Select:
    """The share's id, then each export location (oldest first); one row of
    NULL location columns when it has none."""
    return (
        sa.select(
            _SHARE.c.id, _LOCATION.c.id, _LOCATION.c.share_id, _LOCATION.c.path, _LOCATION.c.is_admin_only,
            _LOCATION.c.preferred, _LOCATION.c.created_at, _LOCATION.c.updated_at,
        )
        .select_from(_SHARE.outerjoin(_LOCATION, _LOCATION.c.share_id == _SHARE.c.id))
        .where(*_visible(scoped))
        .order_by(_LOCATION.c.created_at, _LOCATION.c.id)
    )


_BUILDERS = {"share": _share_statement, "rules": _rules_statement, "locations": _locations_statement}


def _run(conn: sa.Connection, kind: str, share_id, project_id: str | None) -> tuple[list, str]:
    if not isinstance(share_id, str):
        raise NotFound(f"Share {share_id} could not be found.")
    dialect = conn.dialect.name
    params = {SHARE_ID: share_id} if project_id is None else {SHARE_ID: share_id, PROJECT_ID: project_id}
    rows = conn.execute(_statement(kind, dialect, project_id is not None), params).all()
    if not rows:
        raise NotFound(f"Share {share_id} could not be found.")
    return rows, dialect


def share(conn: sa.Connection, share_id: str, project_id: str | None) -> ShareRecord:
    """The live share ``project_id`` may see (None: admin), as
    :func:`shareflow.db.shares.record` reads it; NotFound otherwise."""
    (row,), dialect = _run(conn, "share", share_id, project_id)
    width = len(share_records.COLUMNS)
    record = ShareRecord(row[:width])
    type_id, type_name, locations, metadata, specs = row[width:]
    record.export_locations = [LocationRecord(el_id, record.id, path, bool(admin_only), bool(preferred))
                               for el_id, path, admin_only, preferred in json_rows.decode(locations, dialect, keys=2)]
    record._metadata = dict(json_rows.decode(metadata, dialect, keys=1))
    if type_id is not None:
        record.share_type = TypeRecord(type_id, type_name, dict(json_rows.decode(specs, dialect, keys=1)))
    return record


def access_rules(conn: sa.Connection, share_id: str, project_id: str | None) -> list[RuleRecord]:
    """The live rules of a share ``project_id`` may see, oldest first; NotFound otherwise."""
    rows, dialect = _run(conn, "rules", share_id, project_id)
    return [RuleRecord(*row[1:9], dict(json_rows.decode(row[9], dialect, keys=1))) for row in rows if row[1] is not None]


def export_locations(conn: sa.Connection, share_id: str, project_id: str | None) -> list[ExportLocationRecord]:
    """The export locations of a share ``project_id`` may see, oldest first; NotFound otherwise."""
    rows, _ = _run(conn, "locations", share_id, project_id)
    return [ExportLocationRecord(*row[1:]) for row in rows if row[1] is not None]

