"""``shareflow db upgrade``: bring the database schema to this version's head."""

from __future__ import annotations

from shareflow import config as config_mod
from shareflow.db import migrate
from shareflow.db.engine import Database


def register(sub) -> None:
    p = sub.add_parser("db", help="database schema")
    dsub = p.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="create or upgrade the schema (ours and TaskFlow's)")
    up.set_defaults(func=upgrade)


def upgrade(args) -> int:
    config = config_mod.load(args.config)
    db = Database(config.database.url)
    try:
        migrate.upgrade(db)
        print(f"database at revision {migrate.current_revision(db)}")
    finally:
        db.dispose()
    return 0
