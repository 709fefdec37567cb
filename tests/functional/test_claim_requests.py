"""What a conductor asks ZooKeeper between a job's post and its first step,
counted on a real ZooKeeper: every request kazoo sends goes through
``KazooClient._call``, which the tests wrap to record (never to answer).

* The claim is one request: the transaction that checks the job node at the
  version the board read when the job appeared and creates our lock - not
  TaskFlow's read of the job node first. Its guarantees stay: a job taken by
  another conductor is UnclaimableJob, a job gone is NotFound, a job node
  changed since the board read it is decided by a fresh read.
* The claim watch sets its watch with one read and, once stopped, asks
  nothing more when the job is consumed (kazoo's DataWatch reads the node
  again and asks whether it exists).
"""

from __future__ import annotations

import contextlib
import json
import threading

import pytest
from kazoo.protocol import serialization as ser
from kazoo.protocol.states import Callback
from taskflow import exceptions as tf_exc
from taskflow.jobs import base as jobs_base
from taskflow.persistence import models as tf_models

from shareflow.engine.boards import Boards, ConductorJobBoard, handed_job_name, post_job
from shareflow.engine.listeners import ClaimWatch
from shareflow.engine.zk import board_path
from tests.fixtures.coordination import conductor_board, close_client, start_client
from tests.fixtures.stack import wait_until


@contextlib.contextmanager
def recorded(client, *, this_thread: bool = False):
    """Requests ``client`` sends while inside, in order; ``this_thread``:
    only those the calling thread sends (not, say, the board's children
    watch answering our own claim on kazoo's thread)."""
    sent: list = []
    original = client._call
    caller = threading.current_thread()

    def call(request, async_object):
        if not this_thread or threading.current_thread() is caller:
            sent.append(request)
        return original(request, async_object)

    client._call = call
    try:
        yield sent
    finally:
        client._call = original


@pytest.fixture
def board(kazoo_client, zk_chroot):
    with conductor_board(kazoo_client, board_path(zk_chroot, "b")) as b:
        yield b


def posted_job(board, kazoo_client):
    """Post a job as the API does; return it once this board knows it."""
    known = threading.Event()
    board.notifier.register(jobs_base.POSTED, lambda _state, details: known.set())
    book = tf_models.LogBook("b")
    post_job(kazoo_client, board.path, "job", book=book, details={}, timeout=10)
    assert known.wait(10), "the board never saw the job"
    (job,) = list(board.iterjobs())
    return job


def owner_of(kazoo_client, job) -> str:
    data, _ = kazoo_client.get(job.lock_path)
    return json.loads(data)["owner"]


def test_claim_is_one_transaction(board, kazoo_client):
    job = posted_job(board, kazoo_client)
    with recorded(kazoo_client, this_thread=True) as sent:
        board.claim(job, "me")
    assert [type(r) for r in sent] == [ser.Transaction]
    assert [type(op) for op in sent[0].operations] == [ser.CheckVersion, ser.Create]
    assert owner_of(kazoo_client, job) == "me"


def test_claim_of_a_claimed_job_fails(board, kazoo_client):
    job = posted_job(board, kazoo_client)
    board.claim(job, "other")
    with pytest.raises(tf_exc.UnclaimableJob):
        board.claim(job, "me")
    assert owner_of(kazoo_client, job) == "other"


def test_claim_of_a_job_gone_is_not_found(board, kazoo_client):
    job = posted_job(board, kazoo_client)
    kazoo_client.delete(job.path)
    with pytest.raises(tf_exc.NotFound):
        board.claim(job, "me")
    assert kazoo_client.exists(job.lock_path) is None


def test_a_job_node_changed_since_it_was_read_is_read_again(board, kazoo_client):
    job = posted_job(board, kazoo_client)
    data, _ = kazoo_client.get(job.path)
    kazoo_client.set(job.path, data)  # same posting, new version
    with recorded(kazoo_client, this_thread=True) as sent:
        board.claim(job, "me")
    # The check at the old version fails; TaskFlow's claim reads it and claims.
    assert [type(r) for r in sent] == [ser.Transaction, ser.GetData, ser.Transaction]
    assert owner_of(kazoo_client, job) == "me"


