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
import functools
import threading
import types

import pytest
import sqlalchemy as sa
from taskflow import states as tf_states
from taskflow import task
from taskflow.patterns import linear_flow

from shareflow.db import jobs as jobs_db
from shareflow.db.models import Job
from shareflow.engine import operations
from shareflow.engine.boards import Boards
from shareflow.engine.conductor import ShareflowConductor, deferring_wakes
from shareflow.engine.loading import job_store, save_store, store_atom
from shareflow.engine.persistence import make_persistence
from shareflow.engine.posting import JobPoster, JobSpec, factory_path, job_details, spec_of
from shareflow.engine.runtime import Runtime
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

    def handed(self, job_uuid: str, job_id: str) -> None:
        self.wake()


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


# A job that hands another to this process's conductor of its board, as
# the scheduling job hands its share's create job (shareflow.engine.placement).
#: The steps the handed jobs ran, by job id.
RAN: dict[str, int] = {}


class HandedStep(task.Task):
    def execute(self, job_id):
        RAN[job_id] = RAN.get(job_id, 0) + 1


def handed_flow():
    return linear_flow.Flow("handed").add(HandedStep("handed_step"))


class HandOver(task.Task):
    def execute(self, runtime, next_job_id, fail_after=False):
        with runtime.db.read() as s:
            job = s.get(Job, next_job_id)
            s.expunge(job)
        runtime.poster.post(job, spec_of(job, handed_flow), hand_off=True)
        if fail_after:
            raise RuntimeError("the handing job fails after its hand-off")


def handing_flow():
    return linear_flow.Flow("handing").add(HandOver("hand_over"))


class CountingRecorder(OutcomeRecorder):
    """Which ``job_running`` calls were made in a transaction of their own
    (False) or inside another (True), by job id."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.running: list[tuple[str, bool]] = []

    def job_running(self, job_id, owner, board_job_id=None, *, connection=None):
        self.running.append((job_id, connection is not None))
        if connection is None:
            return super().job_running(job_id, owner, board_job_id)
        return super().job_running(job_id, owner, board_job_id, connection=connection)


HANDING_BOARD = "h@sched"


@contextlib.contextmanager
def two_conductors(db, persistence, kazoo_client, zk_chroot):
    """The handing board's conductor and the handed board's (this process's
    conductor of it, served for hand-offs), each running in a thread; the
    handed one polls only once a minute: only the hand-off wakes it."""
    boards = Boards(kazoo_client, zk_chroot, [HANDING_BOARD, BOARD], persistence, conductor=True,
                    request_timeout=10)
    boards.connect()
    recorder = CountingRecorder(db, utcnow)
    runtime = Runtime(config=None, db=db, backends={}, locks=None, recorder=recorder, clock=utcnow,
                      poster=JobPoster(db, persistence, boards, clock=utcnow))
    handing = ShareflowConductor("h.1.w0.sched", boards.get(HANDING_BOARD), persistence, runtime,
                                 poll_interval=0.05, client=kazoo_client)
    handed = ShareflowConductor("h.1.w0.b1", boards.get(BOARD), persistence, runtime, poll_interval=60,
                                client=kazoo_client)
    boards.serve(BOARD, handed)
    done = {c.name: threading.Semaphore(0) for c in (handing, handed)}
    #: conductor name -> the board jobs it finished, in order.
    ended: dict[str, list] = {c.name: [] for c in (handing, handed)}

    def on_end(name, _state, details):
        ended[name].append(details["job"].uuid)
        done[name].release()

    for c in (handing, handed):
        for event in ("job_consumed", "job_abandoned", "job_trashed"):
            c.notifier.register(event, functools.partial(on_end, c.name))
    threads = [threading.Thread(target=c.run, daemon=True) for c in (handing, handed)]
    for t in threads:
        t.start()
    try:
        yield types.SimpleNamespace(boards=boards, runtime=runtime, recorder=recorder, handing=handing,
                                    handed=handed, done=done, ended=ended)
    finally:
        for c in (handing, handed):
            c.stop()
        for t in threads:
            t.join(timeout=10)
        boards.close()


def hand_over(db, env, *, fail_after: bool = False, handed_state: str | None = None):
    """Record the handed job and the job that hands it, post the latter;
    returns both records once the handing job's run has ended."""
    poster = env.runtime.poster
    handed_job = record(db, poster, JobSpec(operation="handed_op", backend=BOARD, resource_type="share",
                                            resource_id="s-handed", factory=handed_flow))
    if handed_state is not None:
        with db.write() as s:
            jobs_db.finish(s, handed_job.id, handed_state, now=utcnow())
    handing_spec = JobSpec(operation="handing_op", backend=HANDING_BOARD, resource_type="share",
                           resource_id="s-handed", factory=handing_flow,
                           store={"next_job_id": handed_job.id, "fail_after": fail_after})
    handing_job = record(db, poster, handing_spec)
    poster.post(handing_job, handing_spec)
    assert env.done[env.handing.name].acquire(timeout=30), "the handing job did not end"
    return handing_job, handed_job


