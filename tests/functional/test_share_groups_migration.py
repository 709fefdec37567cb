"""Migration 0015 on real SQLite and PostgreSQL: the share group tables and
``shares.share_group_id`` come with the upgrade and go with the downgrade,
which leaves the shares and what hangs off them (metadata here) as they were
(on SQLite the column is dropped in place: rebuilding ``shares`` would
cascade its drop to its children)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from shareflow.db import migrate

#: The revision 0015 follows (0014: the built-in identity).
BEFORE = "0014"
TABLES = {"share_group_types", "share_group_type_specs", "share_group_type_share_types",
          "share_group_type_projects", "share_groups", "share_group_share_types", "share_group_snapshots",
          "share_group_snapshot_members"}


@pytest.fixture
def database(empty_db):
    return empty_db


def _tables(db) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def _share_columns(db) -> set[str]:
    return {c["name"] for c in sa.inspect(db.engine).get_columns("shares")}


def test_share_group_tables_up_and_down_keep_the_shares(database):
    with database.engine.begin() as conn:
        command.upgrade(migrate._alembic_config(conn), BEFORE)
        conn.execute(sa.text("INSERT INTO share_types (id, name, is_public, created_at) "
                             "VALUES ('t1', 'default', true, '2026-01-01')"))
        conn.execute(sa.text(
            "INSERT INTO shares (id, project_id, size, share_proto, status, access_rules_status, share_type_id, "
            "is_public, created_at) VALUES ('s1', 'p', 1, 'NFS', 'available', 'active', 't1', false, "
            "'2026-01-01')"))
        conn.execute(sa.text("INSERT INTO share_metadata (share_id, key, value) VALUES ('s1', 'k', 'v')"))
    assert not TABLES & _tables(database) and "share_group_id" not in _share_columns(database)
    with database.engine.begin() as conn:
        command.upgrade(migrate._alembic_config(conn), "0015")
    assert TABLES <= _tables(database) and "share_group_id" in _share_columns(database)
    with database.engine.begin() as conn:
        command.downgrade(migrate._alembic_config(conn), BEFORE)
    assert not TABLES & _tables(database) and "share_group_id" not in _share_columns(database)
    with database.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT id FROM shares")).scalars().all() == ["s1"]
        assert conn.execute(sa.text("SELECT key, value FROM share_metadata")).all() == [("k", "v")]
