"""Jobs an operator steers, on the real stack: a failed undo resumed, a
reverted create retried, a create cancelled mid-flight, jobs stalled while
every conductor is dead. The steering service is called directly (the API and
the CLI have their own tests over it)."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from kazoo.client import KazooClient

from shareflow.db.models import JobAction, Message, Share
from shareflow.domain import states
from shareflow.engine.zk import board_path
from shareflow.exceptions import CANCELLED_MESSAGE, Conflict, Forbidden
from shareflow.services.context import Caller
from shareflow.system import btrfs
from tests.fixtures.stack import ServiceStack, wait_until
from tests.functional.test_create_reverts import backend_is_clean

ADMIN = Caller(project_id="admin", user_id="operator", is_admin=True, request_id="req-steer")
MEMBER = Caller(project_id="tenant-steer", user_id="someone")
#: Small, so that the stalled test waits little (the claim decides, not this).
STALL_AFTER = 1.0


@pytest.fixture(scope="module")
def steer_stack(zookeeper_server, btrfs_pool, tmp_path_factory) -> Iterator[ServiceStack]:
    with ServiceStack(tmp_path_factory.mktemp("steer"), zk_hosts=zookeeper_server.hosts,
                      btrfs_pool=btrfs_pool, conductor={"stall_after": STALL_AFTER}) as s:
        yield s


@pytest.fixture
def stack(steer_stack) -> Iterator[ServiceStack]:
    steer_stack.clear_faults()
    services = steer_stack.services()
    steer_stack.jobs = services.jobs
    try:
        yield steer_stack
    finally:
        steer_stack.clear_faults()
        try:
            _delete_all_shares(steer_stack, services)
        finally:
            services.close()


def _delete_all_shares(stack, services) -> None:
    """Each test leaves the pool as it found it (the scheduler counts live shares)."""
    with stack.db.read() as s:
        live = list(s.scalars(sa.select(Share.id).where(Share.deleted_at.is_(None))))
    for share_id in live:
        wait_until(lambda: stack.share_row(share_id).status not in states.SHARE_TRANSITIONAL, 60,
                   f"share {share_id} to settle")
        services.shares.delete(ADMIN, share_id)
    for share_id in live:
        wait_until(lambda: stack.share_row(share_id).deleted_at is not None, 60, f"share {share_id} to go")


def messages_for(stack, resource_id: str) -> list[str]:
    with stack.db.read() as s:
        return [m.user_message for m in s.scalars(
            sa.select(Message).where(Message.resource_id == resource_id).order_by(Message.created_at))]


def calls(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def subvolume(stack, share_id: str) -> Path:
    return Path(stack.btrfs.mount_point) / "shares" / share_id


def test_failed_undo_ends_revert_failed_and_resume_finishes_it(stack, tmp_path):
    """Export fails, and deleting the volume fails too: the job is
    revert_failed with the subvolume left and a message naming the undo that
    failed. Resumed (two operators at once: one wins, one 409) once the fault
    is lifted, it deletes the volume and undoes the earlier steps, without
    running any step again."""
    stack.set_faults({"add_export": "fail", "delete_volume": "fail"})
    m = stack.manila(stack.token("tenant-steer"))
    share = m.shares.create("NFS", 1, name="undo-fails")
    share = stack.wait_for_share(m, share.id, {"available", "error"})
    job = stack.finished_job(share.id)
    assert (job.state, job.failed_step) == (states.JOB_REVERT_FAILED, "export")
    assert share.status == "error"
    (text,) = messages_for(stack, share.id)
    assert "step 'export' failed: injected fault at add_export" in text
    assert "undoing step 'create_volume' failed too: injected fault at delete_volume" in text
    assert f"resumes job {job.id}" in text
    assert share.id in stack.backend().share.list_volumes()
    subvol_id = btrfs.subvolume_id(subvolume(stack, share.id), timeout=30)
    assert subvol_id in {q.id for q in btrfs.qgroup_show(stack.btrfs.mount_point, timeout=30)}
    view = stack.jobs.show(job.id)
    assert view.current_step == "export"
    assert {s.name: s.state for s in view.steps}["create_volume"] == "REVERT_FAILURE"

    with pytest.raises(Forbidden):
        stack.jobs.resume(job.id, MEMBER)
    with pytest.raises(Conflict):
        stack.jobs.retry(job.id, ADMIN)  # not reverted: resume is what finishes it

    log = tmp_path / "calls.log"
    stack.set_faults({"_calls": str(log)})  # the fault lifted; the driver calls counted
    outcomes: list[object] = []
    barrier = threading.Barrier(2)

    def resume():
        services = stack.services()
        try:
            barrier.wait()
            outcomes.append(services.jobs.resume(job.id, ADMIN))
        except Conflict as error:
            outcomes.append(error)
        finally:
            services.close()

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "Job"], outcomes
    (won,) = [o for o in outcomes if not isinstance(o, Conflict)]
    assert won.attempt == 2

    done = wait_until(lambda: (j := stack.jobs.show(job.id).job).finished_at and j, 30, "the resumed job")
    assert done.state == states.JOB_REVERTED
    backend_is_clean(stack, share.id)
    assert subvol_id not in {q.id for q in btrfs.qgroup_show(stack.btrfs.mount_point, timeout=30)}
    made = calls(log)
    assert "delete_volume" in made
    for step_call in ("allocate", "provide", "create_volume", "add_export", "update_access"):
        assert step_call not in made, made
    assert stack.share_row(share.id).status == "error"
    history = stack.jobs.show(job.id).actions
    assert [(a.action, a.from_state, a.to_state, a.user_id) for a in history] == [
        ("resume", states.JOB_REVERT_FAILED, states.JOB_POSTED, "operator")]
    # Resuming again is refused: everything is undone.
    with pytest.raises(Conflict):
        stack.jobs.resume(job.id, ADMIN)


def test_retry_of_a_reverted_create_makes_the_same_share_available(stack):
    stack.set_faults({"add_export": "fail"})
    m = stack.manila(stack.token("tenant-steer"))
    share = m.shares.create("NFS", 1, name="retry-me")
    stack.wait_for_share(m, share.id, {"error"})
    job = stack.finished_job(share.id)
    assert job.state == states.JOB_REVERTED
    stack.clear_faults()

    with pytest.raises(Forbidden):
        stack.jobs.retry(job.id, MEMBER)
    new = stack.jobs.retry(job.id, ADMIN)
    assert (new.retry_of, new.resource_id, new.operation) == (job.id, share.id, "create_share")
    assert (new.user_id, new.project_id) == ("operator", job.project_id)
    share = stack.wait_for_share(m, share.id, {"available", "error"})
    assert share.status == "available"
    assert stack.finished_job(share.id).state == states.JOB_SUCCEEDED
    assert stack.jobs.show(job.id).retried_by == [new.id]

    client = stack.nfs(0)
    rule = m.shares.allow(share, "ip", client.address, "rw")
    wait_until(lambda: m.share_access_rules.get(rule["id"]).state == "active", 30, "the rule")
    export = m.share_export_locations.list(share)[0].path.split(":", 1)[1]
    assert client.put(f"{export}/hello.txt", b"written after a retry").returncode == 0
    assert client.cat(f"{export}/hello.txt").stdout == "written after a retry"

    # The share has moved on (available, a newer job): retrying again is refused.
    with pytest.raises(Conflict, match="moved on"):
        stack.jobs.retry(job.id, ADMIN)


def test_retry_is_refused_once_the_share_was_deleted(stack):
    stack.set_faults({"create_volume": "fail"})
    m = stack.manila(stack.token("tenant-steer"))
    share = m.shares.create("NFS", 1, name="then-deleted")
    stack.wait_for_share(m, share.id, {"error"})
    job = stack.finished_job(share.id)
    stack.clear_faults()
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
    with pytest.raises(Conflict, match="was deleted"):
        stack.jobs.retry(job.id, ADMIN)
    with stack.db.read() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(JobAction)
                        .where(JobAction.job_id == job.id)) == 0


def test_cancel_of_a_create_held_inside_create_volume(stack):
    """The step in flight finishes; the next one does not start; everything
    is undone and the share is error with the cancel's message."""
    stack.set_faults({"create_volume": "hang"})
    m = stack.manila(stack.token("tenant-steer"))
    share = m.shares.create("NFS", 1, name="cancel-me")
    job = stack.job_inside(share.id, "create_share", "create_volume")

    with pytest.raises(Forbidden):
        stack.jobs.cancel(job.id, MEMBER)
    cancelling = stack.jobs.cancel(job.id, ADMIN)
    assert cancelling.state == states.JOB_CANCELLING
    assert stack.jobs.cancel(job.id, ADMIN).state == states.JOB_CANCELLING  # idempotent
    # Still inside the step: a cancel never interrupts one.
    assert {s.name: s.state for s in stack.jobs.show(job.id).steps}["create_volume"] == "RUNNING"
    stack.clear_faults()

    share = stack.wait_for_share(m, share.id, {"available", "error"})
    assert share.status == "error"
    done = stack.finished_job(share.id)
    assert (done.id, done.state, done.failed_step) == (job.id, states.JOB_CANCELLED, "export")
    assert messages_for(stack, share.id) == [f"create: {CANCELLED_MESSAGE}."]
    backend_is_clean(stack, share.id)
    steps = {s.name: s.state for s in stack.jobs.show(job.id).steps}
    assert steps["create_volume"] == "REVERTED" and steps["apply_access"] == "PENDING"
    history = stack.jobs.show(job.id).actions
    assert [(a.action, a.to_state) for a in history] == [("cancel", states.JOB_CANCELLING)]
    with pytest.raises(Conflict):
        stack.jobs.resume(job.id, ADMIN)  # undone completely: nothing to resume
    # A finished job cannot be cancelled.
    with pytest.raises(Conflict):
        stack.jobs.cancel(_succeeded_job(stack, m), ADMIN)


