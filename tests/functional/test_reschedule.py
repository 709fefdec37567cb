"""A create that fails on its pool is tried on the next one (Manila's
scheduler retry), through python-manilaclient on two real storage hosts.

Host A (the stack, with the API) and host B (a ``StorageHost``) each have one
btrfs pool behind a backend ``b1``; both the API and the conductors weigh by
``first_fit``, so with equal configuration order host A's pool (first by
name) is always the first choice. A fault injected into host A's
``create_volume`` makes every create there fail: the flow reverts on A and
A's conductor posts the next attempt to host B's board.
"""

from __future__ import annotations

import json
import os
import signal
import uuid

import pytest
import sqlalchemy as sa

from shareflow.db.models import Job
from shareflow.domain import states
from tests.fixtures.hosts import StorageHost, volumes_of
from tests.fixtures.stack import BACKEND, ServiceStack, wait_until
from tests.functional.test_operations import messages_for, shareflow_cli
from tests.functional.test_share_type_cli import api_get

HOST_A, HOST_B = "hosta", "hostb"
SETTINGS = {"scheduler": {"default_weighers": ["first_fit"]}}


@pytest.fixture(scope="module")
def hosts(zookeeper_server, btrfs_pool, tmp_path_factory):
    base = tmp_path_factory.mktemp("reschedule")
    with ServiceStack(base / HOST_A, zk_hosts=zookeeper_server.hosts, btrfs_pool=btrfs_pool, host=HOST_A,
                      **SETTINGS) as a:
        with StorageHost(a, base / HOST_B, host=HOST_B, **SETTINGS) as b:
            yield a, b


def set_faults(host, plan: dict) -> None:
    path = host.config.backend(BACKEND).fault_plan
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(plan))
    tmp.replace(path)


@pytest.fixture
def faults(hosts):
    a, b = hosts
    yield lambda host, plan: set_faults(host, plan)
    for host in (a, b):
        host.config.backend(BACKEND).fault_plan.unlink(missing_ok=True)


def jobs_of(a: ServiceStack, share_id: str) -> list[Job]:
    """The share's create attempts (its only jobs: the API placed it first)."""
    with a.db.read() as s:
        return list(s.scalars(sa.select(Job).where(Job.resource_id == share_id, Job.operation == "create_share")
                              .order_by(Job.created_at)))


