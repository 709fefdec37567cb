"""What recording and posting a job writes (shareflow.engine.posting,
shareflow.engine.logbooks), on our real databases and a real ZooKeeper:

* the job's logbook - its flow factory and its whole store - is written in
  the transaction that records the job, so the post writes only the job's
  board id, and the conductor that loads the job finds the store whole and
  writes nothing for it;
* a job recorded by an older version (no logbook yet) gets it at its post;
* a job handed to this process's conductor is not marked posted by its
  poster: the conductor, woken next, records the board job with the job
  running (one write, where there were two); handed by a job running in another conductor's thread (the scheduling
  job), the conductor is woken when that job's run has ended.
"""

from __future__ import annotations

import contextlib
import types

import pytest
import sqlalchemy as sa
from taskflow import states as tf_states

from shareflow.db import jobs as jobs_db
from shareflow.db.models import Job
from shareflow.engine import operations
from shareflow.engine.boards import Boards
from shareflow.engine.conductor import ShareflowConductor, deferring_wakes
from shareflow.engine.loading import job_store, save_store, store_atom
from shareflow.engine.persistence import make_persistence
from shareflow.engine.posting import JobPoster, factory_path, job_details
from shareflow.flows.delete_share import delete_share
from shareflow.wiring import utcnow
from shareflow.engine.outcomes import OutcomeRecorder
from tests.functional.test_engine_storage import counting_writes, recording_round_trips

BOARD = "h@b1"


@pytest.fixture
def persistence(db):
    return make_persistence(db)


def spec(resource_id: str = "s-1"):
    return operations.job_spec("delete_share", backend=BOARD, resource_id=resource_id,
                               store={"share_id": resource_id})


def flow_detail(persistence, job: Job):
    with contextlib.closing(persistence.get_connection()) as conn:
        return conn.get_logbook(job.logbook_id).find(job.flow_detail_id)


def record(db, poster: JobPoster, job_spec) -> Job:
    with db.write() as s:
        job = poster.record(s, job_spec)
        s.expunge(job)
    return job


def test_a_job_is_recorded_with_its_whole_logbook_in_one_transaction(db, persistence):
    poster = JobPoster(db, persistence, None, clock=utcnow)
    job_spec = spec()
    with counting_writes(db.engine) as commits:
        job = record(db, poster, job_spec)
    assert len(commits) == 1
    fd = flow_detail(persistence, job)
    assert fd.meta["factory"]["name"] == factory_path(delete_share).replace(":", ".")
    store = store_atom(fd)
    assert store.state == tf_states.SUCCESS
    assert store.results == {"share_id": "s-1", "resource_id": "s-1", "job_id": job.id, "backend": BOARD}
    # What the conductor that claims the job merges from its posting: found
    # whole, so loading the job writes nothing for it.
    board_job = types.SimpleNamespace(details=job_details(job, job_spec))
    with counting_writes(db.engine) as commits:
        assert save_store(persistence, fd, job_store(board_job, fd)) is False
    assert commits == []


def test_a_record_rolled_back_leaves_no_logbook(db, persistence):
    poster = JobPoster(db, persistence, None, clock=utcnow)
    with pytest.raises(RuntimeError), db.write() as s:
        job = poster.record(s, spec())
        logbook_id = job.logbook_id
        raise RuntimeError("the request fails after recording its job")
    with db.read() as s:
        assert s.scalar(sa.text("select count(*) from logbooks where uuid = :u"), {"u": logbook_id}) == 0
        assert s.get(Job, job.id) is None


@pytest.fixture
def boards(kazoo_client, zk_chroot, persistence):
    b = Boards(kazoo_client, zk_chroot, [BOARD], persistence, conductor=True, request_timeout=10)
    b.connect()
    try:
        yield b
    finally:
        b.close()


def posted_logbook_ok(persistence, job: Job) -> None:
    fd = flow_detail(persistence, job)
    assert store_atom(fd).results["job_id"] == job.id
    assert fd.meta["factory"]["kwargs"] == {}


