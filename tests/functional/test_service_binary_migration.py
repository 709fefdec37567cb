"""Migration 0010 on real SQLite and PostgreSQL (where ``binary`` is a
keyword): share services stored by 0008 as ``shareflow-share`` are
``manila-share`` afterwards, and the downgrade gives the old name back."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic import command

from shareflow.db import migrate

NOW = datetime(2026, 11, 30, 12, 0, 0)


@pytest.fixture
def db_0008(empty_db):
    with empty_db.engine.begin() as conn:
        command.upgrade(migrate._alembic_config(conn), "0008")
        conn.execute(sa.text('INSERT INTO services (host, "binary", disabled, created_at, updated_at) '
                             "VALUES ('hosta@local', 'shareflow-share', false, :now, :now)"), {"now": NOW})
    return empty_db


def _binaries(database) -> list[str]:
    with database.engine.connect() as conn:
        return list(conn.execute(sa.text('SELECT "binary" FROM services ORDER BY host')).scalars())


def test_share_services_get_manilas_binary_name_and_back(db_0008):
    migrate.upgrade(db_0008)
    assert _binaries(db_0008) == ["manila-share"]
    with db_0008.engine.begin() as conn:
        command.downgrade(migrate._alembic_config(conn), "0008")
    assert _binaries(db_0008) == ["shareflow-share"]
