"""The schema on real SQLite and PostgreSQL: migrations match the models,
TaskFlow's tables live beside ours, and conditional transitions hold."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shareflow.db import migrate
from shareflow.db import shares as shares_db
from shareflow.db import share_types as types_db
from shareflow.db.engine import Database
from shareflow.db.models import Base
from shareflow.domain import states

NOW = datetime(2026, 11, 21, 12, 0, 0)


def test_migrations_match_models(db):
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": migrate.VERSION_TABLE})
        # TaskFlow's tables (and their indexes) are not ours to describe.
        diffs = [d for d in compare_metadata(ctx, Base.metadata) if not _taskflows(d)]
    assert diffs == []
    assert migrate.current_revision(db) == migrate.head_revision()


TASKFLOW_TABLES = {"logbooks", "flowdetails", "atomdetails", "alembic_version"}


def _taskflows(diff) -> bool:
    kind, obj = diff[0], diff[1]
    if kind == "remove_table":
        return obj.name in TASKFLOW_TABLES
    if kind == "remove_index":
        return obj.table.name in TASKFLOW_TABLES
    return False


def test_taskflow_tables_beside_ours(db):
    names = set(sa.inspect(db.engine).get_table_names())
    assert {"logbooks", "flowdetails", "atomdetails"} <= names
    assert {"shares", "jobs", "messages", migrate.VERSION_TABLE} <= names


def test_upgrade_is_idempotent(db):
    migrate.upgrade(db)
    assert migrate.current_revision(db) == migrate.head_revision()


def _share(db) -> str:
    with db.write() as s:
        st = types_db.create(s, now=NOW, name="t", specs={"driver_handles_share_servers": "False"})
        share = shares_db.create(
            s, now=NOW, id="00000000-0000-0000-0000-000000000001", project_id="p", size=1,
            share_proto="NFS", status=states.AVAILABLE, share_type_id=st.id, is_public=False,
        )
        return share.id


def test_conditional_transition_has_one_winner(db):
    share_id = _share(db)
    winners = []
    barrier = threading.Barrier(8)

    def contend():
        barrier.wait()
        with db.write() as s:
            if shares_db.set_status(s, share_id, states.DELETING, now=NOW):
                winners.append(1)

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1
    with db.read() as s:
        assert shares_db.get(s, share_id).status == states.DELETING


def test_transition_refuses_disallowed_source(db):
    share_id = _share(db)
    with db.write() as s:
        assert not shares_db.set_status(s, share_id, states.CREATING, now=NOW)
        assert not shares_db.set_status(s, share_id, states.ERROR_DELETING, now=NOW)
    with db.read() as s:
        assert shares_db.get(s, share_id).status == states.AVAILABLE


def test_migration_0004_tells_reverted_from_revert_failed(tmp_path):
    """Jobs recorded ``failed`` before the steering states: ``revert_failed``
    where TaskFlow's flow detail ended FAILURE, ``reverted`` otherwise."""
    import contextlib

    from alembic import command

    from shareflow.engine.persistence import make_persistence

    database = Database(f"sqlite:///{tmp_path / 'old.sqlite'}")
    try:
        with database.engine.begin() as conn:
            command.upgrade(migrate._alembic_config(conn), "0003")
        with contextlib.closing(make_persistence(database).get_connection()) as tf:
            tf.upgrade()
        with database.engine.begin() as conn:
            for job_id, flow_state in (("j-undone", "REVERTED"), ("j-left", "FAILURE"), ("j-ok", "SUCCESS")):
                conn.execute(sa.text(
                    "INSERT INTO logbooks (uuid, name, created_at) VALUES (:id, 'b', :now)"
                ), {"id": f"lb-{job_id}", "now": NOW})
                conn.execute(sa.text(
                    "INSERT INTO flowdetails (uuid, parent_uuid, name, state, created_at) "
                    "VALUES (:id, :lb, 'f', :state, :now)"
                ), {"id": f"fd-{job_id}", "lb": f"lb-{job_id}", "state": flow_state, "now": NOW})
                conn.execute(sa.text(
                    "INSERT INTO jobs (id, backend, operation, resource_type, resource_id, state, logbook_id, "
                    "flow_detail_id, created_at) VALUES (:id, 'b1', 'create_share', 'share', 'r', :state, "
                    ":lb, :fd, :now)"
                ), {"id": job_id, "state": "succeeded" if flow_state == "SUCCESS" else "failed",
                    "lb": f"lb-{job_id}", "fd": f"fd-{job_id}", "now": NOW})
        migrate.upgrade(database)
        with database.engine.connect() as conn:
            rows = dict(conn.execute(sa.text("SELECT id, state FROM jobs")).all())
            attempts = set(conn.execute(sa.text("SELECT attempt FROM jobs")).scalars())
        assert rows == {"j-undone": states.JOB_REVERTED, "j-left": states.JOB_REVERT_FAILED,
                        "j-ok": states.JOB_SUCCEEDED}
        assert attempts == {1}
    finally:
        database.dispose()
