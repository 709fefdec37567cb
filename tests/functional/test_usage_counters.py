"""Usage counters (``quota_usages``, ``pool_allocations``) on real SQLite and
PostgreSQL: whatever path writes a share or snapshot row - a request's insert,
a job's status moves through ``shareflow.db.resources``, a resize's pending
size, an admin's override, a job that could not be posted deleting its row -
the counters equal a recount of the live rows afterwards, and migration 0005
fills them from the rows that were there before it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa

from shareflow.db import migrate
from shareflow.db import pools as pools_db
from shareflow.db import quotas as quotas_db
from shareflow.db import resources
from shareflow.db import shares as shares_db
from shareflow.db import share_types as types_db
from shareflow.db import snapshots as snapshots_db
from shareflow.db.engine import Database
from shareflow.domain import states

NOW = datetime(2026, 11, 30, 12, 0, 0)
OP = states.OPERATIONS


def no_drift(db: Database) -> None:
    with db.read() as s:
        assert quotas_db.drifted(s) == {}
        assert pools_db.drifted(s) == {}


def _type(db: Database) -> str:
    with db.write() as s:
        return types_db.create(s, now=NOW, name=f"t-{uuid.uuid4().hex[:6]}",
                               specs={"driver_handles_share_servers": "False"}).id


def _share(db: Database, type_id: str, project: str, size: int, *, backend: str | None = "b1",
           status: str = states.CREATING) -> str:
    with db.write() as s:
        return shares_db.create(
            s, now=NOW, id=str(uuid.uuid4()), project_id=project, size=size, share_proto="NFS",
            status=status, share_type_id=type_id, is_public=False, backend=f"h@{backend}" if backend else None,
            host=f"h@{backend}#p" if backend else None,
        ).id


def _snapshot(db: Database, share_id: str, project: str, size: int) -> str:
    with db.write() as s:
        return snapshots_db.create(
            s, now=NOW, id=str(uuid.uuid4()), share_id=share_id, project_id=project, size=size,
            share_size=size, share_proto="NFS", status=states.CREATING,
        ).id


def test_counters_follow_create_resize_fail_and_delete_cycles(db):
    type_id = _type(db)
    for cycle in range(3):
        project = f"p{cycle % 2}"
        ok, failed = _share(db, type_id, project, 2), _share(db, type_id, project, 3)
        unplaced = _share(db, type_id, project, 4, backend=None, status=states.ERROR)  # no valid host
        with db.write() as s:
            resources.succeed(s, OP["create_share"], ok, {"export_locations": ["x:/a"]}, now=NOW)
            assert resources.fail(s, OP["create_share"], failed, states.ERROR, now=NOW)
        no_drift(db)
        with db.read() as s:
            used = quotas_db.usage(s, project)
        assert used[quotas_db.SHARES] >= 1 and used[quotas_db.GIGABYTES] >= 2

        # An extend holds its new size while it runs; a failed one gives it back.
        with db.write() as s:
            assert shares_db.set_status(s, ok, states.EXTENDING, now=NOW, pending_size=6)
        no_drift(db)
        with db.write() as s:
            assert resources.fail(s, OP["extend_share"], ok, states.EXTENDING_ERROR, now=NOW)
        no_drift(db)
        with db.write() as s:
            assert resources.take_back(s, OP["extend_share"], ok, {"new_size": 5}, now=NOW)
            resources.succeed(s, OP["extend_share"], ok, {"new_size": 5}, now=NOW)
        no_drift(db)

        # Snapshots: one succeeds, one fails, one is never posted.
        snap, bad, unposted = (_snapshot(db, ok, project, 5) for _ in range(3))
        with db.write() as s:
            resources.succeed(s, OP["create_snapshot"], snap, {"provider_location": "/s"}, now=NOW)
            assert resources.fail(s, OP["create_snapshot"], bad, states.ERROR, now=NOW)
            resources.give_back(s, OP["create_snapshot"], unposted, None, now=NOW)
        no_drift(db)

        # An admin's reset of the failed share to available counts it again.
        with db.write() as s:
            assert shares_db.override_status(s, failed, states.AVAILABLE, now=NOW, expected=states.ERROR)
        no_drift(db)

        # Everything deleted, by every path: jobs, a never-posted create, an error share.
        with db.write() as s:
            for sid in (snap, bad):
                assert snapshots_db.set_status(s, sid, states.DELETING, now=NOW)
                resources.succeed(s, OP["delete_snapshot"], sid, {}, now=NOW)
            for sid in (ok, failed):
                assert shares_db.set_status(s, sid, states.DELETING, now=NOW)
                resources.succeed(s, OP["delete_share"], sid, {"share_id": sid}, now=NOW)
            shares_db.mark_deleted(s, unplaced, now=NOW)
        no_drift(db)
        posted_never = _share(db, type_id, project, 7)
        with db.write() as s:
            resources.give_back(s, OP["create_share"], posted_never, None, now=NOW)
        no_drift(db)

    with db.read() as s:
        for project in ("p0", "p1"):
            assert quotas_db.usage(s, project) == dict.fromkeys(quotas_db.RESOURCES, 0)
        assert pools_db.allocated_gb(s, "h@b1#p") == 0


def test_counters_are_exact_figures_not_just_consistent(db):
    """The counters carry Manila's meaning: an error share holds no quota but
    its pool still holds its space until it is deleted."""
    type_id = _type(db)
    project = f"p-{uuid.uuid4().hex[:6]}"
    live = _share(db, type_id, project, 2)
    broken = _share(db, type_id, project, 3)
    _snapshot(db, live, project, 2)
    with db.write() as s:
        assert resources.fail(s, OP["create_share"], broken, states.ERROR, now=NOW)
        assert shares_db.set_status(s, live, states.AVAILABLE, now=NOW)
        assert shares_db.set_status(s, live, states.SHRINKING, now=NOW, pending_size=1)
    with db.read() as s:
        assert quotas_db.usage(s, project) == {quotas_db.SHARES: 1, quotas_db.GIGABYTES: 2,
                                               quotas_db.SNAPSHOTS: 1, quotas_db.SNAPSHOT_GIGABYTES: 2}
        assert pools_db.allocated_gb(s, "h@b1#p") == 5
        assert s.scalar(sa.text("SELECT count(*) FROM quota_usages WHERE reserved <> 0")) == 0
    no_drift(db)


def test_migration_0005_fills_the_counters_from_the_rows(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'old.sqlite'}")
    try:
        from alembic import command

        with database.engine.begin() as conn:
            command.upgrade(migrate._alembic_config(conn), "0004")
            conn.execute(sa.text(
                "INSERT INTO share_types (id, name, is_public, created_at) VALUES ('t', 't', 1, :now)"
            ), {"now": NOW})
            rows = [("s1", "pa", 2, None, "available", "b1", None), ("s2", "pa", 3, 5, "extending", "b1", None),
                    ("s3", "pa", 4, None, "error", "b1", None), ("s4", "pb", 1, None, "available", "b2", None),
                    ("s5", "pa", 9, None, "available", "b1", NOW), ("s6", "pb", 8, None, "error", None, None)]
            for sid, project, size, pending, status, backend, deleted in rows:
                conn.execute(sa.text(
                    "INSERT INTO shares (id, project_id, size, pending_size, share_proto, status, "
                    "access_rules_status, share_type_id, host, backend, is_public, deleted_at, created_at) "
                    "VALUES (:id, :p, :size, :pending, 'NFS', :status, 'active', 't', :host, :backend, 0, "
                    ":deleted, :now)"
                ), {"id": sid, "p": project, "size": size, "pending": pending, "status": status,
                    "host": f"h@{backend}#p" if backend else None, "backend": backend, "deleted": deleted,
                    "now": NOW})
            conn.execute(sa.text(
                "INSERT INTO share_snapshots (id, share_id, project_id, size, share_size, share_proto, status, "
                "created_at) VALUES ('n1', 's1', 'pa', 2, 2, 'NFS', 'available', :now)"
            ), {"now": NOW})
        migrate.upgrade(database)
        with database.read() as s:
            assert quotas_db.usage(s, "pa") == {quotas_db.SHARES: 2, quotas_db.GIGABYTES: 7,
                                                quotas_db.SNAPSHOTS: 1, quotas_db.SNAPSHOT_GIGABYTES: 2}
            assert quotas_db.usage(s, "pb") == {quotas_db.SHARES: 1, quotas_db.GIGABYTES: 1,
                                                quotas_db.SNAPSHOTS: 0, quotas_db.SNAPSHOT_GIGABYTES: 0}
            assert (pools_db.allocated_gb(s, "h@b1#p"), pools_db.allocated_gb(s, "h@b2#p")) == (11, 1)
        no_drift(database)
        # And the triggers run from then on.
        with database.write() as s:
            assert shares_db.set_status(s, "s1", states.DELETING, now=NOW)
            shares_db.mark_deleted(s, "s1", now=NOW)
        with database.read() as s:
            assert quotas_db.usage(s, "pa")[quotas_db.GIGABYTES] == 5
            assert pools_db.allocated_gb(s, "h@b1#p") == 9
        no_drift(database)
    finally:
        database.dispose()


def test_shareflow_db_check_usage_reports_drift(tmp_path, capsys):
    """The operator's check: 0 while the counters match, 1 naming the project
    and the pool once a counter was changed behind the triggers' back."""
    from shareflow.cli.main import main

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    cfg = tmp_path / "shareflow.toml"
    cfg.write_text(f'state_dir = "{tmp_path}/var"\n[database]\nurl = "{url}"\n')
    database = Database(url)
    try:
        migrate.upgrade(database)
        type_id = _type(database)
        _share(database, type_id, "pc", 2)
        assert main(["--config", str(cfg), "db", "check-usage"]) == 0
        assert "match" in capsys.readouterr().out
        with database.write() as s:
            s.execute(sa.text("UPDATE quota_usages SET in_use = in_use + 1 WHERE resource = 'gigabytes'"))
            s.execute(sa.text("UPDATE pool_allocations SET allocated_capacity_gb = 7"))
        assert main(["--config", str(cfg), "db", "check-usage"]) == 1
        out = capsys.readouterr().out
        assert "project pc" in out and "'gigabytes': 3" in out and "pool h@b1#p: allocated 7 GiB, live shares 2" in out
    finally:
        database.dispose()