def _succeeded_job(stack, m) -> str:
    share = m.shares.create("NFS", 1, name="done")
    stack.wait_for_share(m, share.id, {"available"})
    return stack.finished_job(share.id).id


def test_jobs_stall_while_every_conductor_is_dead_and_finish_after(stack):
    """Every conductor SIGKILLed (their supervisor frozen, so that none comes
    back): jobs posted meanwhile are stalled once ZooKeeper shows no claim for
    stall_after; conductors back, they finish."""
    workers = stack.worker_pids()
    assert workers
    os.kill(stack.pool.pid, signal.SIGSTOP)
    try:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        m = stack.manila(stack.token("tenant-steer"))
        shares = [m.shares.create("NFS", 1, name=f"stalled-{i}") for i in range(2)]
        ids = {sh.id for sh in shares}

        def stalled():
            jobs = [j for j in stack.jobs.list(limit=20) if j.resource_id in ids]
            claims = stack.jobs.claims(jobs)
            return len(jobs) == 2 and all(stack.jobs.effective_state(j, claims) == states.JOB_STALLED
                                          for j in jobs) and (jobs, claims)

        jobs, claims = wait_until(stalled, 60, "the jobs to be stalled")
        assert all(j.state == states.JOB_POSTED and claims[j.id].owner is None
                   and claims[j.id].on_board for j in jobs)
        # A third one is cancelled before any conductor ever claimed it.
        doomed = m.shares.create("NFS", 1, name="cancelled-while-stalled")
        doomed_job = wait_until(lambda: stack.jobs.list(resource_id=doomed.id), 30, "its job")[0]
        assert stack.jobs.cancel(doomed_job.id, ADMIN).state == states.JOB_CANCELLING
    finally:
        os.kill(stack.pool.pid, signal.SIGCONT)
    for sh in shares:
        assert stack.wait_for_share(m, sh.id, {"available", "error"}, timeout=60).status == "available"
        assert stack.finished_job(sh.id).state == states.JOB_SUCCEEDED
    # Its first step never ran: the share is failed with the cancel's message all the same.
    assert stack.wait_for_share(m, doomed.id, {"available", "error"}, timeout=60).status == "error"
    done = stack.finished_job(doomed.id)
    assert (done.state, done.failed_step) == (states.JOB_CANCELLED, "begin")
    assert messages_for(stack, doomed.id) == [f"create: {CANCELLED_MESSAGE}."]
    backend_is_clean(stack, doomed.id)
    done = [j for j in stack.jobs.list(limit=20) if j.resource_id in ids]
    assert stack.jobs.claims(done) == {}  # finished jobs are not asked about
    wait_until(lambda: len(stack.worker_pids()) == len(workers), 30, "the pool to restart its workers")


