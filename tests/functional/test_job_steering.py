"""Jobs an operator steers, on the real stack: a failed undo resumed, a
reverted create retried, a create cancelled mid-flight, jobs stalled while
every conductor is dead. The steering service is called directly (the API and
the CLI have their own tests over it)."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
import threading
import types
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from kazoo.client import KazooClient

from shareflow.db import jobs as jobs_db
from shareflow.db import shares as shares_db
from shareflow.db.models import Job, JobAction, Message, Pool
from shareflow.domain import states
from shareflow.engine import operations
from shareflow.engine.housekeeping import STALL_REPORTED
from shareflow.engine.zk import board_path
from shareflow.exceptions import CANCELLED_MESSAGE, Conflict, Forbidden
from shareflow.services.context import Caller
from shareflow.system import btrfs
from shareflow.wiring import utcnow
from tests.fixtures.stack import ServiceStack, wait_until
from tests.functional.test_create_reverts import backend_is_clean
from tests.functional.test_operations import shareflow_cli

ADMIN = Caller(project_id="admin", user_id="operator", is_admin=True, request_id="req-steer")
MEMBER = Caller(project_id="tenant-steer", user_id="someone")
#: Small, so that the stalled test waits little (the claim decides, not this).
STALL_AFTER = 1.0


@pytest.fixture(scope="module")
def steer_stack(zookeeper_server, btrfs_pool, tmp_path_factory) -> Iterator[ServiceStack]:
    # Where a test deploys code while the stack runs (a flow factory's fix).
    deployed = tmp_path_factory.mktemp("deployed")
    with ServiceStack(tmp_path_factory.mktemp("steer"), zk_hosts=zookeeper_server.hosts,
                      btrfs_pool=btrfs_pool, conductor={"stall_after": STALL_AFTER},
                      python_path=[deployed]) as s:
        s.deployed = deployed
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
            steer_stack.delete_all_shares(services, ADMIN)
        finally:
            services.close()


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
    # (The job cancelled is the create's one job: Manila's "create" action.)
    assert stack.wait_for_share(m, doomed.id, {"available", "error"}, timeout=60).status == "error"
    done = stack.finished_job(doomed.id)
    assert (done.operation, done.state, done.failed_step) == ("create_share", states.JOB_CANCELLED, "begin")
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
    delete_board_node(stack, job.board_job_id)
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


def delete_board_node(stack, board_job_id: str, key: str | None = None) -> None:
    """What an operator's ``zkCli.sh deleteall`` does: the job's node (and its
    claim, if any) gone from its board (``key``: b1's by default)."""
    zk = KazooClient(hosts=stack.config.zookeeper.hosts)
    zk.start()
    try:
        board = board_path(stack.config.zookeeper.chroot, key or stack.board_key("b1"))
        found = False
        for child in zk.get_children(board):
            path = f"{board}/{child}"
            if not child.endswith(".lock") and board_job_id.encode() in zk.get(path)[0]:
                if zk.exists(f"{path}.lock"):
                    zk.delete(f"{path}.lock")
                zk.delete(path)
                found = True
        assert found, f"job {board_job_id} is not on the board"
    finally:
        zk.stop()
        zk.close()


def housekeeping_rounds(stack, count: int, what: str) -> None:
    """Wait until the conductors' housekeeping has run ``count`` more times
    (each round first reports its pool's capacity: the row's time moves)."""
    def reported():
        with stack.db.read() as s:
            return s.scalar(sa.select(sa.func.max(Pool.updated_at)))

    seen = [reported()]

    def moved():
        now = reported()
        if now != seen[-1]:
            seen.append(now)
        return len(seen) > count

    wait_until(moved, 60, what)


def test_a_job_whose_board_node_was_deleted_is_reported_once_and_resumed_from_the_cli(stack):
    """A posted job whose board node an operator deleted by hand is never run
    by any conductor: their housekeeping finds it and reports it once (the
    job's history, a user message for the share's project), changing neither
    the job nor the share; ``shareflow jobs resume`` posts it again and it
    finishes."""
    workers = stack.worker_pids()
    os.kill(stack.pool.pid, signal.SIGSTOP)  # no conductor claims it before its node is gone
    try:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        m = stack.manila(stack.token("tenant-lost-node"))
        share = m.shares.create("NFS", 1, name="left-behind")
        job = wait_until(lambda: next((j for j in stack.jobs.list(resource_id=share.id) if j.board_job_id),
                                      None), 30, "its job to be posted")
        delete_board_node(stack, job.board_job_id, job.backend)
    finally:
        os.kill(stack.pool.pid, signal.SIGCONT)

    def reports():
        return [a for a in stack.jobs.show(job.id).actions if a.action == STALL_REPORTED]

    (report,) = wait_until(reports, 60, "the housekeeping to report the job")
    assert (report.from_state, report.to_state) == (states.JOB_POSTED, states.JOB_POSTED)
    assert report.note.startswith(f"found stalled by housekeeping on {stack.config.host}: "
                                  f"its board no longer holds it since ")
    # Later rounds of every worker find it still stalled, and say nothing more.
    housekeeping_rounds(stack, 4, "more housekeeping rounds")
    assert len(reports()) == 1
    (message,) = [msg for msg in m.messages.list() if msg.resource_id == share.id]
    # The job left behind is the create's one job (Manila's "create" action).
    assert job.operation == "create_share"
    assert message.user_message.startswith("create: waiting for an administrator: no service has worked "
                                           "on it")
    assert message.user_message.endswith(f"until an administrator resumes job {job.id}.")
    assert (message.resource_type, message.action_id) == ("SHARE", "002")
    # Nothing changed: the share still creating, the job as it was (shown stalled).
    assert m.shares.get(share.id).status == "creating"
    rows = json.loads(shareflow_cli(stack, "jobs", "list", "--resource", share.id, "--json").stdout)
    assert [(r["id"], r["state"]) for r in rows] == [(job.id, states.JOB_STALLED)]
    assert stack.jobs.get(job.id).attempt == 1

    resumed = shareflow_cli(stack, "jobs", "resume", job.id)
    assert resumed.returncode == 0, resumed.stderr
    assert stack.wait_for_share(m, share.id, {"available", "error"}, timeout=60).status == "available"
    done = stack.finished_job(share.id, "create_share")
    assert (done.id, done.state, done.attempt) == (job.id, states.JOB_SUCCEEDED, 2)
    assert [a.action for a in stack.jobs.show(job.id).actions] == [STALL_REPORTED, "resume"]
    assert [j.id for j in stack.jobs.list(resource_id=share.id)] == [job.id]
    assert stack.backend().share.list_volumes().count(share.id) == 1


def test_a_trashed_job_is_resumed_from_the_cli_once_its_flow_can_be_loaded(stack, monkeypatch):
    """A job naming a flow factory the conductors cannot import (its module
    not deployed there) is set aside: ``trashed``, its share error. Once the
    module is deployed, ``shareflow jobs resume`` posts it again with its
    logbook and it completes: the share is available."""
    module, name = "sf_deployed_flows", "create_share_v2"

    def moved():  # only this process has it, for now
        raise AssertionError("never called here")

    moved.__module__, moved.__qualname__, moved.__name__ = module, name, name
    monkeypatch.setitem(sys.modules, module, types.SimpleNamespace(**{name: moved}))
    share_id = str(uuid.uuid4())
    services = stack.services()
    try:
        with stack.db.write() as s:
            shares_db.create(s, now=utcnow(), id=share_id, project_id="tenant-trashed", size=1,
                             share_proto="NFS", status=states.CREATING, backend=stack.board_key(),
                             host=f"{stack.board_key()}#pool0", is_public=False)
            spec = dataclasses.replace(operations.job_spec(
                "create_share", backend=stack.board_key(), resource_id=share_id, project_id="tenant-trashed",
                store={"share_id": share_id, "size": 1, "share_network_id": None}), factory=moved)
            job = services.poster.record(s, spec)
        services.poster.post(job, spec)
    finally:
        services.close()
    m = stack.manila(stack.token("tenant-trashed"))
    stack.wait_for_share(m, share_id, {"error"})
    trashed = stack.finished_job(share_id)
    assert (trashed.id, trashed.state) == (job.id, states.JOB_TRASHED)

    deployed = stack.deployed / f"{module}.py"
    deployed.write_text("from shareflow.flows.create_share import create_share as create_share_v2  # noqa\n")
    monkeypatch.delitem(sys.modules, module)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(stack.deployed), os.environ.get("PYTHONPATH", "")]))
    try:
        resumed = shareflow_cli(stack, "jobs", "resume", job.id)
        assert resumed.returncode == 0, resumed.stderr
        assert stack.wait_for_share(m, share_id, {"available", "error"}, timeout=60).status == "available"
    finally:
        deployed.unlink()
    done = stack.finished_job(share_id)
    assert (done.id, done.state, done.attempt) == (job.id, states.JOB_SUCCEEDED, 2)
    assert [(a.action, a.from_state) for a in stack.jobs.show(job.id).actions] == [
        ("resume", states.JOB_TRASHED)]
    assert stack.backend().share.list_volumes().count(share_id) == 1