def callbacks_done(client) -> None:
    """Wait until every callback kazoo has queued so far (watch events
    included) has run: they run one at a time, in order."""
    done = threading.Event()
    client.handler.dispatch_callback(Callback("watch", done.set, ()))
    assert done.wait(10)


def test_claim_watch_reads_once_and_not_after_it_stops(board, kazoo_client):
    job = posted_job(board, kazoo_client)
    board.claim(job, "me")
    with recorded(kazoo_client) as sent:
        watch = ClaimWatch(kazoo_client, job.lock_path, "me").start()
        assert watch.settle(10)
        assert not watch.lost.is_set()
        watch.stop()
        # The job is consumed: its lock goes, the watch fires.
        seen = threading.Event()
        kazoo_client.exists(job.lock_path, watch=lambda _event: seen.set())
        board.consume(job, "me")
        assert seen.wait(10)
        callbacks_done(kazoo_client)
    watch_requests = [r for r in sent if getattr(getattr(r, "watcher", None), "__self__", None) is watch]
    assert [type(r) for r in watch_requests] == [ser.GetData]


def test_claim_watch_hears_of_a_lost_claim(board, kazoo_client):
    job = posted_job(board, kazoo_client)
    board.claim(job, "me")
    watch = ClaimWatch(kazoo_client, job.lock_path, "me").start()
    assert watch.settle(10)
    kazoo_client.delete(job.lock_path)
    assert watch.lost.wait(10)
    watch.stop()


# A job posted claimed (the placing conductor hands a create job to its own
# worker's conductor of the chosen pool: ConductorJobBoard.post_claimed).

def posted_claimed(board, who: str = "me") -> tuple[str, object]:
    uuid = board.post_claimed("job", book=tf_models.LogBook("b"), details={"x": 1}, owner=who, timeout=10)
    assert uuid is not None
    (job,) = [j for j in board.iterjobs() if j.uuid == uuid]
    return uuid, job


def test_a_job_posted_claimed_is_one_transaction_with_its_lock(board, kazoo_client):
    with recorded(kazoo_client, this_thread=True) as sent:
        _uuid, job = posted_claimed(board)
    assert [type(r) for r in sent] == [ser.Transaction]
    assert [type(op) for op in sent[0].operations] == [ser.Create, ser.Create]
    # One transaction: both nodes carry its zxid; the lock is ephemeral, ours.
    _data, job_stat = kazoo_client.get(job.path)
    lock_data, lock_stat = kazoo_client.get(job.lock_path)
    assert job_stat.czxid == lock_stat.czxid
    assert lock_stat.ephemeralOwner == kazoo_client.client_id[0] and job_stat.ephemeralOwner == 0
    assert json.loads(lock_data) == {"owner": "me"}
    assert job.details == {"x": 1}


def test_a_job_posted_claimed_is_offered_first_and_its_claim_asks_nothing(board, kazoo_client):
    other = posted_job(board, kazoo_client)  # unclaimed, posted before
    _uuid, job = posted_claimed(board)
    callbacks_done(kazoo_client)  # the listing that shows both (and the lock) has been read
    assert [j.uuid for j in board.iterjobs()][:2] == [job.uuid, other.uuid]
    with recorded(kazoo_client, this_thread=True) as sent:
        board.claim(job, "me")
    assert sent == []
    # Taken up: it is not offered again, and it is claimed on the board.
    callbacks_done(kazoo_client)
    assert [j.uuid for j in board.iterjobs()] == [other.uuid]
    assert owner_of(kazoo_client, job) == "me"
    board.consume(job, "me")
    assert kazoo_client.exists(job.path) is None and kazoo_client.exists(job.lock_path) is None


def test_a_job_posted_claimed_for_another_is_claimed_as_any(board, kazoo_client):
    _uuid, job = posted_claimed(board, who="placer")
    with pytest.raises(tf_exc.UnclaimableJob):
        board.claim(job, "me")
    assert owner_of(kazoo_client, job) == "placer"


