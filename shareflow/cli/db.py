"""``shareflow db upgrade``: bring the database schema to this version's head.
``shareflow db check-usage``: compare the usage counters (``quota_usages``,
``pool_allocations``) with a count of the live rows; exit 1 on any difference."""

from __future__ import annotations

from shareflow import config as config_mod
from shareflow.db import migrate
from shareflow.db import pools as pools_db
from shareflow.db import quotas as quotas_db
from shareflow.db.engine import Database


def register(sub) -> None:
    p = sub.add_parser("db", help="database schema")
    dsub = p.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="create or upgrade the schema (ours and TaskFlow's)")
    up.set_defaults(func=upgrade)
    check = dsub.add_parser("check-usage", help="compare the usage counters with a count of the live rows "
                            "(reads every share; exit 1 on a difference)")
    check.set_defaults(func=check_usage)


def upgrade(args) -> int:
    config = config_mod.load(args.config)
    db = Database(config.database.url)
    try:
        migrate.upgrade(db)
        print(f"database at revision {migrate.current_revision(db)}")
    finally:
        db.dispose()
    return 0


def check_usage(args) -> int:
    config = config_mod.load(args.config)
    db = Database(config.database.url)
    try:
        with db.read() as s:
            quotas, pools = quotas_db.drifted(s), pools_db.drifted(s)
    finally:
        db.dispose()
    for project, (counters, counted) in quotas.items():
        print(f"project {project}: counters {counters}, live rows {counted}")
    for pool, (counter, counted) in pools.items():
        print(f"pool {pool}: allocated {counter} GiB, live shares {counted} GiB")
    if quotas or pools:
        return 1
    print("usage counters match the live rows")
    return 0
