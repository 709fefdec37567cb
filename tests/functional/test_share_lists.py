"""Share lists in SQL on real SQLite and PostgreSQL: a page is LIMIT/OFFSET
in the statement (never every row sliced in Python), a marker continues a
page in any sort order - NULLs included, the same on both databases - and
counts and filters are the database's."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from shareflow.db import share_types as types_db
from shareflow.db import shares as shares_db
from shareflow.domain import states
from shareflow.exceptions import InvalidInput

T0 = datetime(2026, 11, 30, 12, 0, 0)
#: Names with NULLs and ties, sizes with ties: every order needs its tie-break.
NAMES = [None, "b", "a", None, "c", "b", "a", None, "d", "c", "e"]


@pytest.fixture
def shares(db) -> list[str]:
    with db.write() as s:
        st = types_db.create(s, now=T0, name="t", specs={"driver_handles_share_servers": "False"})
        ids = []
        for i, name in enumerate(NAMES):
            share_id = f"00000000-0000-4000-8000-{i:012d}"
            shares_db.create(s, now=T0 + timedelta(seconds=i % 4), id=share_id, project_id="p", name=name,
                             size=1 + i % 3, share_proto="NFS", status=states.AVAILABLE,
                             share_type_id=st.id, is_public=False, metadata={"i": str(i)})
            shares_db.replace_export_locations(s, share_id, [f"h:/s/{i}"], now=T0)
            ids.append(share_id)
        shares_db.create(s, now=T0, id="00000000-0000-4000-8000-999999999999", project_id="other", size=1,
                         share_proto="NFS", status=states.AVAILABLE, share_type_id=st.id, is_public=False)
    return ids


def _ids(db, **kw) -> list[str]:
    with db.read() as s:
        return [r.id for r in shares_db.list_(s, "p", **kw)]


def test_a_page_is_limit_and_offset_in_the_statement(db, shares):
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "FROM shares" in statement and "export_locations" not in statement:
            statements.append(statement)

    everything = _ids(db)
    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        page = _ids(db, limit=3, offset=4)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    assert page == everything[4:7]
    (main,) = [st for st in statements if "share_metadata" not in st]
    assert "LIMIT" in main and "OFFSET" in main


@pytest.mark.parametrize("sort_key", ["name", "size", "created_at", "id"])
@pytest.mark.parametrize("sort_dir", ["asc", "desc"])
def test_marker_pages_cover_every_share_once_in_the_lists_order(db, shares, sort_key, sort_dir):
    everything = _ids(db, sort_key=sort_key, sort_dir=sort_dir)
    assert sorted(everything) == sorted(shares)
    walked, marker = [], None
    while True:
        page = _ids(db, sort_key=sort_key, sort_dir=sort_dir, limit=3, marker=marker)
        walked += page
        if len(page) < 3:
            break
        marker = page[-1]
    assert walked == everything


def test_nulls_first_ascending_last_descending_on_every_database(db, shares):
    with db.read() as s:
        up = [r.name for r in shares_db.list_(s, "p", sort_key="name", sort_dir="asc")]
        down = [r.name for r in shares_db.list_(s, "p", sort_key="name", sort_dir="desc")]
    assert up[:3] == [None] * 3 and up[3:] == sorted(n for n in NAMES if n)
    assert down[-3:] == [None] * 3 and down[:-3] == sorted((n for n in NAMES if n), reverse=True)


def test_a_deleted_share_still_marks_its_place_and_an_unknown_one_is_refused(db, shares):
    everything = _ids(db)
    with db.write() as s:
        assert shares_db.set_status(s, everything[2], states.DELETING, now=T0)
        assert shares_db.mark_deleted(s, everything[2], now=T0)
    assert _ids(db, marker=everything[2], limit=2) == everything[3:5]
    with db.read() as s, pytest.raises(InvalidInput, match="Marker"):
        shares_db.list_(s, "p", marker="00000000-0000-4000-8000-999999999999")  # another project's


def test_count_filters_and_records_match_the_rows(db, shares):
    with db.read() as s:
        assert shares_db.count(s, "p") == len(NAMES)
        assert shares_db.count(s, None) == len(NAMES) + 1
        assert shares_db.count(s, "p", filters={"name": "b"}) == 2
        assert shares_db.count(s, "p", filters={"export_location_path": "h:/s/4"}) == 1
        assert shares_db.count(s, "p", filters={"metadata": {"i": "4"}}) == 1
        (found,) = shares_db.list_(s, "p", filters={"export_location_path": "h:/s/4"})
        assert found.id == shares[4] and found.name == "c" and found.metadata_dict() == {"i": "4"}
        assert [el.path for el in found.export_locations] == ["h:/s/4"]
        assert found.share_type.name == "t" and found.share_type.specs() == {"driver_handles_share_servers": "False"}
        summaries = shares_db.list_(s, "p", summary=True, limit=2)
        assert [(r.id, r.name) for r in summaries] == [(r, n) for r, n in zip(_ids(db)[:2], [
            shares_db.record(s, i).name for i in _ids(db)[:2]])]


def test_list_filters_use_their_indexes_on_sqlite(db, shares):
    if not db.is_sqlite:
        pytest.skip("SQLite's planner; PostgreSQL plans by its statistics")
    with db.read() as s:
        conn = s.connection()

        def plan(sql: str) -> str:
            return " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))

        assert "ix_shares_name" in plan("SELECT id FROM shares WHERE name = 'b' AND deleted_at IS NULL")
        assert "ix_export_locations_share_id" in plan("SELECT path FROM export_locations WHERE share_id = 'x'")
        everyone = plan("SELECT id FROM shares WHERE deleted_at IS NULL ORDER BY created_at DESC LIMIT 20")
        assert "ix_shares_deleted_at_created_at" in everyone and "TEMP B-TREE" not in everyone


def test_migration_0006_adds_and_removes_the_list_indexes(db):
    from alembic import command

    from shareflow.db import migrate

    wanted = {"shares": {"ix_shares_name", "ix_shares_project_id_deleted_at_created_at",
                         "ix_shares_deleted_at_created_at"},
              "share_snapshots": {"ix_share_snapshots_name"},
              "export_locations": {"ix_export_locations_share_id"}}

    def present() -> dict[str, set[str]]:
        inspector = sa.inspect(db.engine)
        return {table: {ix["name"] for ix in inspector.get_indexes(table)} & names
                for table, names in wanted.items()}

    assert present() == wanted
    with db.engine.begin() as conn:
        command.downgrade(migrate._alembic_config(conn), "0005")
    assert present() == {table: set() for table in wanted}
    migrate.upgrade(db)
    assert present() == wanted and migrate.current_revision(db) == migrate.head_revision()