def test_a_job_posted_claimed_by_a_process_that_died_is_claimed_by_another(board, kazoo_client, zookeeper_server):
    """The placing worker dies (its session ends) before the job ran: the
    lock goes with the session and any conductor claims the job."""
    dying = start_client(zookeeper_server.hosts)
    try:
        theirs = ConductorJobBoard("dying", {"board": "zookeeper", "path": board.path},
                                   client=dying, persistence=None)
        theirs.connect()
        seen = threading.Event()
        board.notifier.register(jobs_base.POSTED, lambda _state, details: seen.set())
        uuid, _job = posted_claimed(theirs, who="placer")
        assert seen.wait(10)
        callbacks_done(kazoo_client)
        assert [j.uuid for j in board.iterjobs()] == []  # claimed: not offered
        theirs.close()
    finally:
        close_client(dying)  # the session ends: its ephemeral lock goes
    wait_until(lambda: [j for j in board.iterjobs() if j.uuid == uuid], 10, "the job to be offered again")
    (job,) = [j for j in board.iterjobs() if j.uuid == uuid]
    board.claim(job, "me")
    assert owner_of(kazoo_client, job) == "me"


def test_a_refused_hand_off_leaves_nothing(board, kazoo_client):
    name = handed_job_name(1234)
    kazoo_client.create(f"{board.path}/{name}", b"{}")  # the name is taken: the transaction fails
    board.name_clock = lambda: 1234
    try:
        assert board.post_claimed("job", book=tf_models.LogBook("b"), details={}, owner="me", timeout=10) is None
        assert kazoo_client.exists(f"{board.path}/{name}.lock") is None
        assert not board.holds_handed
    finally:
        kazoo_client.delete(f"{board.path}/{name}")


class _Conductor:
    """What Boards.hand_off asks of this process's conductor of a board."""

    def __init__(self, name: str, idle: bool):
        self.name, self.idle = name, idle
        self.woken = 0

    def wake(self) -> None:
        self.woken += 1


def test_a_job_is_handed_only_to_an_idle_conductor_of_this_process(kazoo_client, zk_chroot):
    boards = Boards(kazoo_client, zk_chroot, ["h@b"], None, conductor=True, request_timeout=10)
    boards.connect()
    try:
        board = boards.get("h@b")
        book = tf_models.LogBook("b")
        # No conductor of that board here, or one that is busy: not handed.
        assert boards.hand_off("h@b", "job", book=book, details={}) is None
        boards.serve("h@b", _Conductor("busy", idle=False))
        assert boards.hand_off("h@b", "job", book=book, details={}) is None
        assert kazoo_client.get_children(board.path) == [] and not board.holds_handed
        idle = _Conductor("idle", idle=True)
        boards.serve("h@b", idle)
        uuid = boards.hand_off("h@b", "job", book=book, details={})
        (job,) = [j for j in board.iterjobs() if j.uuid == uuid]
        assert owner_of(kazoo_client, job) == "idle" and board.holds_handed
        # Woken by the hand-off itself, not by the board's notifier thread.
        assert idle.woken == 1
    finally:
        boards.close()


def test_a_new_job_wakes_the_conductor_from_the_read_that_made_it_known(board, kazoo_client):
    """On kazoo's thread, as the job becomes known - not a hop later from
    the board's notifier thread (its POSTED notification) - and only for a
    job new to the board (one handed to it is known already)."""
    woken: list = []
    board.on_new_job = lambda: woken.append((threading.current_thread().name, len(list(board.iterjobs()))))
    notified: list = []
    board.notifier.register(jobs_base.POSTED, lambda _state, details: notified.append(threading.current_thread().name))
    posted_job(board, kazoo_client)
    wait_until(lambda: notified, 10, "the POSTED notification")
    (woken_on, offered) = woken[0]
    assert woken_on != notified[0] and offered == 1 and len(woken) == 1
    posted_claimed(board)
    callbacks_done(kazoo_client)
    assert len(woken) == 1
