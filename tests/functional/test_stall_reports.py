"""The housekeeping's report of stalled jobs, in process over a real ZooKeeper
and database (SQLite and PostgreSQL) with a conductor worker's boards and a
clock the test moves: a claimed job is never reported, a stalled one once per
stall (of two workers looking at once, one reports it), again after a new
claim was lost; nothing else changes."""

from __future__ import annotations

import contextlib
import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from shareflow.db import jobs as jobs_db
from shareflow.db import migrate
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import Message, Share
from shareflow.domain import states
from shareflow.engine import operations
from shareflow.engine.boards import Boards, every_job
from shareflow.engine.housekeeping import STALL_REPORTED, report_stalled_jobs
from shareflow.engine.persistence import make_persistence
from shareflow.engine.posting import JobPoster
from shareflow.engine.stalls import StallChecker
from shareflow.wiring import utcnow

STALL_AFTER = 60.0
PROJECT = "tenant-report"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    url = (f"sqlite:///{tmp_path / 'shareflow.db'}" if request.param == "sqlite"
           else request.getfixturevalue("postgres_db_url"))
    database = Database(url)
    migrate.upgrade(database)
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture
def boards(kazoo_client, zk_chroot, db):
    """A conductor worker's boards (their ``iterjobs`` hides claimed jobs)."""
    b = Boards(kazoo_client, zk_chroot, ["b1"], make_persistence(db), conductor=True)
    b.connect()
    try:
        yield b
    finally:
        b.close()


def posted_create(db, boards):
    share_id = str(uuid.uuid4())
    poster = JobPoster(db, make_persistence(db), boards, clock=utcnow)
    with db.write() as s:
        shares_db.create(s, now=utcnow(), id=share_id, project_id=PROJECT, size=1, share_proto="NFS",
                         status=states.CREATING, backend="b1", is_public=False)
        spec = operations.job_spec("create_share", backend="b1", resource_id=share_id, project_id=PROJECT,
                                   store={"share_id": share_id, "size": 1, "share_network_id": None})
        job = poster.record(s, spec)
    poster.post(job, spec)
    with db.read() as s:
        return jobs_db.get(s, job.id)


def test_stalled_jobs_are_reported_once_per_stall(db, boards):
    job = posted_create(db, boards)
    t0 = utcnow()
    clock = [t0]
    stalls = StallChecker(lambda: contextlib.nullcontext(boards), STALL_AFTER, lambda: clock[0])

    def report(at):
        clock[0] = at
        return report_stalled_jobs(db, stalls, ["b1"], host="hk-host", now=at, stall_after=STALL_AFTER)

    assert report(t0) == []  # just posted
    (on_board,) = every_job(boards.get("b1"))
    board = boards.get("b1")
    board.claim(on_board, "worker-x")
    assert report(t0 + timedelta(minutes=10)) == []  # claimed: however long, never stalled
    board.abandon(on_board, "worker-x")

    # Two workers find it at once: one reports it.
    barrier = threading.Barrier(2)
    results: list = []

    def worker():
        barrier.wait()
        results.append(report_stalled_jobs(db, stalls, ["b1"], host="hk-host",
                                           now=t0 + timedelta(minutes=10), stall_after=STALL_AFTER))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == [[], [job.id]]
    assert report(t0 + timedelta(minutes=20)) == []  # the same stall: said once

    # Claimed again later (a conductor marked it running), and that claim lost too: a new stall.
    with db.write() as s:
        jobs_db.set_running(s, job.id, "worker-y", now=t0 + timedelta(minutes=30))
    assert report(t0 + timedelta(minutes=30, seconds=30)) == []  # not quiet for stall_after yet
    assert report(t0 + timedelta(minutes=35)) == [job.id]
    assert report(t0 + timedelta(minutes=40)) == []

    with db.read() as s:
        history = jobs_db.actions(s, job.id)
        messages = list(s.scalars(sa.select(Message).where(Message.resource_id == job.resource_id)
                                  .order_by(Message.created_at)))
        current = jobs_db.get(s, job.id)
        share = s.get(Share, job.resource_id)
    assert [(a.action, a.from_state, a.to_state) for a in history] == [
        (STALL_REPORTED, states.JOB_POSTED, states.JOB_POSTED),
        (STALL_REPORTED, states.JOB_RUNNING, states.JOB_RUNNING)]
    assert all(a.note.startswith("found stalled by housekeeping on hk-host: no live conductor has claimed it")
               for a in history)
    assert [(m.project_id, m.resource_type, m.action_id, m.detail_id) for m in messages] == [
        (PROJECT, "SHARE", "002", "001")] * 2
    assert messages[0].user_message.startswith("create: waiting for an administrator: no service has worked "
                                               f"on it since {t0:%Y-%m-%d} ")
    assert messages[0].user_message.endswith(f"UTC. It stays as it is until an administrator resumes job {job.id}.")
    assert f"since {(t0 + timedelta(minutes=30)).isoformat(sep=' ', timespec='seconds')} UTC" in \
        messages[1].user_message
    # Nothing else changed: the job as the conductor left it, the share creating.
    assert (current.state, current.attempt, current.board_job_id) == (states.JOB_RUNNING, 1, job.board_job_id)
    assert share.status == states.CREATING