def test_the_scheduler_never_overcommits_a_pool_by_its_counter(db, tmp_path):
    """Placement and an extend's room come from the conductor's report and the
    pool's allocated_capacity_gb counter: every live share on the backend
    (even one in error, which still holds its volume's place) and an extend's
    pending size count; a deleted share gives its space back."""
    from shareflow.exceptions import NoValidHost
    from shareflow.scheduler.filter_scheduler import FilterScheduler
    from shareflow.scheduler.scheduler import Scheduler, request_spec

    scheduler = Scheduler(FilterScheduler(["CapacityFilter"], {"CapacityWeigher": 1.0}), clock=lambda: NOW)

    def place(size_gb):
        try:
            return scheduler.place(s, request_spec(size_gb=size_gb, share_proto="NFS"))
        except NoValidHost:
            return None

    type_id = _type(db)
    with db.write() as s:
        pools_db.report(s, host="h@b1#p", backend="b1", pool="p", dhss=False, total_gb=10, free_gb=9, now=NOW)
    a, b = _share(db, type_id, "pa", 4), _share(db, type_id, "pb", 3)
    with db.write() as s:
        assert resources.fail(s, OP["create_share"], b, states.ERROR, now=NOW)
        assert place(4) is None  # 10 - 7 promised
        assert place(3).host == "h@b1#p"
        assert scheduler.has_room(s, "h@b1#p", 3) and not scheduler.has_room(s, "h@b1#p", 4)
        assert shares_db.set_status(s, a, states.AVAILABLE, now=NOW)
        assert shares_db.set_status(s, a, states.EXTENDING, now=NOW, pending_size=6)
        assert place(2) is None  # 10 - (6 + 3)
        assert place(1) is not None
    with db.write() as s:
        assert shares_db.override_status(s, b, states.DELETING, now=NOW, expected=states.ERROR)
        resources.succeed(s, OP["delete_share"], b, {"share_id": b}, now=NOW)
        assert place(4).host == "h@b1#p"
        assert pools_db.allocated_gb(s, "h@b1#p") == 6
    no_drift(db)


def test_migration_0005_downgrades_and_upgrades_again(db):
    """Its downgrade removes the tables and the triggers (rows are written
    without them), and upgrading again refills the counters from the rows."""
    from alembic import command

    type_id = _type(db)
    share = _share(db, type_id, "pd", 3)
    with db.engine.begin() as conn:
        command.downgrade(migrate._alembic_config(conn), "0004")
    assert not {"quota_usages", "pool_allocations"} & set(sa.inspect(db.engine).get_table_names())
    # Plain SQL: the ORM's models are the latest schema's (columns 0004 lacks).
    with db.write() as s:
        changed = s.execute(sa.text("UPDATE shares SET status = :status, size = 4 WHERE id = :id"),
                            {"status": states.AVAILABLE, "id": share})
        assert changed.rowcount == 1
    migrate.upgrade(db)
    with db.read() as s:
        assert quotas_db.usage(s, "pd")[quotas_db.GIGABYTES] == 4
        assert pools_db.allocated_gb(s, "h@b1#p") == 4
    no_drift(db)
