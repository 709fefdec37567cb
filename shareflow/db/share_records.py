"""Shares read for the API as plain records, not ORM entities.

A list of a thousand shares loaded as ORM objects (with their type, export
locations and metadata) spent most of its time in the ORM's identity map and
attribute instrumentation, not in SQL. What the API shows is read here with
Core statements into slotted records instead: one query for the page of
shares, one per 500 of them for export locations and for metadata, one for
their share types - the same number of queries for one share or a thousand,
and no per-object bookkeeping. Records are read-only snapshots: writers keep
using the ORM models in :mod:`shareflow.db.models`.

A record offers what :mod:`shareflow.api.views.shares` reads from a
:class:`~shareflow.db.models.Share` (the same attribute names,
``share_type.name``/``specs()``, ``export_locations``, ``metadata_dict()``),
so a view renders either.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import ExportLocation, Share, ShareMetadata, ShareType, ShareTypeExtraSpec

#: The share columns a detailed view reads, in record order (not
#: ``updated_at``/``deleted_at``: no view shows them, and every timestamp read
#: is parsed).
COLUMNS = (
    "id", "project_id", "user_id", "name", "description", "size", "share_proto", "status",
    "access_rules_status", "share_type_id", "host", "backend", "availability_zone", "is_public",
    "snapshot_id", "share_network_id", "task_state", "share_server_id", "pending_size",
    "created_at", "share_group_id",
)
#: What a summary view reads.
SUMMARY_COLUMNS = ("id", "name")
_TABLE = Share.__table__
_LOCATION = ExportLocation.__table__
_METADATA = ShareMetadata.__table__
_LOCATION_COLUMNS = [_LOCATION.c[n] for n in ("id", "share_id", "path", "is_admin_only", "preferred")]


class TypeRecord:
    __slots__ = ("id", "name", "_specs")

    def __init__(self, id: str, name: str, specs: dict[str, str]):
        self.id, self.name, self._specs = id, name, specs

    def specs(self) -> dict[str, str]:
        return self._specs


class LocationRecord:
    __slots__ = ("id", "share_id", "path", "is_admin_only", "preferred")

    def __init__(self, id, share_id, path, is_admin_only, preferred):
        self.id, self.share_id, self.path = id, share_id, path
        self.is_admin_only, self.preferred = is_admin_only, preferred


class ShareRecord:
    __slots__ = COLUMNS + ("share_type", "export_locations", "_metadata")

    def __init__(self, row: Sequence):
        # One unpacking, not a setattr per column: this runs once per share listed.
        (self.id, self.project_id, self.user_id, self.name, self.description, self.size,
         self.share_proto, self.status, self.access_rules_status, self.share_type_id, self.host,
         self.backend, self.availability_zone, self.is_public, self.snapshot_id, self.share_network_id,
         self.task_state, self.share_server_id, self.pending_size, self.created_at,
         self.share_group_id) = row
        self.share_type: TypeRecord | None = None
        self.export_locations: list[LocationRecord] = []
        self._metadata: dict[str, str] = {}

    def metadata_dict(self) -> dict[str, str]:
        # The record's own dict, not a copy: a record is read once, for one answer.
        return self._metadata


class SummaryRecord:
    __slots__ = SUMMARY_COLUMNS

    def __init__(self, row: Sequence):
        self.id, self.name = row


def columns(summary: bool = False) -> list:
    return [_TABLE.c[name] for name in (SUMMARY_COLUMNS if summary else COLUMNS)]


def load(session: Session, stmt, *, summary: bool = False) -> list:
    """Run ``stmt`` (a select of :func:`columns` from shares, with its WHERE,
    ORDER BY and page) and complete its records."""
    # Core rows straight from the connection: the ORM result layer adds
    # per-row work that buys nothing for plain columns.
    rows = session.connection().execute(stmt).all()
    if summary:
        return [SummaryRecord(row) for row in rows]
    records = [ShareRecord(row) for row in rows]
    complete(session, records, stmt.with_only_columns(_TABLE.c.id))
    return records


def complete(session: Session, records: list[ShareRecord], ids) -> None:
    """Attach export locations (oldest first), metadata and share types.
    ``ids`` is the page's own statement selecting only the ids: the database
    matches them in a subquery, which costs less than binding a thousand ids."""
    if not records:
        return
    conn = session.connection()
    by_id = {r.id: r for r in records}
    if len(records) == 1:  # one share: its id, not the statement again
        ids = [records[0].id]
    stmt = (sa.select(*_LOCATION_COLUMNS).where(_LOCATION.c.share_id.in_(ids))
            .order_by(_LOCATION.c.created_at, _LOCATION.c.id))
    for row in conn.execute(stmt).all():
        by_id[row[1]].export_locations.append(LocationRecord(*row))
    stmt = (sa.select(_METADATA.c.share_id, _METADATA.c.key, _METADATA.c.value)
            .where(_METADATA.c.share_id.in_(ids)).order_by(_METADATA.c.id))
    for share_id, key, value in conn.execute(stmt).all():
        by_id[share_id]._metadata[key] = value
    types = share_types(session, {r.share_type_id for r in records if r.share_type_id})
    for record in records:
        record.share_type = types.get(record.share_type_id)


def share_types(session: Session, ids: Iterable[str]) -> dict[str, TypeRecord]:
    """The types (name and extra specs) of these ids, in one statement."""
    ids = list(ids)
    if not ids:
        return {}
    specs = ShareTypeExtraSpec.__table__
    stmt = (
        sa.select(ShareType.id, ShareType.name, specs.c.key, specs.c.value)
        .outerjoin(specs, specs.c.share_type_id == ShareType.id)
        .where(ShareType.id.in_(ids)).order_by(ShareType.id, specs.c.id)
    )
    types: dict[str, TypeRecord] = {}
    for type_id, name, key, value in session.connection().execute(stmt).all():
        record = types.get(type_id)
        if record is None:
            record = types[type_id] = TypeRecord(type_id, name, {})
        if key is not None:
            record._specs[key] = value
    return types
