"""Where the filter scheduler puts a new share, through the API over reported pools.

Own environment (own database): each test reports exactly the pools it
places on (as conductors of a btrfs and of an image backend would) and
removes them after, so what passes the filters is what the test says.
The API places the share in the create's transaction (``[scheduler]
placement = "api"``, the default: its own ``[scheduler]`` decides) and
records its one create job; a test of conductor placement creates through a
service configured so and runs the scheduling job with a scheduler conductor
in process (``env.schedule``, with the API's configuration or the
``[scheduler]`` a test gives it). No other conductor runs, so a placed share
stays ``creating`` and holds its pool's space (the ``allocated_capacity_gb``
counter), as a share being made does.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from shareflow.config import Config, SchedulerConfig
from shareflow.db.models import Job, Message, Pool, Share
from shareflow.drivers.share import registry as share_drivers
from shareflow.services.context import Caller
from shareflow.services.shares import ShareService
from shareflow.wiring import utcnow
from tests.api.conftest import ApiEnv, build_env, report_pool
from tests.fixtures.coordination import chroot

BTRFS = "testhost@fastfs#pool0"
IMAGE = "otherhost@bulkimg#pool0"
ALICE = Caller(project_id="proj-place", user_id="alice")


@pytest.fixture(scope="module")
def env(zookeeper_server, tmp_path_factory) -> Iterator[ApiEnv]:
    with chroot(zookeeper_server.hosts) as zk_root:
        e = build_env(tmp_path_factory.mktemp("placement"), zookeeper_server.hosts, zk_root)
        try:
            yield e
        finally:
            e.close()


@pytest.fixture
def pools(env) -> Iterator[None]:
    """Only the pools a test reports are seen; its shares are gone after."""
    def clear():
        with env.services.db.write() as s:
            s.execute(sa.delete(Share))
            s.execute(sa.text("DELETE FROM pool_allocations"))
            s.execute(sa.delete(Pool))
    clear()
    yield
    clear()


def report_btrfs(env, total_gb=100, free_gb=None, **caps) -> None:
    report_pool(env.services.db, host=BTRFS, total_gb=total_gb, free_gb=free_gb, capabilities=caps)


def report_image(env, total_gb=100, free_gb=None, **caps) -> None:
    report_pool(env.services.db, host=IMAGE, total_gb=total_gb, free_gb=free_gb, capabilities={
        **share_drivers.capabilities_of("image"), "driver_name": "XfsImageShareDriver", **caps})


def share_type(env, specs: dict[str, str]) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    result = env.post("/v2/types", {"share_type": {
        "name": name, "extra_specs": {"driver_handles_share_servers": "False", **specs}}},
        token=env.tokens["admin"])
    assert result.status_code == 200, result.text
    return name


def host_of(env, share: dict) -> str | None:
    return env.share_row(share["id"]).host


def status_of(env, share: dict) -> str:
    """Once placed (or not): the create's answer is always ``creating``."""
    return env.share_row(share["id"]).status


def messages(env, share_id: str) -> list[dict]:
    result = env.get(f"/v2/messages?resource_id={share_id}", token=env.tokens["alice"])
    assert result.status_code == 200
    return result.json["messages"]


def test_fast_and_bulk_land_where_their_specs_say(env, pools):
    """``fast`` asks for snapshots and reverts (btrfs has both, image no
    revert); ``bulk`` names the image backend; a type nothing satisfies is
    ``error`` with Manila's "No valid host" message naming the filter."""
    report_btrfs(env, total_gb=10)  # the smaller pool: the weigher alone would not pick it
    report_image(env, total_gb=1000, share_backend_name="bulkimg")
    fast = share_type(env, {"snapshot_support": "True", "revert_to_snapshot_support": "True"})
    bulk = share_type(env, {"share_backend_name": "bulkimg"})
    for _ in range(2):
        assert host_of(env, env.create_share(token=env.tokens["alice"], share_type=fast)) == BTRFS
        assert host_of(env, env.create_share(token=env.tokens["alice"], share_type=bulk)) == IMAGE
    # Without specs the CapacityWeigher decides: the larger pool.
    assert host_of(env, env.create_share(token=env.tokens["alice"])) == IMAGE

    nothing = share_type(env, {"share_backend_name": "bulkimg", "revert_to_snapshot_support": "True"})
    share = env.create_share(token=env.tokens["alice"], share_type=nothing)
    assert status_of(env, share) == "error" and host_of(env, share) is None
    (msg,) = messages(env, share["id"])
    assert msg["action_id"] == "001" and msg["detail_id"] == "008"
    assert msg["user_message"] == ("allocate host: No storage could be allocated for this share "
                                   "request, Capabilities filter didn't succeed.")


