"""Two conductors on one job, on the real stack: conductor A loses its claim
while its engine is between its last claim check and its first write (its
ZooKeeper session expired while it was cut off: the lock node is gone, A
has not heard yet), conductor B claims the job, loads it and runs it, and
A's first write lands after B's. The logbook keeps one atom detail per
step (B's), B's run completes and the share ends available; A stops the
job quietly - it neither sets it aside nor fails the share, nor records
anything of the job (``shareflow.engine.storage``, ``FlowTakenOver``).

A is held at the ``first_write`` checkpoint (``hang_first``: B, reaching it
second, passes); the test deletes the job's lock node, as ZooKeeper does
when a session expires.

B records its claim in the job's record before it loads the flow, and
every write of A's engine is fenced on the record naming A
(``shareflow.engine.persistence.JobFence``): A's late write is refused
whole whether it lands while B runs, after B's end, or before B's first
write - and for a job A *resumed* too (its atom rows there, so A's late
write is UPDATEs of rows B loaded and moved on, which no index refuses).
"""

from __future__ import annotations

import json
import os
import signal

import sqlalchemy as sa

from shareflow.db.models import Job, Message
from shareflow.domain import states
from shareflow.engine import checkpoints
from shareflow.engine.loading import STORE_ATOM
from tests.fixtures.stack import owner_pid, wait_until

POINT = checkpoints.FIRST_WRITE


def create_job(stack, share_id: str) -> Job:
    with stack.db.read() as s:
        return s.scalars(sa.select(Job).where(Job.resource_id == share_id, Job.operation == "create_share")).one()


def step_rows(stack, flow_uuid: str) -> list[tuple[str, str]]:
    """The flow's atom rows but its store: (name, state), by name."""
    with stack.db.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(
            sa.text("SELECT name, state FROM atomdetails WHERE parent_uuid = :p AND name != :store"),
            {"p": flow_uuid, "store": STORE_ATOM}))


def duplicate_step_names(stack, flow_uuid: str) -> list:
    """Names of the flow's atoms that have more than one row."""
    with stack.db.engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT name FROM atomdetails WHERE parent_uuid = :p GROUP BY name HAVING count(*) > 1"),
            {"p": flow_uuid}).all()


def board_job(stack, job_uuid: str):
    with stack.board() as board:
        return next(j for j in board.iterjobs(ensure_fresh=True) if j.uuid == job_uuid)


def trashed_job_ids(stack, client) -> set[str]:
    with stack.board() as board:
        trash = board.trash_path
    if not client.exists(trash):
        return set()
    return {json.loads(client.get(f"{trash}/{name}")[0])["uuid"] for name in client.get_children(trash)}


def assert_left_alone_then_delete(stack, m, share, job, kazoo_client, *live_pids: int) -> None:
    """The conductor that lost the claim set nothing aside and failed
    nothing (no message, no trashed job), its worker lives on; then the
    share is deleted."""
    with stack.db.read() as s:
        assert not s.scalars(sa.select(Message).where(Message.resource_id == share.id)).all()
    assert job.board_job_id not in trashed_job_ids(stack, kazoo_client)
    assert set(live_pids) <= set(stack.worker_pids())
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")


