"""Bring a database to the schema this code expects: ours (Alembic) and TaskFlow's."""

from __future__ import annotations

import contextlib
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from shareflow.db.engine import Database, translate_errors
from shareflow.db.models import ATOMDETAILS_UNIQUE_NAME

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
    with translate_errors(), db.engine.begin() as conn:
        for statement in TASKFLOW_INDEXES:
            conn.exec_driver_sql(statement)


#: TaskFlow indexes its tables by ``uuid`` only, but loads a logbook's flow
#: details and a flow detail's atoms by ``parent_uuid``: without these, each
#: job's load scans every atom row of every job ever run (a fifth of the
#: conductors' CPU at 5,000 shares). Made after TaskFlow's migrations, which
#: create the tables, and idempotent, so each upgrade makes sure of them.
#: The unique index (one atom detail per flow and name, models.ATOMDETAILS_UNIQUE_NAME)
#: is made by migration 0017 on a database that had the table already (it
#: renames the duplicates an older version could leave first); a new
#: database gets it here, its table just made and empty. It also serves the
#: lookups by ``parent_uuid`` alone (its first column), so the index an older
#: version made for them only cost every atom's insert an update more: dropped.
TASKFLOW_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_flowdetails_parent_uuid ON flowdetails (parent_uuid)",
    f"CREATE UNIQUE INDEX IF NOT EXISTS {ATOMDETAILS_UNIQUE_NAME} ON atomdetails (parent_uuid, name)",
    "DROP INDEX IF EXISTS ix_atomdetails_parent_uuid",
)