def test_a_job_whose_board_entry_is_gone_is_stalled_and_resumed(stack):
    """A job whose record says running but that its board no longer holds
    (its node deleted by hand) is stalled, and resume posts it again with
    its persisted flow: it finishes."""
    stack.set_faults({"create_volume": "hang"})
    m = stack.manila(stack.token("tenant-steer"))
    share = m.shares.create("NFS", 1, name="lost-node")
    job = stack.job_inside(share.id, "create_share", "create_volume")
    victim = int(job.owner.split(".")[1])
    os.kill(victim, signal.SIGKILL)
    # Its claim (an ephemeral lock) and the job's node deleted at once, before
    # another conductor could claim it.
    zk = KazooClient(hosts=stack.config.zookeeper.hosts)
    zk.start()
    try:
        board = board_path(stack.config.zookeeper.chroot, "b1")
        for child in zk.get_children(board):
            path = f"{board}/{child}"
            if not child.endswith(".lock") and job.board_job_id.encode() in zk.get(path)[0]:
                if zk.exists(f"{path}.lock"):
                    zk.delete(f"{path}.lock")
                zk.delete(path)
    finally:
        zk.stop()
        zk.close()
    wait_until(lambda: stack.jobs.claims([stack.jobs.show(job.id).job])[job.id].stalled, 60,
               "the job to be stalled")
    check = stack.jobs.claims([stack.jobs.show(job.id).job])[job.id]
    assert not check.on_board and "no longer holds it" in check.reason
    stack.clear_faults()
    resumed = stack.jobs.resume(job.id, ADMIN)
    assert resumed.attempt == 2 and resumed.board_job_id != job.board_job_id
    share = stack.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
    assert share.status == "available"
    assert stack.finished_job(share.id).state == states.JOB_SUCCEEDED
    assert stack.backend().share.list_volumes().count(share.id) == 1


def test_unknown_jobs_are_404(stack):
    from shareflow.exceptions import NotFound

    for action in (stack.jobs.resume, stack.jobs.retry, stack.jobs.cancel):
        with pytest.raises(NotFound):
            action(str(uuid.uuid4()), ADMIN)