def test_a_conductor_that_lost_the_claim_and_writes_late_leaves_the_job_to_the_other(any_stack, kazoo_client):
    stack = any_stack
    m = stack.manila(stack.token("tenant-takeover"))
    marker = checkpoints.marker_path(stack.config.backend("b1").fault_plan, POINT)
    marker.unlink(missing_ok=True)
    stack.set_faults({checkpoints.PREFIX + POINT: checkpoints.HANG_FIRST})
    try:
        share = m.shares.create("NFS", 1, name="taken-over")
        wait_until(marker.exists, 30, "conductor A to be held before its first write")
        held = json.loads(marker.read_text())
        a_pid = held["pid"]
        job = create_job(stack, share.id)
        assert job.board_job_id == held["job"] and f".{a_pid}." in job.owner

        # A's claim goes (its session expired: ZooKeeper deletes the lock);
        # A, held past its last claim check, does not look again.
        kazoo_client.delete(board_job(stack, job.board_job_id).lock_path)
        # B (the other worker) claims the job, loads it - with no atom rows:
        # A wrote none - passes the checkpoint A holds and writes first.
        wait_until(lambda: step_rows(stack, job.flow_detail_id), 30, "conductor B's first write")
    finally:
        stack.clear_faults()  # A writes now, while B runs the job (or once it has)
        marker.unlink(missing_ok=True)

    def duplicates():
        return duplicate_step_names(stack, job.flow_detail_id)

    stopped = f"board job {job.board_job_id} (job {job.id}): its flow was recorded by another conductor meanwhile"
    wait_until(lambda: stopped in stack.log("pool") or duplicates(), 30, "conductor A's first write")
    assert duplicates() == []
    assert stopped in stack.log("pool")

    share = stack.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
    assert share.status == "available", stack.log("pool")[-4000:]
    finished = stack.finished_job(share.id, "create_share")
    assert finished.id == job.id and finished.state == states.JOB_SUCCEEDED
    assert f".{a_pid}." not in finished.owner
    assert all(state == "SUCCESS" for _, state in step_rows(stack, job.flow_detail_id))
    assert_left_alone_then_delete(stack, m, share, job, kazoo_client, a_pid)


def test_a_conductor_that_lost_the_claim_cannot_write_once_the_other_recorded_its_claim(any_stack, kazoo_client):
    """The other order: A (its claim lost, unknowing) writes after B
    claimed the job and loaded the flow (held before its engine runs) and
    before B's first write. B recorded its claim in the job's record before
    loading, so A's write - though first to the flow - is refused by its
    fence (``JobFence``) and A stops: nothing written, nothing set aside or
    failed. B, released, writes and runs the job: one set of atom rows, the
    share available, and B never finds its flow written by another (the
    unique atom name's refusal, its fallback, is not needed)."""
    stack = any_stack
    m = stack.manila(stack.token("tenant-takeover"))
    plan = stack.config.backend("b1").fault_plan
    first_write, prepared = (checkpoints.marker_path(plan, p) for p in (POINT, checkpoints.PREPARED))
    first_write.unlink(missing_ok=True)
    prepared.unlink(missing_ok=True)
    stack.set_faults({checkpoints.PREFIX + POINT: checkpoints.HANG_FIRST})
    try:
        share = m.shares.create("NFS", 1, name="taken-over-first")
        wait_until(first_write.exists, 30, "conductor A to be held before its first write")
        a_pid = json.loads(first_write.read_text())["pid"]
        job = create_job(stack, share.id)
        # B, once it has loaded the flow (no atom rows), is held too.
        stack.set_faults({checkpoints.PREFIX + POINT: checkpoints.HANG_FIRST,
                          checkpoints.PREFIX + checkpoints.PREPARED: "hang"})
        kazoo_client.delete(board_job(stack, job.board_job_id).lock_path)
        wait_until(prepared.exists, 30, "conductor B to be held with the flow loaded")
        b_pid = json.loads(prepared.read_text())["pid"]
        assert b_pid != a_pid
        assert f".{b_pid}." in create_job(stack, share.id).owner  # B recorded its claim
        # A writes (its first step's start, with the atom rows): refused; B is still held.
        stack.set_faults({checkpoints.PREFIX + checkpoints.PREPARED: "hang"})
        refused = (f"board job {job.board_job_id} (job {job.id}): its flow was recorded by another conductor "
                   f"meanwhile")
        wait_until(lambda: refused in stack.log("pool") or step_rows(stack, job.flow_detail_id), 30,
                   "conductor A's first write")
        assert step_rows(stack, job.flow_detail_id) == []
        assert f"job {job.id} is no longer recorded as run by" in stack.log("pool")
    finally:
        stack.clear_faults()  # B writes now
        first_write.unlink(missing_ok=True)
        prepared.unlink(missing_ok=True)

    share = stack.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
    assert share.status == "available", stack.log("pool")[-4000:]
    finished = stack.finished_job(share.id, "create_share")
    assert finished.id == job.id and finished.state == states.JOB_SUCCEEDED
    assert f".{b_pid}." in finished.owner
    assert duplicate_step_names(stack, job.flow_detail_id) == []
    assert f"board job {job.board_job_id}: back to the board" not in stack.log("pool")
    assert all(state == "SUCCESS" for _, state in step_rows(stack, job.flow_detail_id))
    assert_left_alone_then_delete(stack, m, share, job, kazoo_client, a_pid, b_pid)