def test_a_job_handed_by_a_running_job_is_marked_running_in_that_jobs_last_write(
        db, persistence, kazoo_client, zk_chroot):
    """The scheduling job's hand-off: the handed job's record is marked
    running for its conductor - from the board job handed, as the conductor
    would mark it - in the transaction that records the handing job's flow
    SUCCESS, and the conductor, woken after it, runs the job without a
    write of its own for that (one write transaction less between the two
    jobs)."""
    RAN.clear()
    with two_conductors(db, persistence, kazoo_client, zk_chroot) as env:
        handing_job, handed_job = hand_over(db, env)
        assert env.done[env.handed.name].acquire(timeout=30), "the handed job did not end"
        (handed_on_board,) = env.ended[env.handed.name]
    assert RAN == {handed_job.id: 1}
    # Marked once, inside the handing job's write (the one that records its
    # flow's SUCCESS, as its own record's: its end); the conductor did not
    # mark it again.
    assert env.recorder.running == [(handing_job.id, False), (handed_job.id, True)]
    with db.read() as s:
        handing_row, row = s.get(Job, handing_job.id), s.get(Job, handed_job.id)
        assert (row.state, row.owner, row.board_job_id) == ("succeeded", env.handed.name, handed_on_board)
        assert handing_row.state == "succeeded" and handing_row.finished_at <= row.started_at


def test_a_handed_job_whose_handing_job_fails_is_marked_by_its_conductor(
        db, persistence, kazoo_client, zk_chroot):
    """The handing job's flow does not succeed (its last write is not a
    SUCCESS): nothing marked the handed job, and its conductor marks it
    running itself, as before, and runs it."""
    RAN.clear()
    with two_conductors(db, persistence, kazoo_client, zk_chroot) as env:
        _handing_job, handed_job = hand_over(db, env, fail_after=True)
        assert env.done[env.handed.name].acquire(timeout=30), "the handed job did not end"
    assert RAN == {handed_job.id: 1}
    assert [r for r in env.recorder.running if r[0] == handed_job.id] == [(handed_job.id, False)]
    with db.read() as s:
        assert s.get(Job, handed_job.id).state == "succeeded"


def test_a_handed_job_marked_not_runnable_by_the_handing_job_never_runs(
        db, persistence, kazoo_client, zk_chroot):
    """The handed job's record could not be marked running in the handing
    job's last write (it has finished meanwhile - as one withdrawn, or
    given up on, would not be there to run): its conductor drops it from
    the board without running it, and marks nothing itself."""
    RAN.clear()
    with two_conductors(db, persistence, kazoo_client, zk_chroot) as env:
        _handing_job, handed_job = hand_over(db, env, handed_state="trashed")
        assert env.done[env.handed.name].acquire(timeout=30), "the handed job was not dropped"
        assert not [j for j in env.boards.get(BOARD).iterjobs(ensure_fresh=True)]
    assert RAN == {}
    assert [r for r in env.recorder.running if r[0] == handed_job.id] == [(handed_job.id, True)]
    with db.read() as s:
        row = s.get(Job, handed_job.id)
        assert (row.state, row.owner) == ("trashed", None)
