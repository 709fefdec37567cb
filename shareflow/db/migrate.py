"""Bring a database to the schema this code expects: ours (Alembic) and TaskFlow's."""

from __future__ import annotations

import contextlib
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from shareflow.db.engine import Database, translate_errors

#: TaskFlow's migrations use Alembic's default version table in the same database.
VERSION_TABLE = "shareflow_alembic_version"
MIGRATIONS = Path(__file__).with_name("migrations")


def _alembic_config(connection=None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    with translate_errors(), db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def upgrade(db: Database) -> None:
    """Upgrade the domain tables to head, then create/upgrade TaskFlow's tables."""
    from shareflow.engine.persistence import make_persistence

    with translate_errors(), db.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    backend = make_persistence(db)
    with contextlib.closing(backend.get_connection()) as conn:
        conn.upgrade()
