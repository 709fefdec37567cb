"""A conductor SIGKILLed at any instant between claiming a job and its first
step: the job is reclaimed by another conductor and completes, with nothing
done twice and nothing left behind (issue 8: a delete job whose conductor was
killed ~40 ms after the claim was trashed by the next one, "could not load
the flow: AttributeError('NoneType' object has no attribute 'keys')", and its
share ended ``error_deleting``).

The conductor is held at named checkpoints (``shareflow.engine.checkpoints``)
through the backend's fault plan; the held worker names itself in a marker
file, is killed there, and the plan is cleared before its ZooKeeper session
expires, so the conductor that reclaims the job runs it through.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal

import pytest
import sqlalchemy as sa

from shareflow.db.models import Job, Message
from shareflow.domain import states
from shareflow.engine import checkpoints
from shareflow.engine.loading import STORE_ATOM
from tests.fixtures.stack import wait_until


def marker(stack, point: str):
    return checkpoints.marker_path(stack.config.backend("b1").fault_plan, point)


def hold_at(stack, point: str) -> None:
    marker(stack, point).unlink(missing_ok=True)
    stack.set_faults({checkpoints.PREFIX + point: "hang"})


def kill_held(stack, point: str) -> int:
    """SIGKILL the worker held at ``point``, then let every other one pass."""
    path = marker(stack, point)
    wait_until(path.exists, 30, f"a conductor to be held at {point}")
    held = json.loads(path.read_text())
    victim = held["pid"]
    assert victim in stack.worker_pids()
    os.kill(victim, signal.SIGKILL)
    # Before the victim's session (2 s) expires and its job can be reclaimed.
    stack.clear_faults()
    path.unlink()
    return victim


def while_held(stack, point: str, request) -> tuple[int, object]:
    """Make ``request`` (an API call that posts a job), kill the conductor
    held at ``point`` by its job, and return (victim, the call's result). The
    call runs aside: a conductor held inside a transaction holds SQLite's
    write lock, which the request's own last write waits for."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(request)
        victim = kill_held(stack, point)
        return victim, answer.result(timeout=60)


def wait_for_replacement(stack, victim: int) -> None:
    wait_until(lambda: len(stack.worker_pids()) == 2 and victim not in stack.worker_pids(), 30,
               "the pool to restart the killed worker")


def jobs_of(stack, resource_id: str) -> list[Job]:
    """The jobs that worked on the resource on its backend's board (a
    share's scheduling job, with conductor placement, aside)."""
    with stack.db.read() as s:
        return list(s.scalars(sa.select(Job).where(Job.resource_id == resource_id,
                                                   Job.operation != "schedule_share").order_by(Job.created_at)))


def board_job_ids(stack) -> set[str]:
    with stack.board("b1") as board:
        return {j.uuid for j in board.iterjobs(ensure_fresh=True)}


def trashed_job_ids(stack, client) -> set[str]:
    """Jobs in the board's trash, where a set-aside job's node is kept."""
    with stack.board("b1") as board:
        trash = board.trash_path
    return {json.loads(client.get(f"{trash}/{name}")[0])["uuid"] for name in client.get_children(trash)}


def assert_exported_once(stack, share_id: str) -> None:
    backend = stack.backend()
    assert backend.share.list_volumes().count(share_id) == 1
    assert share_id in backend.export.list_exports(backend.server.server_for(share_id))
    conf = stack.exports_text()
    assert conf.count(f"/shares/{share_id}\"") == 1


def assert_gone(stack, share_id: str) -> None:
    backend = stack.backend()
    assert share_id not in backend.share.list_volumes()
    conf = stack.exports_text()
    assert share_id not in conf


@pytest.mark.parametrize("point", checkpoints.FRESH_POINTS)
def test_killed_between_claim_and_first_step_the_job_completes(faults, point):
    stack = faults
    m = stack.manila(stack.token("tenant-ckpt"))

    hold_at(stack, point)
    victim, share = while_held(stack, point, lambda: m.shares.create("NFS", 1, name=f"ckpt-{point}"))
    share = stack.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
    assert share.status == "available", stack.log("pool")[-4000:]
    create = stack.finished_job(share.id, "create_share")
    assert [j.id for j in jobs_of(stack, share.id)] == [create.id]
    assert create.state == states.JOB_SUCCEEDED
    assert create.owner and f".{victim}." not in create.owner
    assert_exported_once(stack, share.id)
    wait_for_replacement(stack, victim)

    hold_at(stack, point)
    victim, _ = while_held(stack, point, lambda: m.shares.delete(share))
    wait_until(lambda: stack.share_row(share.id).status in ("deleted", "error_deleting"), 60,
               "the share to be deleted")
    row = stack.share_row(share.id)
    assert row.status == "deleted" and row.deleted_at is not None, stack.log("pool")[-4000:]
    delete = stack.finished_job(share.id, "delete_share")
    assert delete.state == states.JOB_SUCCEEDED and f".{victim}." not in delete.owner
    assert_gone(stack, share.id)
    # Consumed off the board right after the flow's end is recorded.
    wait_until(lambda: not {create.board_job_id, delete.board_job_id} & board_job_ids(stack), 30,
               "both jobs to leave the board")
    with stack.db.read() as s:
        assert not s.scalars(sa.select(Message).where(Message.resource_id == share.id)).all()
    wait_for_replacement(stack, victim)


@pytest.mark.parametrize("point", checkpoints.RESUME_POINTS)
def test_killed_again_while_resuming_the_job_completes(faults, point):
    """The conductor that reclaims a job whose flow had started (killed with
    the flow and its first step RUNNING, before the step ran: the flow's
    RUNNING is written with its first step's) is killed too, at ``point``."""
    stack = faults
    m = stack.manila(stack.token("tenant-ckpt2"))

    hold_at(stack, checkpoints.FIRST_STEP)
    share = m.shares.create("NFS", 1, name=f"ckpt2-{point}")
    first = kill_held(stack, checkpoints.FIRST_STEP)
    # Cleared by kill_held; held again for whoever reclaims the job.
    hold_at(stack, point)
    second = kill_held(stack, point)
    assert second != first
    share = stack.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
    assert share.status == "available", stack.log("pool")[-4000:]
    create = stack.finished_job(share.id, "create_share")
    assert [j.id for j in jobs_of(stack, share.id)] == [create.id]
    assert create.state == states.JOB_SUCCEEDED
    assert f".{first}." not in create.owner and f".{second}." not in create.owner
    assert_exported_once(stack, share.id)
    wait_until(lambda: len(stack.worker_pids()) == 2 and not {first, second} & set(stack.worker_pids()), 30,
               "the pool to restart both killed workers")
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
    assert_gone(stack, share.id)


def test_half_written_store_of_a_killed_conductor_is_completed(faults):
    """The exact state issue 8's killed conductor left: TaskFlow's first write
    of the job's store (the flow detail with a store atom detail whose
    results are NULL) without its second. The next conductor loads it."""
    stack = faults
    m = stack.manila(stack.token("tenant-half"))
    share = m.shares.create("NFS", 1, name="half-written")
    stack.wait_for_share(m, share.id, {"available"})

    hold_at(stack, checkpoints.CLAIMED)
    m.shares.delete(share)
    wait_until(marker(stack, checkpoints.CLAIMED).exists, 30, "the delete job to be claimed")
    job = next(j for j in jobs_of(stack, share.id) if j.operation == "delete_share")
    # The job's store came whole with its record (shareflow.engine.logbooks);
    # a job posted by an older version had none, and TaskFlow's first write
    # left it so: state and results NULL.
    with stack.db.write() as s:
        assert s.execute(sa.text("update atomdetails set state = NULL, results = NULL "
                                 "where parent_uuid = :flow and name = :name"),
                         {"flow": job.flow_detail_id, "name": STORE_ATOM}).rowcount == 1
    services = stack.services()
    try:
        with contextlib.closing(services.persistence.get_connection()) as conn:
            reread = conn.get_flow_details(job.flow_detail_id)
    finally:
        services.close()
    (stored,) = [ad for ad in reread if ad.name == STORE_ATOM]
    assert stored.results is None and stored.state is None

    victim = kill_held(stack, checkpoints.CLAIMED)
    wait_until(lambda: stack.share_row(share.id).status in ("deleted", "error_deleting"), 60,
               "the share to be deleted")
    assert stack.share_row(share.id).status == "deleted", stack.log("pool")[-4000:]
    finished = stack.finished_job(share.id, "delete_share")
    assert finished.id == job.id and finished.state == states.JOB_SUCCEEDED
    assert_gone(stack, share.id)
    wait_for_replacement(stack, victim)


def create_through_an_outage(stack, point: str, name: str) -> None:
    """A share created while every load of its job meets a passing outage
    (ZooKeeper or the database unreachable) at ``point``: the job goes back
    to the board each time, neither failed nor set aside, the share stays
    ``creating``; once the outage ends the job loads and completes - share
    available, exported once, no message - and the share is deleted."""
    m = stack.manila(stack.token(f"tenant-{name}"))
    path = marker(stack, point)
    path.unlink(missing_ok=True)
    stack.set_faults({checkpoints.PREFIX + point: "unavailable"})
    share = m.shares.create("NFS", 1, name=name)
    wait_until(path.exists, 30, f"a first attempt to load the job past {point}")
    path.unlink()
    wait_until(path.exists, 30, f"another attempt to load the job past {point}")
    assert stack.share_row(share.id).status == "creating"
    (job,) = jobs_of(stack, share.id)
    assert job.finished_at is None and job.board_job_id in board_job_ids(stack)
    stack.clear_faults()
    path.unlink(missing_ok=True)

    share = stack.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
    assert share.status == "available", stack.log("pool")[-6000:]
    assert stack.finished_job(share.id, "create_share").state == states.JOB_SUCCEEDED
    assert_exported_once(stack, share.id)
    with stack.db.read() as s:
        assert not s.scalars(sa.select(Message).where(Message.resource_id == share.id)).all()
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")


def test_job_meeting_an_outage_while_loading_goes_back_to_the_board(faults):
    """ZooKeeper or the database unreachable while a job loads: the job is not
    failed nor set aside; it is tried again until it loads, then completes."""
    create_through_an_outage(faults, checkpoints.BOOK_LOADED, "outage")


def test_job_that_cannot_be_loaded_is_set_aside_with_its_logbook(faults, kazoo_client):
    """A job whose engine fails to load (here: injected right after the
    engine is built, before TaskFlow would compile it) is not trashed in
    silence: its record is ``trashed`` with the error, its logbook stays,
    it is off the board, and the share is failed with a message that says so."""
    stack = faults
    m = stack.manila(stack.token("tenant-aside"))
    share = m.shares.create("NFS", 1, name="aside")
    stack.wait_for_share(m, share.id, {"available"})

    stack.set_faults({checkpoints.PREFIX + checkpoints.ENGINE_LOADED: "fail"})
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).status != "deleting", 30, "the delete to end")
    stack.clear_faults()
    assert stack.share_row(share.id).status == "error_deleting"
    job = stack.finished_job(share.id, "delete_share")
    assert job.state == states.JOB_TRASHED
    assert "InjectedFault" in job.failure and checkpoints.ENGINE_LOADED in job.failure
    wait_until(lambda: job.board_job_id not in board_job_ids(stack), 30, "the job to leave the board")
    assert job.board_job_id in trashed_job_ids(stack, kazoo_client)
    with stack.db.read() as s:
        (msg,) = s.scalars(sa.select(Message).where(Message.resource_id == share.id)).all()
    assert msg.user_message == (
        "delete: the job could not be run: its flow could not be loaded; the job was kept for an "
        f"administrator to resume (job {job.id})"
    )
    services = stack.services()
    try:
        with contextlib.closing(services.persistence.get_connection()) as conn:
            flow = conn.get_flow_details(job.flow_detail_id)
    finally:
        services.close()
    # Nothing ran, nor was written: the flow is as posted - its store only,
    # written with the job's record (shareflow.engine.logbooks) - and the
    # job keeps its store too.
    assert [ad.name for ad in flow] == [STORE_ATOM]
    assert json.loads(job.store)["share_id"] == share.id

    # The share is not stuck: a new delete (a new job) takes it away.
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
    assert_gone(stack, share.id)