@pytest.mark.parametrize("where", ["here", "elsewhere"])
def test_posting_a_recorded_job_writes_only_its_board_id(db, persistence, boards, kazoo_client, where):
    """Recorded by this process (its logbook kept in memory) or by another
    (read back, never written again): the post's one write marks it posted."""
    recorder = JobPoster(db, persistence, boards, clock=utcnow)
    poster = recorder if where == "here" else JobPoster(db, persistence, boards, clock=utcnow)
    job_spec = spec()
    job = record(db, recorder, job_spec)
    with counting_writes(db.engine) as commits, recording_round_trips(db.engine) as trips:
        board_job_id = poster.post(job, job_spec)
    assert len(commits) == 1
    # Each a statement of its own: on PostgreSQL no BEGIN and COMMIT around
    # the one write, nor around the logbook's read (nor a ROLLBACK after it).
    read = [] if where == "here" else ["SELECT logbooks", "SELECT flowdetails", "SELECT atomdetails"]
    expected = [*read, "UPDATE jobs"] if not db.is_sqlite else \
        [*(["BEGIN", *read, "ROLLBACK"] if read else []), "BEGIN", "UPDATE jobs", "COMMIT"]
    assert trips == expected, trips
    with db.read() as s:
        assert s.get(Job, job.id).board_job_id == board_job_id
    # A conductor's claim: one statement too.
    with recording_round_trips(db.engine) as trips:
        assert OutcomeRecorder(db, utcnow).job_running(job.id, "a-conductor", board_job_id)
    assert trips == (["UPDATE jobs"] if not db.is_sqlite else ["BEGIN", "UPDATE jobs", "COMMIT"]), trips
    with db.read() as s:
        assert (s.get(Job, job.id).state, s.get(Job, job.id).owner) == ("running", "a-conductor")
    board = boards.get(BOARD)
    (posted,) = [j for j in board.iterjobs(ensure_fresh=True) if j.uuid == board_job_id]
    assert posted.book.uuid == job.logbook_id
    posted_logbook_ok(persistence, job)


def test_a_job_recorded_without_its_logbook_gets_it_at_its_post(db, persistence, boards):
    """A job recorded by the previous version (which saved the logbook at
    the post) and posted by this one, e.g. its scheduling step resumed."""
    job_spec = spec()
    with db.write() as s:
        job = jobs_db.create(
            s, now=utcnow(), id="j-old", backend=BOARD, operation=job_spec.operation,
            resource_type=job_spec.resource_type, resource_id=job_spec.resource_id,
            logbook_id="l-old", flow_detail_id="f-old", attempt=1,
            factory=factory_path(job_spec.factory), factory_kwargs="{}", store='{"share_id": "s-1"}')
        s.expunge(job)
    JobPoster(db, persistence, boards, clock=utcnow).post(job, job_spec)
    posted_logbook_ok(persistence, job)


class Conductor:
    """This process's conductor of the board, as Boards.hand_off sees it:
    woken, it reads the job's record, then marks the job running from the
    board job it was handed (its first write)."""

    def __init__(self, db):
        self.name, self.idle, self._db = "here", True, db
        self.job_id: str | None = None
        self.seen: list = []

    def wake(self) -> None:
        with self._db.read() as s:
            self.seen.append(s.get(Job, self.job_id).board_job_id)


def test_a_handed_job_is_recorded_posted_by_its_conductors_first_write(db, persistence, boards):
    """The post of a handed job writes nothing: the record says which board
    job runs it from the conductor's ``set_running`` on (which a second
    board job of the same record could not pass)."""
    conductor = Conductor(db)
    boards.serve(BOARD, conductor)
    poster = JobPoster(db, persistence, boards, clock=utcnow)
    job_spec = spec()
    job = record(db, poster, job_spec)
    conductor.job_id = job.id
    seen_by_checkpoint: list[str] = []
    with counting_writes(db.engine) as commits:
        board_job_id = poster.post(job, job_spec, hand_off=True, posted=seen_by_checkpoint.append)
    assert len(commits) == 0  # was 1: set_posted before the wake
    assert conductor.seen == [None] and seen_by_checkpoint == [board_job_id]
    (handed,) = [j for j in boards.get(BOARD).iterjobs() if j.uuid == board_job_id]
    # The conductor runs it from the logbook recorded, without reading it back.
    assert store_atom(handed.book.find(job.flow_detail_id)).results["job_id"] == job.id
    with db.write() as s:
        assert jobs_db.set_running(s, job.id, conductor.name, now=utcnow(), board_job_id=board_job_id)
    with db.write() as s:
        assert not jobs_db.set_running(s, job.id, "another", now=utcnow(), board_job_id="job-other")
    with db.read() as s:
        row = s.get(Job, job.id)
        assert (row.board_job_id, row.owner) == (board_job_id, conductor.name)


def test_a_conductor_woken_by_a_running_job_wakes_when_that_run_ends(boards, kazoo_client):
    board = boards.get(BOARD)
    handing = ShareflowConductor("scheduler", board, None, None, poll_interval=60, client=kazoo_client)
    handed = ShareflowConductor("pool", board, None, None, poll_interval=60, client=kazoo_client)
    woken = handed._timeout._wake
    seen = []

    def run(job):  # the scheduling job's run, handing the create job over
        handed.wake()
        seen.append(woken.is_set())
        return True

    handing._dispatch_claimed = run
    assert handing._dispatch_job(object()) is True
    assert seen == [False] and woken.is_set()
    # Asked by a thread running no job (or the run failed): at once, or at its end.
    woken.clear()
    handed.wake()
    assert woken.is_set()
    woken.clear()
    with pytest.raises(RuntimeError), deferring_wakes():
        handed.wake()
        raise RuntimeError("the run failed")
    assert woken.is_set()