def job_shown(a: ServiceStack, job_id: str) -> dict:
    """``shareflow jobs show --json``, as an operator sees it."""
    done = shareflow_cli(a, "jobs", "show", job_id, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def cleanup(a: ServiceStack, m, share_id: str) -> None:
    m.shares.delete(share_id)
    wait_until(lambda: a.share_row(share_id).deleted_at is not None, 60, "the share to be deleted")


def test_a_create_failing_on_its_pool_is_available_on_the_next(hosts, faults):
    a, b = hosts
    faults(a, {"create_volume": "fail"})
    m = a.manila(a.token(f"tenant-{uuid.uuid4().hex[:6]}"))
    share = m.shares.create("NFS", 1, name="rescheduled")
    # The first choice (host A) is shown by the first attempt's job below: the
    # share's host may already have moved on by the time a GET could look.
    done = a.wait_for_share(m, share.id, {"available", "error"})
    assert done.status == "available", messages_for(a, share.id)
    assert a.manila().shares.get(share.id).host == b.pool_host()
    # Nothing left on the first pool; the volume is on the second.
    assert share.id not in volumes_of(a.config) and share.id in b.volumes()
    # One job per attempt, linked: the first reverted on A, the second ran on B.
    first, second = wait_until(lambda: (lambda js: js if len(js) == 2 and js[1].finished_at else None)(
        jobs_of(a, share.id)), 30, "both attempts to finish")
    assert (first.backend, first.state, first.failed_step) == (f"{HOST_A}@{BACKEND}", states.JOB_REVERTED,
                                                               "create_volume")
    assert (second.backend, second.state, second.retry_of) == (f"{HOST_B}@{BACKEND}", states.JOB_SUCCEEDED,
                                                               first.id)
    # The chain: each attempt, the first recorded by the create (the API placed the share).
    assert first.retry_of is None
    chain = [(first.id, f"{HOST_A}@{BACKEND}"), (second.id, f"{HOST_B}@{BACKEND}")]
    shown = job_shown(a, first.id)
    assert [(x["id"], x["backend"]) for x in shown["attempts"]] == chain
    # GET /v2/jobs/{id} of either attempt says the same to an admin.
    assert [(x["id"], x["backend"]) for x in api_get(a, f"/jobs/{second.id}")["job"]["attempts"]] == chain
    assert messages_for(a, share.id) == []  # the user sees a share that worked
    # The pools' allocated counters followed the move (A gave the space back).
    usage = shareflow_cli(a, "db", "check-usage")
    assert usage.returncode == 0, usage.stdout + usage.stderr
    cleanup(a, m, share.id)


def test_every_pool_failing_is_error_naming_the_pools_with_nothing_left(hosts, faults):
    a, b = hosts
    faults(a, {"create_volume": "fail"})
    faults(b, {"create_volume": "fail"})
    m = a.manila(a.token(f"tenant-{uuid.uuid4().hex[:6]}"))
    share = m.shares.create("NFS", 1, name="nowhere")
    done = a.wait_for_share(m, share.id, {"available", "error"})
    assert done.status == "error"
    jobs = wait_until(lambda: (lambda js: js if len(js) == 2 and js[1].finished_at else None)(
        jobs_of(a, share.id)), 30, "both attempts to finish")
    assert [j.backend for j in jobs] == [f"{HOST_A}@{BACKEND}", f"{HOST_B}@{BACKEND}"]
    assert all(j.state == states.JOB_REVERTED for j in jobs)
    (text,) = messages_for(a, share.id)
    pool_a = a.config.backend(BACKEND).host(a.config.host)
    assert text.startswith("create: step 'create_volume' failed: injected fault at create_volume")
    assert text.endswith(f"(tried on 2 pools: {pool_a}, {b.pool_host()})"), text
    assert share.id not in volumes_of(a.config) and share.id not in b.volumes()
    cleanup(a, m, share.id)


def test_a_conductor_killed_while_rescheduling_resumes_without_double_placement(hosts, faults):
    """Host A's conductor dies while undoing the failed attempt (its
    ``delete_volume`` held): another of A's workers resumes the revert and
    reschedules once - one next attempt, the share on B, nothing on A."""
    a, b = hosts
    calls = a.base / f"calls-{uuid.uuid4().hex[:6]}.log"
    faults(a, {"create_volume": "fail", "delete_volume": "hang", "_calls": str(calls)})
    m = a.manila(a.token(f"tenant-{uuid.uuid4().hex[:6]}"))
    share = m.shares.create("NFS", 1, name="resumed")
    # The first attempt is undoing its create_volume (held in delete_volume).
    wait_until(lambda: calls.exists() and "delete_volume" in calls.read_text().split(), 60,
               "the failed attempt's revert to reach delete_volume")
    (job,) = jobs_of(a, share.id)
    assert job.state == states.JOB_RUNNING and job.owner
    pid = int(job.owner.split(".")[1])
    assert pid in a.worker_pids()
    os.kill(pid, signal.SIGKILL)
    faults(a, {"create_volume": "fail"})  # the hang released; the next worker undoes and reschedules
    done = a.wait_for_share(m, share.id, {"available", "error"}, timeout=120)
    assert done.status == "available", messages_for(a, share.id)
    jobs = jobs_of(a, share.id)
    assert len(jobs) == 2 and jobs[1].retry_of == jobs[0].id, [(j.id, j.retry_of) for j in jobs]
    assert share.id not in volumes_of(a.config) and share.id in b.volumes()
    cleanup(a, m, share.id)


def test_a_conductor_killed_between_recording_and_posting_the_next_attempt_posts_it_once(hosts, faults):
    """The conductor dies right after the next attempt is recorded and the
    share moved, before the post (checkpoint ``conductor.rescheduled``):
    another of A's workers re-runs the revert, finds the attempt recorded and
    posts it - the share ends available on B with exactly two attempts."""
    from shareflow.engine.checkpoints import RESCHEDULED, marker_path

    a, b = hosts
    plan = a.config.backend(BACKEND).fault_plan
    marker = marker_path(plan, RESCHEDULED)
    marker.unlink(missing_ok=True)
    faults(a, {"create_volume": "fail", f"conductor.{RESCHEDULED}": "hang"})
    m = a.manila(a.token(f"tenant-{uuid.uuid4().hex[:6]}"))
    share = m.shares.create("NFS", 1, name="posted-once")
    wait_until(marker.exists, 60, "the conductor to hold after recording the next attempt")
    held = json.loads(marker.read_text())["pid"]
    first, second = jobs_of(a, share.id)
    assert second.retry_of == first.id and second.board_job_id is None  # recorded, not posted
    assert a.share_row(share.id).host == b.pool_host()  # already moved
    os.kill(held, signal.SIGKILL)
    faults(a, {"create_volume": "fail"})
    done = a.wait_for_share(m, share.id, {"available", "error"}, timeout=120)
    assert done.status == "available", messages_for(a, share.id)
    jobs = jobs_of(a, share.id)
    assert [j.id for j in jobs] == [first.id, second.id]
    assert share.id not in volumes_of(a.config) and share.id in b.volumes()
    marker.unlink(missing_ok=True)
    cleanup(a, m, share.id)


# --- placement by share type on a btrfs and an image backend --------------------


@pytest.fixture(scope="module")
def mixed(zookeeper_server, btrfs_pool, tmp_path_factory):
    """Host A: the stack with an image backend (one XFS image per share);
    host B: a btrfs backend. Default weighers (CapacityWeigher)."""
    base = tmp_path_factory.mktemp("mixed")
    with ServiceStack(base / HOST_A, zk_hosts=zookeeper_server.hosts, btrfs_pool=btrfs_pool, host=HOST_A,
                      share_driver="image") as a:
        with StorageHost(a, base / HOST_B, host=HOST_B) as b:
            yield a, b


def test_share_types_land_where_their_extra_specs_say(mixed):
    """``fast`` (snapshots and reverts: btrfs only) lands on host B's btrfs
    pool, ``bulk`` (``share_driver=image``, a capability only the image driver
    reports) on host A's image pool, whatever the free space says; a type
    nothing satisfies is ``error`` with Manila's "No valid host" message; the
    pool list shows both pools with their capabilities."""
    a, b = mixed
    admin = a.manila()
    suffix = uuid.uuid4().hex[:6]
    fast = admin.share_types.create(f"fast-{suffix}", spec_driver_handles_share_servers=False,
                                    spec_snapshot_support=True,
                                    extra_specs={"revert_to_snapshot_support": "True"})
    bulk = admin.share_types.create(f"bulk-{suffix}", spec_driver_handles_share_servers=False,
                                    extra_specs={"share_driver": "image"})
    none = admin.share_types.create(f"none-{suffix}", spec_driver_handles_share_servers=False,
                                    extra_specs={"share_driver": "image", "revert_to_snapshot_support": "True"})
    pools = {p.name: p for p in admin.pools.list(detailed=True)}
    image_pool = a.config.backend(BACKEND).host(a.config.host)
    assert set(pools) == {image_pool, b.pool_host()}
    assert pools[image_pool].capabilities["share_driver"] == "image"
    assert pools[b.pool_host()].capabilities["revert_to_snapshot_support"] is True

    m = a.manila(a.token(f"tenant-{suffix}"))
    made = []
    try:
        for stype, pool in ((fast, b.pool_host()), (bulk, image_pool), (fast, b.pool_host()),
                            (bulk, image_pool)):
            share = m.shares.create("NFS", 1, share_type=stype.name)
            made.append(share.id)
            assert a.wait_for_share(m, share.id, {"available", "error"}, timeout=60).status == "available", \
                messages_for(a, share.id)
            assert admin.shares.get(share.id).host == pool, stype.name
        nothing = m.shares.create("NFS", 1, share_type=none.name)
        made.append(nothing.id)
        assert nothing.status == "error"  # the API's answer: its scheduler decided
        assert a.wait_for_share(m, nothing.id, {"available", "error"}, timeout=60).status == "error"
        (msg,) = m.messages.list(search_opts={"resource_id": nothing.id})
        assert (msg.action_id, msg.detail_id) == ("001", "008")
        assert msg.user_message == ("allocate host: No storage could be allocated for this share request, "
                                    "Capabilities filter didn't succeed.")
    finally:
        for share_id in made:
            cleanup(a, m, share_id)
