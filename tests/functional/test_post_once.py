"""A recorded job reaches its board at most once, on a real ZooKeeper (and
database): each post carries a marker named after the database job, created
in the post's own transaction (``shareflow.engine.once``).

* Posting the same database job again - plainly or handed off, from the same
  process or after the first poster's session ended - makes no second board
  job and answers the uuid of the one there.
* The marker goes with its job (consume, trash); one whose job is gone some
  other way does not block a later post.
* The record is the fence behind it: a claim runs the job only from the board
  job the record's first claim came from (``jobs_db.set_running``).
* The housekeeping of unposted jobs records a post its poster never recorded
  instead of failing the job.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from taskflow.persistence import models as tf_models

from shareflow.db import jobs as jobs_db
from shareflow.db import migrate
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import Job
from shareflow.domain import states
from shareflow.engine import once, operations
from shareflow.engine.boards import Boards, ConductorJobBoard, post_job
from shareflow.engine.housekeeping import fail_unposted_jobs
from shareflow.engine.outcomes import OutcomeRecorder
from shareflow.engine.persistence import make_persistence
from shareflow.engine.posting import JobPoster, book_saved
from shareflow.engine.zk import board_path
from shareflow.wiring import utcnow
from tests.fixtures.coordination import conductor_board, close_client, start_client
from tests.fixtures.stack import wait_until

BOOK = tf_models.LogBook("b")


@pytest.fixture
def board(kazoo_client, zk_chroot):
    with conductor_board(kazoo_client, board_path(zk_chroot, "h@b")) as b:
        yield b


def post(client, board, key: str) -> str:
    return post_job(client, board.path, "job", book=BOOK, details={"x": 1}, timeout=10, key=key)


def jobs_on(client, board) -> dict[str, dict]:
    """The job nodes on ``board`` now: name -> posting."""
    return {c: json.loads(client.get(f"{board.path}/{c}")[0])
            for c in client.get_children(board.path) if not c.endswith(".lock")}


def marker(client, board, key: str) -> dict | None:
    path = once.marker_path(board.path, key)
    return json.loads(client.get(path)[0]) if client.exists(path) else None


def known(board, board_uuid: str):
    """The job, once ``board`` has seen it."""
    return wait_until(lambda: next((j for j in board.iterjobs() if j.uuid == board_uuid), None), 10,
                      "the board to see the job")


def test_posting_a_job_twice_makes_one_board_job(board, kazoo_client):
    key = str(uuid.uuid4())
    first = post(kazoo_client, board, key)
    assert post(kazoo_client, board, key) == first
    ((name, posting),) = jobs_on(kazoo_client, board).items()
    assert posting["uuid"] == first and posting["details"] == {"x": 1, once.DETAILS_KEY: key}
    assert marker(kazoo_client, board, key) == {"uuid": first, "path": f"{board.path}/{name}"}
    # Made in the job's own transaction: the same zxid.
    _d, job_stat = kazoo_client.get(f"{board.path}/{name}")
    _d, marker_stat = kazoo_client.get(once.marker_path(board.path, key))
    assert job_stat.czxid == marker_stat.czxid
    # Another database job is another board job.
    other = post(kazoo_client, board, str(uuid.uuid4()))
    assert other != first and len(jobs_on(kazoo_client, board)) == 2


def test_a_hand_off_and_a_post_of_one_job_make_one_board_job(board, kazoo_client):
    handed_key, posted_key = str(uuid.uuid4()), str(uuid.uuid4())
    handed = board.post_claimed("job", book=BOOK, details={}, owner="me", timeout=10, key=handed_key)
    assert post(kazoo_client, board, handed_key) == handed
    assert board.post_claimed("job", book=BOOK, details={}, owner="me", timeout=10, key=handed_key) == handed
    posted = post(kazoo_client, board, posted_key)
    # Handed off after a plain post: answered, not claimed for us.
    assert board.post_claimed("job", book=BOOK, details={}, owner="me", timeout=10, key=posted_key) == posted
    nodes = jobs_on(kazoo_client, board)
    assert sorted(p["uuid"] for p in nodes.values()) == sorted([handed, posted])
    (posted_name,) = [n for n, p in nodes.items() if p["uuid"] == posted]
    assert kazoo_client.exists(f"{board.path}/{posted_name}.lock") is None
    assert [j.uuid for j in board.iterjobs() if board.find_owner(j) == "me"] == [handed]


def test_a_job_posted_by_a_process_that_died_is_not_posted_again(board, kazoo_client, zookeeper_server):
    """The poster's session ends between the post and the record (it died):
    its plain post and its hand-off stay (the hand-off's lock goes), and the
    post of whoever takes over answers them."""
    plain_key, handed_key = str(uuid.uuid4()), str(uuid.uuid4())
    dying = start_client(zookeeper_server.hosts)
    try:
        theirs = ConductorJobBoard("dying", {"board": "zookeeper", "path": board.path},
                                   client=dying, persistence=None)
        theirs.connect()
        plain = post(dying, theirs, plain_key)
        handed = theirs.post_claimed("job", book=BOOK, details={}, owner="placer", timeout=10, key=handed_key)
        theirs.close()
    finally:
        close_client(dying)  # its session ends: its ephemeral lock goes
    nodes = jobs_on(kazoo_client, board)
    assert sorted(p["uuid"] for p in nodes.values()) == sorted([plain, handed])
    assert not [c for c in kazoo_client.get_children(board.path) if c.endswith(".lock")]
    assert post(kazoo_client, board, plain_key) == plain
    assert post(kazoo_client, board, handed_key) == handed
    assert board.post_claimed("job", book=BOOK, details={}, owner="me", timeout=10, key=handed_key) == handed
    assert jobs_on(kazoo_client, board) == nodes


def test_racing_posts_of_one_job_make_one_board_job(board, kazoo_client, zookeeper_server):
    key = str(uuid.uuid4())
    clients = [start_client(zookeeper_server.hosts) for _ in range(3)]
    try:
        barrier = threading.Barrier(len(clients))
        answers: list[str] = []

        def poster(client):
            barrier.wait()
            answers.append(post(client, board, key))

        threads = [threading.Thread(target=poster, args=(c,)) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        for c in clients:
            close_client(c)
    assert len(answers) == len(clients) and len(set(answers)) == 1
    assert [p["uuid"] for p in jobs_on(kazoo_client, board).values()] == answers[:1]


def test_a_finished_jobs_marker_goes_with_it_and_the_job_can_be_posted_again(board, kazoo_client):
    """Consumed or trashed, the job's marker goes in the same transaction;
    posting the job again (an operator's resume) makes a new board job."""
    key = str(uuid.uuid4())
    first = post(kazoo_client, board, key)
    job = known(board, first)
    board.claim(job, "me")
    board.consume(job, "me")
    assert jobs_on(kazoo_client, board) == {} and marker(kazoo_client, board, key) is None

    second = post(kazoo_client, board, key)
    assert second != first
    job = known(board, second)
    board.claim(job, "me")
    board.trash(job, "me")
    assert jobs_on(kazoo_client, board) == {} and marker(kazoo_client, board, key) is None
    trashed = [json.loads(kazoo_client.get(f"{board.trash_path}/{c}")[0])["uuid"]
               for c in kazoo_client.get_children(board.trash_path)]
    assert trashed == [second]

    third = post(kazoo_client, board, key)
    assert third not in (first, second) and [p["uuid"] for p in jobs_on(kazoo_client, board).values()] == [third]
    # Its marker removed by hand: the job is consumed all the same.
    kazoo_client.delete(once.marker_path(board.path, key))
    job = known(board, third)
    board.claim(job, "me")
    board.consume(job, "me")
    assert jobs_on(kazoo_client, board) == {}
    # A job posted without a marker (before markers) leaves the markers alone.
    fourth = post(kazoo_client, board, key)
    old = post_job(kazoo_client, board.path, "job", book=BOOK, details={}, timeout=10)
    job = known(board, old)
    board.claim(job, "me")
    board.consume(job, "me")
    assert marker(kazoo_client, board, key)["uuid"] == fourth


def test_a_stale_marker_does_not_block_a_post(board, kazoo_client):
    """The job a marker names is gone some other way (removed by hand, or
    consumed by code that does not know markers): the next post removes the
    marker and posts."""
    key = str(uuid.uuid4())
    first = post(kazoo_client, board, key)
    ((name, _posting),) = jobs_on(kazoo_client, board).items()
    kazoo_client.delete(f"{board.path}/{name}")
    second = post(kazoo_client, board, key)
    assert second != first
    ((new_name, posting),) = jobs_on(kazoo_client, board).items()
    assert posting["uuid"] == second
    assert marker(kazoo_client, board, key) == {"uuid": second, "path": f"{board.path}/{new_name}"}
    # The same for a hand-off.
    kazoo_client.delete(f"{board.path}/{new_name}")
    # (The hand-off removes the stale marker and answers None: the caller
    # posts plainly.)
    assert board.post_claimed("job", book=BOOK, details={}, owner="me", timeout=10, key=key) is None
    assert marker(kazoo_client, board, key) is None and not board.holds_handed
    third = post(kazoo_client, board, key)
    assert third not in (first, second)
    assert [p["uuid"] for p in jobs_on(kazoo_client, board).values()] == [third]
    assert marker(kazoo_client, board, key)["uuid"] == third


# The poster and the record, on a real database.

@pytest.fixture
def sqlite_db(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'shareflow.db'}")
    migrate.upgrade(database)
    try:
        yield database
    finally:
        database.dispose()


def recorded_create(db, poster):
    share_id = str(uuid.uuid4())
    with db.write() as s:
        shares_db.create(s, now=utcnow(), id=share_id, project_id="p", size=1, share_proto="NFS",
                         status=states.CREATING, backend="h@b", is_public=False)
        spec = operations.job_spec("create_share", backend="h@b", resource_id=share_id, project_id="p",
                                   store={"share_id": share_id, "size": 1, "share_network_id": None})
        return poster.record(s, spec), spec


def test_a_job_posted_again_by_its_poster_is_recorded_as_the_one_on_the_board(sqlite_db, kazoo_client,
                                                                                 zk_chroot):
    """The poster died before recording its post; posting the job again (the
    step resumed) finds it on the board and records it - and leaves the
    logbook (saved with the record, shareflow.engine.logbooks) as it is."""
    persistence = make_persistence(sqlite_db)
    boards = Boards(kazoo_client, zk_chroot, ["h@b"], persistence, conductor=True, request_timeout=10)
    boards.connect()
    try:
        poster = JobPoster(sqlite_db, persistence, boards, clock=utcnow)
        job, spec = recorded_create(sqlite_db, poster)
        with sqlite_db.read() as s:
            assert book_saved(s, job.logbook_id)
        seen: list[str] = []
        first = poster.post(job, spec, posted=seen.append)
        with sqlite_db.write() as s:  # as if the record had never been written
            s.execute(sa.update(Job).where(Job.id == job.id).values(board_job_id=None))
            assert book_saved(s, job.logbook_id)
        # The flow made progress meanwhile: a post again must not reset it.
        conn = persistence.get_connection()  # shared; its close does nothing
        flow = conn.get_logbook(job.logbook_id).find(job.flow_detail_id)
        flow.state = "RUNNING"
        conn.update_flow_details(flow)
        again = poster.post(job, spec, hand_off=True, book_saved=True, posted=seen.append)
        assert again == first and seen == [first, first]
        with sqlite_db.read() as s:
            assert jobs_db.get(s, job.id).board_job_id == first
        board = boards.get("h@b")
        assert [p["uuid"] for p in jobs_on(kazoo_client, board).values()] == [first]
        assert conn.get_logbook(job.logbook_id).find(job.flow_detail_id).state == "RUNNING"
    finally:
        boards.close()


def test_a_claim_runs_the_job_only_from_the_board_job_its_first_claim_came_from(db):
    """On SQLite and PostgreSQL."""
    persistence = make_persistence(db)
    poster = JobPoster(db, persistence, boards=None, clock=utcnow)
    job, _spec = recorded_create(db, poster)

    def running(owner: str, board_job: str) -> bool:
        with db.write() as s:
            return jobs_db.set_running(s, job.id, owner, now=utcnow(), board_job_id=board_job)

    def row():
        with db.read() as s:
            found = jobs_db.get(s, job.id)
            return found.state, found.owner, found.board_job_id

    # Claimed before its post was recorded: the claim records the board job.
    assert running("x", "board-a")
    assert row() == (states.JOB_RUNNING, "x", "board-a")
    with db.write() as s:  # the post's late record does not rename it
        jobs_db.set_posted(s, job.id, "board-b", now=utcnow())
    assert row() == (states.JOB_RUNNING, "x", "board-a")
    # A second board job of the same record: not run while x may be running.
    assert not running("y", "board-b")
    assert row() == (states.JOB_RUNNING, "x", "board-a")
    # The same board job again (x died, its lock went): resumed by y.
    assert running("y", "board-a")
    assert row() == (states.JOB_RUNNING, "y", "board-a")
    # Cancelled: its reverting claim is fenced the same way.
    with db.write() as s:
        assert jobs_db.steer(s, jobs_db.get(s, job.id), states.JOB_CANCELLING, now=utcnow(),
                             sources=states.JOB_CANCELLABLE)
    assert not running("z", "board-b")
    assert running("z", "board-a")
    assert row() == (states.JOB_CANCELLING, "z", "board-a")


def test_the_housekeeping_records_a_post_its_poster_never_recorded(sqlite_db, kazoo_client, zk_chroot):
    """Of two jobs recorded long ago and never recorded as posted, the one
    its board has (its poster died after the post) is recorded and left to
    run; the other is failed as never posted, as before."""
    persistence = make_persistence(sqlite_db)
    boards = Boards(kazoo_client, zk_chroot, ["h@b"], persistence, conductor=True, request_timeout=10)
    boards.connect()
    try:
        poster = JobPoster(sqlite_db, persistence, boards, clock=utcnow)
        (lost, _), (never, _) = recorded_create(sqlite_db, poster), recorded_create(sqlite_db, poster)
        board_job = boards.post("h@b", "create_share", book=BOOK, details={}, once_key=lost.id)
        failed = fail_unposted_jobs(sqlite_db, OutcomeRecorder(sqlite_db, utcnow), utcnow() + timedelta(hours=1),
                                    timedelta(minutes=5), posted_as=boards.posted_as)
        assert failed == 1
        with sqlite_db.read() as s:
            kept, gone = jobs_db.get(s, lost.id), jobs_db.get(s, never.id)
            assert (kept.state, kept.board_job_id) == (states.JOB_POSTED, board_job)
            assert (gone.state, gone.board_job_id) == (states.JOB_TRASHED, None)
            assert shares_db.get_any(s, kept.resource_id).status == states.CREATING
            assert shares_db.get_any(s, gone.resource_id).status == states.ERROR
    finally:
        boards.close()
