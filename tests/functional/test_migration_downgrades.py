"""Downgrading a database that holds data, one revision at a time from head
to base, on real SQLite and PostgreSQL: each step takes away what its own
upgrade brought (tables, columns) and nothing else. Every row of a table that
outlives the step is still there with the values it had, in the columns that
outlive it; in particular the children of ``shares`` (metadata, export
locations, access rules and their metadata, snapshots). On SQLite a step
that rebuilt ``shares`` (copy, drop the old table, rename) lost them: under
foreign keys the drop deletes the old table's rows first, which cascades to
the children or, for a child without a cascade (snapshots), fails."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from shareflow.db import migrate

T0 = datetime(2026, 1, 1, 12, 0, 0)

#: Tables or columns a downgrade rewrites on purpose, so not compared:
#: 0008 rebuilds and refills ``pool_allocations`` under its old key, 0010
#: renames the services' binary back.
REWRITTEN = {"pool_allocations": None, "services": {"binary"}}

#: One row in each table a share and its surroundings use, in insertion order.
ROWS: list[tuple[str, dict]] = [
    ("share_types", {"id": "t1", "name": "default", "is_public": True, "created_at": T0}),
    ("share_type_extra_specs", {"share_type_id": "t1", "key": "driver_handles_share_servers", "value": "False"}),
    ("share_type_projects", {"share_type_id": "t1", "project_id": "p", "created_at": T0}),
    ("provider_networks", {"id": "pn1", "subnet_id": "sub1", "name": "net", "bridge": "br0", "cidr": "10.0.0.0/24",
                           "mtu": 1500, "created_at": T0}),
    ("allocation_ranges", {"network_id": "pn1", "first": "10.0.0.10", "last": "10.0.0.20"}),
    ("share_networks", {"id": "sn1", "project_id": "p", "name": "sn", "created_at": T0}),
    ("share_network_subnets", {"id": "sns1", "share_network_id": "sn1", "provider_network_id": "pn1",
                               "neutron_net_id": "nn1", "neutron_subnet_id": "ns1", "created_at": T0}),
    ("security_services", {"id": "ss1", "project_id": "p", "type": "ldap", "created_at": T0}),
    ("share_network_security_services", {"share_network_id": "sn1", "security_service_id": "ss1",
                                         "created_at": T0}),
    ("share_servers", {"id": "srv1", "share_network_id": "sn1", "share_network_subnet_id": "sns1",
                       "project_id": "p", "backend": "local", "host": "h1@local", "status": "active",
                       "is_auto_deletable": True, "created_at": T0}),
    ("network_allocations", {"id": "na1", "network_id": "pn1", "address": "10.0.0.10", "share_server_id": "srv1",
                             "created_at": T0}),
    ("shares", {"id": "s1", "project_id": "p", "name": "one", "size": 1, "pending_size": 2, "share_proto": "NFS",
                "status": "extending", "access_rules_status": "active", "share_type_id": "t1",
                "host": "h1@local#pool", "backend": "local", "is_public": False, "share_network_id": "sn1",
                "share_server_id": "srv1", "created_at": T0}),
    ("share_metadata", {"share_id": "s1", "key": "k", "value": "v"}),
    ("export_locations", {"id": "e1", "share_id": "s1", "path": "10.0.0.10:/s1", "is_admin_only": False,
                          "preferred": True, "created_at": T0}),
    ("access_rules", {"id": "a1", "share_id": "s1", "access_type": "ip", "access_to": "10.0.0.0/24",
                      "access_level": "rw", "state": "active", "created_at": T0}),
    ("access_rule_metadata", {"access_id": "a1", "key": "k", "value": "v"}),
    ("share_snapshots", {"id": "n1", "share_id": "s1", "project_id": "p", "size": 1, "share_size": 1,
                         "share_proto": "NFS", "status": "available", "created_at": T0}),
    ("quotas", {"project_id": "p", "resource": "shares", "hard_limit": 10, "created_at": T0}),
    ("jobs", {"id": "j1", "backend": "local", "operation": "extend", "resource_type": "share",
              "resource_id": "s1", "state": "running", "logbook_id": "l1", "flow_detail_id": "f1",
              "created_at": T0}),
    ("job_actions", {"job_id": "j1", "action": "retry", "created_at": T0}),
    ("messages", {"id": "m1", "project_id": "p", "resource_type": "share", "resource_id": "s1", "action_id": "001",
                  "detail_id": "001", "message_level": "ERROR", "user_message": "m", "created_at": T0}),
    ("pools", {"host": "h1@local#pool", "backend": "local", "pool": "pool", "driver_handles_share_servers": True,
               "total_capacity_gb": 10, "free_capacity_gb": 9, "updated_at": T0}),
    ("services", {"host": "h1@local", "binary": "manila-share", "disabled": False, "created_at": T0,
                  "updated_at": T0}),
]


@pytest.fixture
def database(empty_db):
    return empty_db


def _contents(db) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every domain table's columns and rows, as they are now."""
    metadata = sa.MetaData()
    metadata.reflect(db.engine)
    out = {}
    with db.engine.connect() as conn:
        for name, table in metadata.tables.items():
            if name == migrate.VERSION_TABLE:
                continue
            columns = sorted(c.name for c in table.columns)
            rows = conn.execute(sa.select(*(table.c[c] for c in columns))).all()
            out[name] = (columns, sorted(tuple(r) for r in rows))
    return out


def _projected(columns: list[str], rows: list[tuple], keep: list[str]) -> list[tuple]:
    at = [columns.index(c) for c in keep]
    return sorted(tuple(row[i] for i in at) for row in rows)


def _steps() -> list[tuple[str, str]]:
    """(revision, the one it goes down to), from head to base."""
    scripts = ScriptDirectory.from_config(migrate._alembic_config())
    return [(s.revision, s.down_revision or "base") for s in scripts.walk_revisions()]


# Without a snapshot the SQLite rebuild did not fail: it silently took the
# share's metadata, export locations and access rules.
@pytest.mark.parametrize("snapshot", [True, False], ids=["with-snapshot", "without-snapshot"])
def test_each_downgrade_keeps_the_rows_of_the_tables_it_does_not_drop(database, snapshot):
    rows = [(table, row) for table, row in ROWS if snapshot or table != "share_snapshots"]
    with database.engine.begin() as conn:
        command.upgrade(migrate._alembic_config(conn), "head")
    metadata = sa.MetaData()
    metadata.reflect(database.engine)
    with database.engine.begin() as conn:
        for table, row in rows:
            conn.execute(metadata.tables[table].insert().values(**row))
    seeded = _contents(database)
    assert all(seeded[table][1] for table, _ in rows)
    for revision, down in _steps():
        with database.engine.begin() as conn:
            command.downgrade(migrate._alembic_config(conn), down)
        now = _contents(database)
        for table, (columns, rows) in seeded.items():
            if table not in now or table in REWRITTEN and REWRITTEN[table] is None:
                continue
            kept = [c for c in columns if c in now[table][0] and c not in (REWRITTEN.get(table) or ())]
            assert _projected(*now[table], kept) == _projected(columns, rows, kept), \
                f"downgrading {revision} -> {down} changed {table}"
    assert set(_contents(database)) == set()
