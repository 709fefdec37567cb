"""Conductor placement (``[scheduler] placement = "conductor"``): placement
runs in the conductors, as the first job of a create, on two real storage
hosts. (The default, the API placing the share in the create itself, is
``test_api_placement``.)

Host A (the stack, with the API) and host B (a ``StorageHost``) each have one
btrfs pool behind a backend ``b1``; both weigh by ``first_fit``, so host A's
pool (first by name) is the scheduler's choice whenever it passes. Every
host's conductors serve the scheduler's board; each host's scheduler
conductors follow their own ``[scheduler] fault_plan``. The orphan timeout is
long here: a create job recorded by a conductor killed before posting it is
the resumed scheduling job's to post, not the housekeeping's to fail.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from shareflow.db.models import Job
from shareflow.domain import states
from shareflow.engine import once
from shareflow.engine.checkpoints import CLAIMED, PLACED, POSTED_UNRECORDED, marker_path
from shareflow.engine.zk import board_path
from tests.fixtures.coordination import close_client, start_client
from tests.fixtures.hosts import StorageHost, conductors_down, volumes_of
from tests.fixtures.stack import ServiceStack, wait_until
from tests.functional.test_operations import messages_for, shareflow_cli
from tests.functional.test_api_placement import assert_allocate_host_message, create_where_no_pool_is
from tests.functional.test_share_type_cli import api_get

HOST_A, HOST_B = "hosta", "hostb"
CONDUCTOR = {"orphan_timeout": 60}


def scheduler_settings(base: Path) -> dict:
    return {"default_weighers": ["first_fit"], "fault_plan": str(base / "scheduler-faults.json"),
            "placement": "conductor"}


@pytest.fixture(scope="module")
def hosts(zookeeper_server, btrfs_pool, tmp_path_factory):
    base = tmp_path_factory.mktemp("scheduling")
    with ServiceStack(base / HOST_A, zk_hosts=zookeeper_server.hosts, btrfs_pool=btrfs_pool, host=HOST_A,
                      conductor=CONDUCTOR, scheduler=scheduler_settings(base / HOST_A)) as a:
        with StorageHost(a, base / HOST_B, host=HOST_B, conductor=CONDUCTOR,
                         scheduler=scheduler_settings(base / HOST_B)) as b:
            yield a, b


def plans(hosts) -> list[Path]:
    return [h.config.scheduler.fault_plan for h in hosts]


def set_plan(path: Path, plan: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(plan))
    tmp.replace(path)


@pytest.fixture
def scheduler_faults(hosts):
    yield lambda plan: [set_plan(p, plan) for p in plans(hosts)]
    for p in plans(hosts):
        p.unlink(missing_ok=True)
        for point in (PLACED, POSTED_UNRECORDED):
            marker_path(p, point).unlink(missing_ok=True)


def jobs_of(a: ServiceStack, share_id: str) -> list[Job]:
    with a.db.read() as s:
        return list(s.scalars(sa.select(Job).where(Job.resource_id == share_id).order_by(Job.created_at)))


def cleanup(a: ServiceStack, m, share_id: str) -> None:
    m.shares.delete(share_id)
    wait_until(lambda: a.share_row(share_id).deleted_at is not None, 60, "the share to be deleted")


def test_a_share_is_placed_by_another_hosts_conductor(hosts):
    """Host A's conductors all dead: host B's scheduler places the share (on
    A's pool, still fresh and first), and the create waits on A's board
    until A's conductors are back; the job chain shows both boards."""
    a, b = hosts
    m = a.manila(a.token(f"tenant-{uuid.uuid4().hex[:6]}"))
    pool_a = a.config.backend("b1").host(a.config.host)
    with conductors_down(a):
        share = m.shares.create("NFS", 1, name="placed-by-b")
        assert share.status == "creating"

        def placed():
            jobs = jobs_of(a, share.id)
            return jobs if len(jobs) == 2 and jobs[0].finished_at else None

        scheduled, create = wait_until(placed, 60, "host B's scheduler to place the share")
        assert (scheduled.operation, scheduled.backend, scheduled.state) == ("schedule_share", "scheduler",
                                                                             states.JOB_SUCCEEDED)
        assert scheduled.owner.startswith(f"{HOST_B}.") and scheduled.owner.endswith(".scheduler")
        assert (create.operation, create.backend, create.retry_of) == ("create_share", f"{HOST_A}@b1",
                                                                       scheduled.id)
        assert create.state == states.JOB_POSTED and create.board_job_id  # on A's board, waiting
        row = a.share_row(share.id)
        assert (row.status, row.host) == ("creating", pool_a)
    done = a.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
    assert done.status == "available", messages_for(a, share.id)
    assert share.id in volumes_of(a.config) and share.id not in b.volumes()
    create = a.finished_job(share.id, "create_share")
    assert create.owner.startswith(f"{HOST_A}.")
    shown = api_get(a, f"/jobs/{create.id}")["job"]
    assert [(x["id"], x["backend"]) for x in shown["attempts"]] == [
        (scheduled.id, "scheduler"), (create.id, f"{HOST_A}@b1")]
    cleanup(a, m, share.id)


def test_no_valid_host_in_the_conductor_is_error_with_manilas_message(hosts):
    a, _b = hosts
    admin, m, nowhere, share = create_where_no_pool_is(a)
    assert share.status == "creating"  # the API does not schedule
    done = a.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
    assert done.status == "error" and admin.shares.get(share.id).host is None
    assert_allocate_host_message(m, share.id)
    (scheduled,) = wait_until(lambda: (lambda js: js if js and js[0].finished_at else None)(jobs_of(a, share.id)),
                              30, "the scheduling job to finish")
    assert (scheduled.operation, scheduled.state, scheduled.failed_step) == (
        "schedule_share", states.JOB_REVERTED, "place_share")
    # No pool holds anything for it, and it counts against no quota.
    usage = shareflow_cli(a, "db", "check-usage")
    assert usage.returncode == 0, usage.stdout + usage.stderr
    cleanup(a, m, share.id)


def test_a_scheduler_killed_after_recording_the_create_job_posts_it_once(hosts, scheduler_faults):
    """The scheduling conductor dies right after the share was placed and its
    create job recorded, before the post (checkpoint ``conductor.placed``):
    another conductor resumes the scheduling job, finds the create job by
    its link and posts it - one create job, the share available, one volume."""
    a, b = hosts
    scheduler_faults({f"conductor.{PLACED}": "hang"})
    m = a.manila(a.token(f"tenant-{uuid.uuid4().hex[:6]}"))
    share = m.shares.create("NFS", 1, name="placed-once")
    markers = [marker_path(p, PLACED) for p in plans(hosts)]
    held = wait_until(lambda: next((mk for mk in markers if mk.exists()), None), 60,
                      "a scheduler to hold after recording the create job")
    victim = json.loads(held.read_text())["pid"]
    scheduled, create = jobs_of(a, share.id)
    assert (scheduled.operation, create.operation, create.retry_of) == ("schedule_share", "create_share",
                                                                        scheduled.id)
    assert create.board_job_id is None and a.share_row(share.id).host is not None  # recorded, placed, not posted
    os.kill(victim, signal.SIGKILL)
    for p in plans(hosts):
        p.unlink(missing_ok=True)
    done = a.wait_for_share(m, share.id, {"available", "error"}, timeout=120)
    assert done.status == "available", messages_for(a, share.id)
    jobs = jobs_of(a, share.id)
    assert [j.id for j in jobs] == [scheduled.id, create.id]
    resumed = a.finished_job(share.id, "schedule_share")
    assert resumed.state == states.JOB_SUCCEEDED and f".{victim}." not in resumed.owner
    assert (share.id in volumes_of(a.config)) + (share.id in b.volumes()) == 1
    cleanup(a, m, share.id)


def test_a_scheduler_killed_between_posting_the_create_job_and_recording_it_posts_it_once(hosts,
                                                                                         scheduler_faults):
    """The scheduling conductor dies after the create job reached its board
    and before its record says so (checkpoint ``conductor.posted_unrecorded``).
    The pool's conductors are down meanwhile, so the job waits on the board
    unclaimed while another conductor resumes the scheduling job: its post
    of the create job finds the one on the board (its marker) and records
    it - one board job, never two. Then the share is made once."""
    a, b = hosts
    key = f"{HOST_A}@b1"
    m = a.manila(a.token(f"tenant-{uuid.uuid4().hex[:6]}"))
    markers = [marker_path(p, POSTED_UNRECORDED) for p in plans(hosts)]
    with conductors_down(a):  # host B's scheduler places the share on A's pool
        scheduler_faults({f"conductor.{POSTED_UNRECORDED}": "hang"})
        share = m.shares.create("NFS", 1, name="posted-once")
        held = wait_until(lambda: next((mk for mk in markers if mk.exists()), None), 60,
                          "a scheduler to hold after posting the create job")
        victim, posted = json.loads(held.read_text())["pid"], json.loads(held.read_text())["job"]
        scheduled, create = jobs_of(a, share.id)
        assert (create.operation, create.backend, create.retry_of) == ("create_share", key, scheduled.id)
        assert create.board_job_id is None  # on the board, not recorded

        def create_jobs_on_board() -> list[str]:
            return [json.loads(data)["uuid"] for name, (data, _st) in board_nodes(a, key).items()
                    if not name.endswith(".lock") and json.loads(data)["details"]["shareflow"]["job_id"] == create.id]

        assert create_jobs_on_board() == [posted]
        os.kill(victim, signal.SIGKILL)
        for p in plans(hosts):
            p.unlink(missing_ok=True)
        resumed = wait_until(lambda: (lambda j: j if j.finished_at else None)(jobs_of(a, share.id)[0]), 60,
                             "another conductor to resume the scheduling job")
        assert resumed.state == states.JOB_SUCCEEDED and f".{victim}." not in resumed.owner
        # Recorded as the one that was posted, and no other posted.
        assert jobs_of(a, share.id)[1].board_job_id == posted
        assert create_jobs_on_board() == [posted]
    done = a.wait_for_share(m, share.id, {"available", "error"}, timeout=120)
    assert done.status == "available", messages_for(a, share.id)
    finished = a.finished_job(share.id, "create_share")
    assert (finished.id, finished.state, finished.board_job_id) == (create.id, states.JOB_SUCCEEDED, posted)
    assert [j.id for j in jobs_of(a, share.id)] == [scheduled.id, create.id]
    assert volumes_of(a.config).count(share.id) == 1 and share.id not in b.volumes()
    # Consumed, its marker went with it.
    client = start_client(a.config.zookeeper.hosts)
    try:
        path = once.marker_path(board_path(a.config.zookeeper.chroot, key), create.id)
        wait_until(lambda: client.exists(path) is None, 30, "the create job's marker to go with it")
    finally:
        close_client(client)
    cleanup(a, m, share.id)


def board_nodes(a: ServiceStack, key: str) -> dict[str, object]:
    """The nodes on board ``key`` now -> their stat and data."""
    client = start_client(a.config.zookeeper.hosts)
    try:
        path = board_path(a.config.zookeeper.chroot, key)
        return {c: client.get(f"{path}/{c}") for c in client.get_children(path)}
    finally:
        close_client(client)


def test_a_placed_create_is_handed_to_the_placing_worker_and_survives_its_death(hosts):
    """The worker whose scheduler placed the share serves the chosen pool
    and its conductor of it is idle: the create job is posted already
    claimed for that conductor, job node and lock in one ZooKeeper
    transaction (one zxid), without a claim. The worker is killed right
    there (held at ``conductor.claimed`` of the create job): its lock goes
    with its session and the pool's other worker claims the create job and
    makes the share once."""
    a, b = hosts
    key = f"{HOST_A}@b1"
    m = a.manila(a.token(f"tenant-{uuid.uuid4().hex[:6]}"))
    marker = marker_path(a.config.backend("b1").fault_plan, CLAIMED)
    marker.unlink(missing_ok=True)
    with conductors_down(b):  # only host A's workers place (and they serve A's pool)
        a.set_faults({f"conductor.{CLAIMED}": "hang"})
        try:
            share = m.shares.create("NFS", 1, name="handed")
            wait_until(marker.exists, 60, "the create job's conductor to hold once it has the job")
            held = json.loads(marker.read_text())
            victim = held["pid"]
            # (Marked running: by the scheduling job's last write - its
            # conductor, held before it marks the job, cannot have.)
            scheduled, create = wait_until(
                lambda: (lambda js: js if len(js) == 2 and js[1].state == states.JOB_RUNNING else None)(
                    jobs_of(a, share.id)),
                30, "the create job to be recorded and marked running")
            # Handed: its record is marked running for its conductor, from
            # the board job handed, in the scheduling job's last write (so
            # already at this point), not at the post.
            assert (create.operation, create.backend, create.state) == ("create_share", key, states.JOB_RUNNING)
            assert create.board_job_id == held["job"]
            assert create.owner.startswith(f"{HOST_A}.{victim}.") and create.owner.endswith(".b1")
            # The placing worker itself holds it: same process as the scheduler.
            assert scheduled.owner.startswith(f"{HOST_A}.{victim}.") and scheduled.owner.endswith(".scheduler")
            nodes = board_nodes(a, key)
            (job_name,) = [n for n, (data, _st) in nodes.items()
                           if not n.endswith(".lock") and json.loads(data)["uuid"] == held["job"]]
            (job_data, job_stat), (lock_data, lock_stat) = nodes[job_name], nodes[f"{job_name}.lock"]
            assert job_stat.czxid == lock_stat.czxid  # posted and claimed in one transaction
            assert json.loads(lock_data)["owner"].startswith(f"{HOST_A}.{victim}.")
            assert json.loads(lock_data)["owner"].endswith(".b1") and lock_stat.ephemeralOwner
            os.kill(victim, signal.SIGKILL)
        finally:
            a.clear_faults()
            marker.unlink(missing_ok=True)
    done = a.wait_for_share(m, share.id, {"available", "error"}, timeout=120)
    assert done.status == "available", messages_for(a, share.id)
    finished = a.finished_job(share.id, "create_share")
    assert finished.id == create.id and finished.state == states.JOB_SUCCEEDED
    assert f".{victim}." not in finished.owner and finished.board_job_id == held["job"]
    # Once: the two jobs of the chain, one volume, on A's pool.
    assert [j.id for j in jobs_of(a, share.id)] == [scheduled.id, create.id]
    wait_until(lambda: jobs_of(a, share.id)[0].finished_at, 60, "the scheduling job to finish")
    assert jobs_of(a, share.id)[0].state == states.JOB_SUCCEEDED
    assert share.id in volumes_of(a.config) and share.id not in b.volumes()
    assert volumes_of(a.config).count(share.id) == 1
    cleanup(a, m, share.id)
