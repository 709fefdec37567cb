"""Migration 0012 on real SQLite and PostgreSQL: the table of access rule
metadata comes with the upgrade and goes with the downgrade, its keys
unique per rule."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from shareflow.db import migrate

TABLE = "access_rule_metadata"


@pytest.fixture
def database(empty_db):
    return empty_db


def _tables(db) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def test_access_rule_metadata_table_up_and_down(database):
    with database.engine.begin() as conn:
        command.upgrade(migrate._alembic_config(conn), "0011")
    assert TABLE not in _tables(database)
    with database.engine.begin() as conn:
        command.upgrade(migrate._alembic_config(conn), "0012")
    assert TABLE in _tables(database)
    inspector = sa.inspect(database.engine)
    assert {c["name"] for c in inspector.get_columns(TABLE)} == {"id", "access_id", "key", "value"}
    assert [u["column_names"] for u in inspector.get_unique_constraints(TABLE)] == [["access_id", "key"]]
    assert [(f["referred_table"], f["options"].get("ondelete")) for f in inspector.get_foreign_keys(TABLE)] \
        == [("access_rules", "CASCADE")]
    with database.engine.begin() as conn:
        command.downgrade(migrate._alembic_config(conn), "0011")
    assert TABLE not in _tables(database)