def test_thick_pool_that_cannot_hold_the_share_is_skipped(env, pools):
    """thin_provisioning=False in the type: a pool that can do both (Manila's
    ``[True, False]``) is counted thick, by its free space, so the pool that
    over-subscription made the emptiest is skipped when it cannot hold it."""
    both = [True, False]
    report_btrfs(env, total_gb=10, max_over_subscription_ratio=20.0, thin_provisioning=both)
    report_image(env, total_gb=50, max_over_subscription_ratio=1.0, thin_provisioning=both)
    thick = share_type(env, {"thin_provisioning": "False"})
    thin = share_type(env, {})
    # Thin, the 10 GiB pool offers 200 virtual GiB and is the emptier by the weigher's measure.
    assert host_of(env, env.create_share(token=env.tokens["alice"], size=20, share_type=thin)) == BTRFS
    assert host_of(env, env.create_share(token=env.tokens["alice"], size=20, share_type=thick)) == IMAGE
    share = env.create_share(token=env.tokens["alice"], size=40, share_type=thick)
    assert status_of(env, share) == "error"
    assert messages(env, share["id"])[0]["detail_id"] == "009"  # Capacity


def test_over_subscription_is_used_until_provisioned_exceeds_the_ratio(env, pools):
    """A thin pool of 10 GiB with max_over_subscription_ratio 2.0 takes
    shares until 20 GiB are provisioned, and not one GiB more."""
    report_btrfs(env, total_gb=10, max_over_subscription_ratio=2.0)
    placed = [env.create_share(token=env.tokens["alice"], size=4) for _ in range(5)]
    assert [host_of(env, s) for s in placed] == [BTRFS] * 5  # 20 GiB provisioned on 10
    assert status_of(env, env.create_share(token=env.tokens["alice"], size=1)) == "error"


def scheduler_with(env, **scheduler) -> Config:
    """An API's configuration with this ``[scheduler]``."""
    return dataclasses.replace(env.config, scheduler=SchedulerConfig(**scheduler))


def service(env, config: Config) -> ShareService:
    """The API's share service with ``config`` (on the environment's database and boards)."""
    return ShareService(config, env.services.db, env.services.poster, clock=utcnow)


def jobs_of(env, share_id: str) -> list[Job]:
    with env.services.db.read() as s:
        return list(s.scalars(sa.select(Job).where(Job.resource_id == share_id).order_by(Job.created_at)))


def place_many(env, config: Config, n: int) -> list[str | None]:
    """Where an API configured so places ``n`` shares, one after the other
    (placed in each create's answer)."""
    api = service(env, config)
    hosts = []
    for _ in range(n):
        share = api.create(ALICE, size=10, share_proto="NFS")
        assert share.host == env.share_row(share.id).host
        hosts.append(share.host)
    return hosts


