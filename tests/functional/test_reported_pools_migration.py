"""Migration 0008 on real SQLite and PostgreSQL, from a 0007 database with
data: two hosts with a backend of the same name get a counter each, rows
keyed by a bare backend name become ``host@backend`` (from the row's own host,
or the resource a job works on), share services are made from the pools
reported, and the re-written triggers keep the per-pool counters from then
on. Its downgrade gives the bare names back."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic import command

from shareflow.db import migrate
from shareflow.db import pools as pools_db
from shareflow.db import share_services
from shareflow.db import shares as shares_db
from shareflow.domain import states

NOW = datetime(2026, 11, 30, 12, 0, 0)
A_LOCAL, B_LOCAL, A_SOLO = "hosta@local#pool0", "hostb@local#pool0", "hosta@solo#pool0"


@pytest.fixture
def old_db(empty_db):
    """A database at 0007 (before pools were reported per host)."""
    with empty_db.engine.begin() as conn:
        command.upgrade(migrate._alembic_config(conn), "0007")
    return empty_db


def _fill_0007(conn) -> None:
    x = lambda sql, **p: conn.execute(sa.text(sql), {"now": NOW, **p})  # noqa: E731
    x("INSERT INTO share_types (id, name, is_public, created_at) VALUES ('t', 't', true, :now)")
    for sid, host, size in (("sa", A_LOCAL, 2), ("sb", B_LOCAL, 3), ("sc", A_LOCAL, 4), ("sd", A_SOLO, 5)):
        x("INSERT INTO shares (id, project_id, size, share_proto, status, access_rules_status, share_type_id, "
          "host, backend, is_public, created_at) VALUES (:id, 'p', :size, 'NFS', 'available', 'active', 't', "
          ":host, :backend, false, :now)", id=sid, size=size, host=host,
          backend=host.partition("@")[2].partition("#")[0])
    x("INSERT INTO share_snapshots (id, share_id, project_id, size, share_size, share_proto, status, created_at) "
      "VALUES ('na', 'sb', 'p', 3, 3, 'NFS', 'creating', :now)")
    x("INSERT INTO access_rules (id, share_id, access_type, access_to, access_level, state, created_at) "
      "VALUES ('ra', 'sa', 'ip', '10.0.0.1', 'rw', 'queued_to_apply', :now)")
    x("INSERT INTO share_servers (id, share_network_id, share_network_subnet_id, project_id, backend, host, "
      "status, is_auto_deletable, created_at) VALUES ('va', 'n', 'u', 'p', 'local', 'hostb@local', 'active', "
      "true, :now)")
    for host in (A_LOCAL, B_LOCAL, A_SOLO):
        x("INSERT INTO pools (host, backend, pool, driver_handles_share_servers, total_capacity_gb, "
          "free_capacity_gb, updated_at) VALUES (:host, :backend, 'pool0', false, 100, 90, :now)",
          host=host, backend=host.partition("@")[2].partition("#")[0])
    jobs = [("j-share", "local", "share", "sb"), ("j-snap", "local", "snapshot", "na"),
            ("j-rule", "local", "access_rule", "ra"), ("j-server", "local", "share_server", "va"),
            # Their resources purged: one host has 'solo', two have 'local'.
            ("j-solo", "solo", "share", "gone"), ("j-local", "local", "share", "gone")]
    for jid, backend, rtype, rid in jobs:
        x("INSERT INTO jobs (id, backend, operation, resource_type, resource_id, state, logbook_id, "
          "flow_detail_id, created_at) VALUES (:id, :backend, 'op', :rtype, :rid, 'posted', 'l', 'f', :now)",
          id=jid, backend=backend, rtype=rtype, rid=rid)


def _column(database, table: str, key: str, value: str) -> str:
    with database.engine.connect() as conn:
        return conn.execute(sa.text(f"SELECT backend FROM {table} WHERE {key} = :v"), {"v": value}).scalar()


def test_upgrade_from_0007_rekeys_rows_counters_and_triggers(old_db):
    with old_db.engine.begin() as conn:
        _fill_0007(conn)
        # 0005's counter: both hosts' 'local' in one row.
        assert conn.execute(sa.text(
            "SELECT allocated_capacity_gb FROM pool_allocations WHERE backend = 'local'")).scalar() == 9
    migrate.upgrade(old_db)

    assert [_column(old_db, "shares", "id", s) for s in ("sa", "sb", "sc", "sd")] == [
        "hosta@local", "hostb@local", "hosta@local", "hosta@solo"]
    with old_db.read() as s:
        assert shares_db.get_any(s, "sb").host == B_LOCAL  # Manila's host@backend#pool, unchanged
    assert _column(old_db, "share_servers", "id", "va") == "hostb@local"
    jobs = {j: _column(old_db, "jobs", "id", j) for j in
            ("j-share", "j-snap", "j-rule", "j-server", "j-solo", "j-local")}
    assert jobs == {"j-share": "hostb@local", "j-snap": "hostb@local", "j-rule": "hosta@local",
                    "j-server": "hostb@local", "j-solo": "hosta@solo",
                    # Which host's? Unknown: left on no host's board (shown stalled, never run elsewhere).
                    "j-local": "local"}
    with old_db.read() as s:
        assert {p: pools_db.allocated_gb(s, p) for p in (A_LOCAL, B_LOCAL, A_SOLO)} == {
            A_LOCAL: 6, B_LOCAL: 3, A_SOLO: 5}
        services = share_services.list_(s)
        assert [(r.host, r.disabled, r.binary) for r in services] == [
            ("hosta@local", False, "manila-share"), ("hosta@solo", False, "manila-share"),
            ("hostb@local", False, "manila-share")]  # Manila's binary name (0010)
        assert all(r.updated_at == NOW for r in services)  # the pools' last report
        states_ = {p.host: p for p in pools_db.pool_states(s, now=NOW, stale_after=60)}
        assert set(states_) == {A_LOCAL, B_LOCAL, A_SOLO}
        b = states_[B_LOCAL]
        assert (b.service_host, b.backend, b.pool, b.allocated_capacity_gb, b.enabled) == (
            "hostb", "local", "pool0", 3.0, True)
        assert b.capabilities["driver_handles_share_servers"] is False
        assert pools_db.drifted(s) == {}

    # The triggers follow the pool: hostb's share grows, only hostb's counter moves.
    with old_db.write() as s:
        assert shares_db.set_status(s, "sb", states.EXTENDING, now=NOW, pending_size=10)
    with old_db.read() as s:
        assert (pools_db.allocated_gb(s, A_LOCAL), pools_db.allocated_gb(s, B_LOCAL)) == (6, 10)
        assert pools_db.drifted(s) == {}

    with old_db.engine.begin() as conn:
        command.downgrade(migrate._alembic_config(conn), "0007")
    assert _column(old_db, "shares", "id", "sb") == "local"
    assert _column(old_db, "jobs", "id", "j-solo") == "solo"
    with old_db.engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT allocated_capacity_gb FROM pool_allocations WHERE backend = 'local'")).scalar() == 16
    assert "services" not in sa.inspect(old_db.engine).get_table_names()
    migrate.upgrade(old_db)
    with old_db.read() as s:
        assert (pools_db.allocated_gb(s, A_LOCAL), pools_db.allocated_gb(s, B_LOCAL)) == (6, 10)
        assert pools_db.drifted(s) == {}