def flow_state(stack, flow_uuid: str) -> str | None:
    with stack.db.engine.connect() as conn:
        return conn.scalar(sa.text("SELECT state FROM flowdetails WHERE uuid = :u"), {"u": flow_uuid})


def test_a_late_write_of_a_resumed_job_by_a_conductor_that_lost_it_is_refused(any_stack, kazoo_client):
    """A resumed job: its first conductor died inside a step (atom rows
    written); A claims it, records itself in the job's record, loads the
    flow, runs the step found RUNNING again and is held before its first
    write; its claim goes unknown to it. B claims the job, records itself,
    resumes it and runs it to its end. Then A's write lands - without the
    fence it would set B's finished rows back (the flow RUNNING, the next
    step RUNNING), run that step again and, its claim found lost, leave the
    flow SUSPENDED: it is refused whole. The rows and the share are as B
    left them, nothing is set aside or failed, A's worker serves on."""
    stack = any_stack
    m = stack.manila(stack.token("tenant-takeover"))
    marker = checkpoints.marker_path(stack.config.backend("b1").fault_plan, POINT)
    marker.unlink(missing_ok=True)
    stack.set_faults({"create_volume": "hang"})
    try:
        share = m.shares.create("NFS", 1, name="taken-over-resumed")
        first = stack.job_inside(share.id, "create_share", "create_volume")
        victim = owner_pid(first)
        # The first conductor dies inside the step; its lock goes (as with
        # its session), and the job is resumed by the next claim: A.
        stack.set_faults({checkpoints.PREFIX + POINT: checkpoints.HANG_FIRST})
        os.kill(victim, signal.SIGKILL)
        kazoo_client.delete(board_job(stack, first.board_job_id).lock_path)
        wait_until(marker.exists, 30, "conductor A, resuming the job, to be held before its first write")
        a_pid = json.loads(marker.read_text())["pid"]
        job = create_job(stack, share.id)
        assert a_pid != victim and f".{a_pid}." in job.owner and job.board_job_id == first.board_job_id
        resumed = step_rows(stack, job.flow_detail_id)
        assert ("create_volume", "RUNNING") in resumed

        # A's claim goes; B claims the job, resumes it (A wrote nothing) and
        # runs it to its end.
        kazoo_client.delete(board_job(stack, job.board_job_id).lock_path)
        share = stack.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
        assert share.status == "available", stack.log("pool")[-4000:]
        finished = stack.finished_job(share.id, "create_share")
        assert finished.id == job.id and finished.state == states.JOB_SUCCEEDED
        assert f".{a_pid}." not in finished.owner
        b_rows = step_rows(stack, job.flow_detail_id)
        assert all(state == "SUCCESS" for _, state in b_rows)
        assert flow_state(stack, job.flow_detail_id) == "SUCCESS"
    finally:
        stack.clear_faults()  # A writes now
        marker.unlink(missing_ok=True)

    refused = f"board job {job.board_job_id} (job {job.id}): its flow was recorded by another conductor meanwhile"
    wait_until(lambda: refused in stack.log("pool") or step_rows(stack, job.flow_detail_id) != b_rows
               or flow_state(stack, job.flow_detail_id) != "SUCCESS", 30, "conductor A's late write")
    assert f"job {job.id} is no longer recorded as run by" in stack.log("pool")
    assert step_rows(stack, job.flow_detail_id) == b_rows
    assert flow_state(stack, job.flow_detail_id) == "SUCCESS"
    assert stack.finished_job(share.id, "create_share").state == states.JOB_SUCCEEDED
    assert m.shares.get(share.id).status == "available"
    assert_left_alone_then_delete(stack, m, share, job, kazoo_client, a_pid)