def test_the_api_places_the_share_with_one_create_job(env, pools):
    """The default: the create's answer has the share on its pool, and its
    one job is the create on that pool's board (not a scheduling job), first
    of its chain, posted; the pool's allocation holds the share from then."""
    from shareflow.db import pools as pools_db

    report_btrfs(env, total_gb=100)
    # (An admin's view shows the host.)
    result = env.post("/v2/shares", {"share": {"size": 3, "share_proto": "NFS"}}, token=env.tokens["admin"])
    assert result.status_code == 200, result.text
    answered = result.json["share"]
    assert (answered["status"], answered["host"]) == ("creating", BTRFS)
    (job,) = jobs_of(env, answered["id"])
    assert (job.operation, job.backend, job.retry_of, job.state) == (
        "create_share", BTRFS.partition("#")[0], None, "posted")
    assert job.board_job_id and (job.project_id, job.user_id) == ("adminproj", "root")
    assert job.request_id == result.headers["x-openstack-request-id"]
    with env.services.db.read() as s:
        assert pools_db.allocated_gb(s, BTRFS) == 3
    # Nothing for a scheduler conductor to do.
    assert env.schedule() == 0


def test_the_api_schedules_with_its_own_scheduler_configuration(env, pools):
    """The API's ``[scheduler]`` decides: an API whose configuration refuses
    every pool (its filters see none fresh) fails the share at once, with
    the allocate-host message and no job."""
    report_btrfs(env, total_gb=100)
    blind = service(env, scheduler_with(env, pool_stale_after=-1.0))
    share = blind.create(ALICE, size=1, share_proto="NFS")
    assert (share.status, share.host) == ("error", None)
    assert jobs_of(env, share.id) == []
    with env.services.db.read() as s:
        (msg,) = s.scalars(sa.select(Message).where(Message.resource_id == share.id)).all()
    assert (msg.project_id, msg.action_id) == (ALICE.project_id, "001")
    assert msg.user_message.startswith("allocate host: ")


def test_with_conductor_placement_the_api_does_not_schedule_the_conductor_does(env, pools):
    """``placement = "conductor"``: the API's ``[scheduler]`` plays no part:
    an API whose configuration would refuse every pool still creates the
    share, unplaced, with a scheduling job; the conductor's scheduler places it."""
    report_btrfs(env, total_gb=100)
    api = service(env, scheduler_with(env, pool_stale_after=-1.0, placement="conductor"))
    share = api.create(ALICE, size=1, share_proto="NFS")
    assert (share.status, share.host) == ("creating", None)
    (job,) = jobs_of(env, share.id)
    assert (job.operation, job.backend, job.state) == ("schedule_share", "scheduler", "posted")
    assert env.schedule() == 1
    assert (env.share_row(share.id).status, env.share_row(share.id).host) == ("creating", BTRFS)
    scheduled, create = jobs_of(env, share.id)
    assert (create.operation, create.retry_of) == ("create_share", scheduled.id)


def test_capacity_weigher_spreads_and_a_negative_multiplier_stacks(env, pools):
    report_btrfs(env, total_gb=100, max_over_subscription_ratio=1.0)
    report_image(env, total_gb=100, max_over_subscription_ratio=1.0)
    # Spread: each share goes to the pool with the most room left.
    spread = place_many(env, scheduler_with(env, capacity_weight_multiplier=1.0), 4)
    assert sorted(spread) == sorted([BTRFS, BTRFS, IMAGE, IMAGE]) and spread[0] != spread[1], spread
    # Stack: the fullest pool that can still hold it (80 GiB left on each:
    # the first share decides), until it is full; then the other one.
    stacked = place_many(env, scheduler_with(env, capacity_weight_multiplier=-1.0), 9)
    assert len(set(stacked[:8])) == 1 and stacked[8] not in (None, stacked[0]), stacked


def test_first_fit_follows_the_configured_order(env, pools):
    """``first_fit``: the backend first in its host's configuration wins,
    whatever their free space, as long as it can hold the share (its name
    sorts last, so neither the names nor the free space decide)."""
    report_btrfs(env, total_gb=30, max_over_subscription_ratio=1.0)
    report_image(env, total_gb=1000, max_over_subscription_ratio=1.0)
    with env.services.db.write() as s:
        s.execute(sa.update(Pool).where(Pool.host == BTRFS).values(config_order=0))
        s.execute(sa.update(Pool).where(Pool.host == IMAGE).values(config_order=1))
    assert place_many(env, scheduler_with(env, default_weighers=("first_fit",)), 4) == [BTRFS, BTRFS, BTRFS, IMAGE]


