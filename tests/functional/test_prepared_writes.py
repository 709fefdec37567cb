"""The conductors' per-job writes built once (shareflow.db.transitions,
shareflow.db.shares), on real SQLite and PostgreSQL: a conditional
transition is one UPDATE whose statement is reused for every call of its
shape, values bound at execution - and it still moves only from the allowed
statuses, never a soft-deleted row, writing exactly the values given; a
create's export locations are replaced on the table, nothing left in the
session to flush."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from shareflow.db import jobs as jobs_db
from shareflow.db import shares as shares_db
from shareflow.db import transitions
from shareflow.db.models import ExportLocation, Job, Share
from shareflow.domain import states
from tests.functional.test_share_polls import Statements

T0 = datetime(2026, 12, 1, 3, 0, 0)
T1 = datetime(2026, 12, 1, 3, 0, 1)


def make_jobs(db, *ids: str) -> None:
    with db.write() as s:
        for job_id in ids:
            jobs_db.create(s, now=T0, id=job_id, operation="create_share", resource_type="share",
                           resource_id="s", backend="h@b", logbook_id="l", flow_detail_id="f")


def test_a_transition_is_one_update_built_once_for_its_shape(db):
    make_jobs(db, "j-1", "j-2")
    with db.write() as s:
        for job_id in ("j-1", "j-2"):
            jobs_db.get(s, job_id).state = states.JOB_RUNNING
    transitions._conditional_update.cache_clear()
    with Statements(db.engine) as seen:
        for job_id, step in (("j-1", "export"), ("j-2", "finish")):
            with db.write() as s:
                assert jobs_db.finish(s, job_id, states.JOB_REVERTED, now=T1, failed_step=step) is True
    updates = [statement for statement, _ in seen.sent if statement.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 2 and updates[0] == updates[1]
    # Both calls used one statement object: built once, its values bound at execution.
    info = transitions._conditional_update.cache_info()
    assert (info.misses, info.hits) == (1, 1), info
    with db.read() as s:
        rows = {j.id: (j.state, j.failed_step, j.finished_at, j.updated_at) for j in s.scalars(sa.select(Job))}
    assert rows == {"j-1": (states.JOB_REVERTED, "export", T1, T1), "j-2": (states.JOB_REVERTED, "finish", T1, T1)}


def test_a_transition_moves_only_from_its_sources_and_never_a_deleted_row(db):
    make_jobs(db, "j-1")
    with db.write() as s:
        # posted -> cancelled is no transition of a job.
        assert jobs_db.finish(s, "j-1", states.JOB_CANCELLED, now=T1) is False
        assert jobs_db.set_running(s, "j-1", "c1", now=T1) is True
        # Narrowed by ``expected`` to a state the job is not in.
        assert jobs_db.finish(s, "j-1", states.JOB_CANCELLED, now=T1, expected={states.JOB_CANCELLING}) is False
        assert jobs_db.finish(s, "j-1", states.JOB_REVERTED, now=T1, failed_step="export", failure="boom") is True
    with db.read() as s:
        job = jobs_db.get(s, "j-1")
        assert (job.state, job.failed_step, job.failure, job.finished_at) == (
            states.JOB_REVERTED, "export", "boom", T1)
    with db.write() as s:
        shares_db.create(s, now=T0, id="s-1", project_id="p", name="n", size=1, share_proto="NFS",
                         status=states.CREATING)
        shares_db.create(s, now=T0, id="s-2", project_id="p", name="n", size=1, share_proto="NFS",
                         status=states.CREATING, deleted_at=T0)
    with db.write() as s:
        assert shares_db.set_status(s, "s-1", states.AVAILABLE, now=T1) is True
        assert shares_db.set_status(s, "s-2", states.AVAILABLE, now=T1) is False
    with db.read() as s:
        assert s.get(Share, "s-1").status == states.AVAILABLE
        assert s.get(Share, "s-2").status == states.CREATING


def test_a_creates_export_locations_are_replaced_on_the_table(db):
    with db.write() as s:
        shares_db.create(s, now=T0, id="s-1", project_id="p", name="n", size=1, share_proto="NFS",
                         status=states.CREATING)
        s.add(ExportLocation(id="old", share_id="s-1", path="h:/old", is_admin_only=False, preferred=True,
                             created_at=T0))
    with db.write() as s:
        shares_db.replace_export_locations(s, "s-1", ["h:/a", "h:/b"], now=T1)
        assert not s.new  # nothing left for the ORM to flush at commit
    with db.read() as s:
        rows = sorted((el.path, el.preferred, el.is_admin_only, el.created_at)
                      for el in s.scalars(sa.select(ExportLocation).where(ExportLocation.share_id == "s-1")))
    assert rows == [("h:/a", True, False, T1), ("h:/b", False, False, T1)]


def test_set_running_is_built_once_and_binds_its_values(db):
    """A claim's mark (one or two UPDATEs) reuses one statement per shape;
    the values bound at execution land exactly, and its fences hold: another
    board job of the record is refused, a cancelling job stays cancelling."""
    make_jobs(db, "j-1", "j-2", "j-3")
    jobs_db._SET_RUNNING.clear()
    with Statements(db.engine) as seen:
        with db.write() as s:
            assert jobs_db.set_running(s, "j-1", "c1", now=T1, board_job_id="b-1") is True
            assert jobs_db.set_running(s, "j-2", "c2", now=T1, board_job_id="b-2") is True
    updates = [statement for statement, _ in seen.sent if statement.lstrip().upper().startswith("UPDATE")]
    assert len(updates) == 2 and updates[0] == updates[1]
    assert set(jobs_db._SET_RUNNING) == {(True, False)}
    with db.write() as s:
        # The same record claimed from another board job: refused, unchanged.
        assert jobs_db.set_running(s, "j-1", "c9", now=T0, board_job_id="b-other") is False
        jobs_db.get(s, "j-3").state = states.JOB_CANCELLING
    with db.write() as s:
        assert jobs_db.set_running(s, "j-3", "c3", now=T1) is True
    with db.read() as s:
        rows = {j.id: (j.state, j.owner, j.board_job_id, j.started_at, j.updated_at)
                for j in s.scalars(sa.select(Job))}
    assert rows == {
        "j-1": (states.JOB_RUNNING, "c1", "b-1", T1, T1),
        "j-2": (states.JOB_RUNNING, "c2", "b-2", T1, T1),
        "j-3": (states.JOB_CANCELLING, "c3", None, T1, T1),
    }