def test_a_job_of_a_backend_no_conductor_serves_is_listed_stalled(stack):
    """A job whose backend was removed from the configuration (no board, no
    conductor of it anywhere): ``jobs list`` and ``GET /v2/jobs?state=stalled``
    show it stalled, saying why."""
    share_id = str(uuid.uuid4())
    services = stack.services()
    try:
        with stack.db.write() as s:
            job = services.poster.record(s, operations.job_spec(
                "create_share", backend="retired", resource_id=share_id, project_id="tenant-retired",
                store={"share_id": share_id, "size": 1, "share_network_id": None}))
            jobs_db.set_posted(s, job.id, str(uuid.uuid4()), now=utcnow())
    finally:
        services.close()
    try:
        def stalled():
            rows = json.loads(shareflow_cli(stack, "jobs", "list", "--state", "stalled", "--resource", share_id,
                                            "--json").stdout)
            return rows[0] if rows else None

        row = wait_until(stalled, 30, "the job to be listed stalled", interval=0.2)
        assert row["id"] == job.id
        assert row["stalled_reason"].startswith("no jobboard for backend retired since ")
        request = urllib.request.Request(
            f"{stack.url}/jobs?state=stalled&project_id=tenant-retired&with_count=true",
            headers={"X-Auth-Token": stack.admin_token})
        with urllib.request.urlopen(request, timeout=10) as r:
            listed = json.load(r)
        assert listed["count"] == 1 and [j["id"] for j in listed["jobs"]] == [job.id]
        assert listed["jobs"][0]["state"] == "stalled"
    finally:
        with stack.db.write() as s:
            s.execute(sa.delete(Job).where(Job.id == job.id))


def test_unknown_jobs_are_404(stack):
    from shareflow.exceptions import NotFound

    for action in (stack.jobs.resume, stack.jobs.retry, stack.jobs.cancel):
        with pytest.raises(NotFound):
            action(str(uuid.uuid4()), ADMIN)