def test_a_placement_whose_create_cannot_be_posted_is_undone_and_the_share_error(env, pools, tmp_path):
    """Conductor placement: the scheduling job's last step cannot post the create job (ZooKeeper
    away, injected at checkpoint ``conductor.placed``): the create job is
    withdrawn, the share unplaced (its pool's allocation given back) and
    ``error`` with a message naming the step; its quota is given back too."""
    import json

    from shareflow.db import pools as pools_db
    from shareflow.db import quotas as quotas_db

    report_btrfs(env, total_gb=100)
    plan = tmp_path / "scheduler-faults.json"
    plan.write_text(json.dumps({"conductor.placed": "unavailable"}))
    config = dataclasses.replace(env.config, scheduler=dataclasses.replace(
        env.config.scheduler, fault_plan=plan, placement="conductor"))
    share = service(env, config).create(ALICE, size=7, share_proto="NFS")
    with env.services.db.read() as s:
        assert quotas_db.usage(s, ALICE.project_id)["gigabytes"] == 7  # taken by the request
    assert env.schedule(config) == 1
    row = env.share_row(share.id)
    assert (row.status, row.host, row.backend) == ("error", None, None)
    with env.services.db.read() as s:
        jobs = list(s.scalars(sa.select(Job).where(Job.resource_id == share.id)))
        assert [(j.operation, j.state, j.failed_step) for j in jobs] == [
            ("schedule_share", "reverted", "post_create")]
        assert pools_db.allocated_gb(s, BTRFS) == 0
        assert quotas_db.usage(s, ALICE.project_id)["gigabytes"] == 0
    with env.services.db.read() as s:
        (msg,) = s.scalars(sa.select(Message).where(Message.resource_id == share.id)).all()
    assert (msg.project_id, msg.action_id) == (ALICE.project_id, "001")
    assert msg.user_message.startswith("allocate host: step 'post_create' failed: ")


def test_a_create_whose_job_cannot_be_posted_leaves_nothing(tmp_path):
    """API placement, ZooKeeper away (nothing listens where the API's
    configuration says): the share was placed and its create job recorded
    in the POST's transaction, but the post fails: 503 with Manila's body,
    and nothing is left - no share row, no job, the pool's allocation and
    the project's quota usage given back, the share's id gone from the
    metadata of the share its scheduler hint named."""
    from shareflow.db import pools as pools_db
    from shareflow.db import quotas as quotas_db
    from shareflow.system.ports import free_port
    from tests.api.conftest import POOL_HOST, assert_fault

    env = build_env(tmp_path, f"127.0.0.1:{free_port()}", "/nowhere", zk_connect_timeout=1.0)
    try:
        headers = {"X-Auth-Token": env.tokens["alice"], "X-OpenStack-Manila-API-Version": "2.65"}
        # A share no pool takes needs no post: error at once, no job.
        nowhere = share_type(env, {"share_backend_name": "no-such-backend"})
        other = env.create_share(token=env.tokens["alice"], share_type=nowhere)
        assert env.share_row(other["id"]).status == "error" and env.count(Job) == 0
        result = env.client.simulate_post("/v2/shares", headers=headers, json={"share": {
            "size": 5, "share_proto": "NFS", "scheduler_hints": {"different_host": other["id"]}}})
        message = assert_fault(result, 503, "serviceUnavailable")
        assert message.startswith("Could not schedule the create share: ") and "Nothing was changed" in message
        assert env.count(Share) == 1 and env.count(Job) == 0
        with env.services.db.read() as s:
            assert pools_db.allocated_gb(s, POOL_HOST) == 0
            usage = quotas_db.usage(s, "proj-a")
            assert (usage["shares"], usage["gigabytes"]) == (0, 0)  # the other one is error: not counted
            assert quotas_db.recount(s, "proj-a") == usage
        listed = env.get(f"/v2/shares/{other['id']}/metadata", token=env.tokens["alice"])
        assert listed.json["metadata"] == {}
    finally:
        env.close()
