"""Placement from the pools conductors reported (by the API's scheduler, in
the create's transaction), on an API node with no backend configuration, and
Manila's ``GET /scheduler-stats/pools`` (admins), through the API,
python-manilaclient and ``openstack share pool list``."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from shareflow.db import share_services
from shareflow.db.models import Job, Pool
from shareflow.wiring import utcnow
from tests.api.conftest import POOL_HOST, assert_fault, report_pool
from tests.api.test_manilaclient import _openstack_cli, manila, tokens_server  # noqa: F401 (a fixture)

OTHER = "otherhost@b1#pool0"


def job_of(api, share_id: str, operation: str = "create_share") -> Job:
    with api.services.db.read() as s:
        return s.scalars(sa.select(Job).where(Job.resource_id == share_id, Job.operation == operation)).one()


@pytest.fixture
def other_pool(api):
    """A second host with a backend of the same name, roomier than the first."""
    report_pool(api.services.db, host=OTHER, total_gb=500_000)
    yield OTHER
    with api.services.db.write() as s:
        s.execute(sa.delete(Pool).where(Pool.host == OTHER))
        s.execute(sa.text("DELETE FROM services WHERE host = 'otherhost@b1'"))


def test_an_api_without_backends_places_on_the_reported_pool(api):
    assert api.config.backends == ()
    share = api.create_share(token=api.tokens["alice"])
    assert share["status"] == "creating"
    row = api.share_row(share["id"])
    assert row.status == "creating"
    assert (row.host, row.backend) == (POOL_HOST, "testhost@b1")
    admin_view = api.get(f"/v2/shares/{share['id']}", token=api.tokens["admin"]).json["share"]
    assert admin_view["host"] == POOL_HOST
    # Its job goes to the board of the host that has the storage.
    assert job_of(api, share["id"]).backend == "testhost@b1"


def test_the_roomier_host_gets_the_share_and_its_board_the_job(api, other_pool):
    share = api.create_share(token=api.tokens["alice"])
    assert api.share_row(share["id"]).host == OTHER
    assert job_of(api, share["id"]).backend == "otherhost@b1"


def test_a_stale_pool_is_not_chosen(api):
    with api.services.db.write() as s:
        s.execute(sa.update(Pool).where(Pool.host == POOL_HOST).values(updated_at=utcnow() - timedelta(hours=1)))
    try:
        # No heartbeat for this request: the env's conductor stand-in is "dead".
        result = api.client.simulate_post(
            "/v2/shares", json={"share": {"size": 1, "share_proto": "NFS"}},
            headers={"X-Auth-Token": api.tokens["alice"], "X-OpenStack-Manila-API-Version": "2.65"})
        assert result.status_code == 200, result.text
        share_id = result.json["share"]["id"]
        # The API's scheduler: no pool it could choose, the share error at once, no job.
        assert result.json["share"]["status"] == "error"
        row = api.share_row(share_id)
        assert (row.status, row.host) == ("error", None)
        assert api.count(Job, resource_id=share_id) == 0
        listed = api.client.simulate_get(
            "/v2/scheduler-stats/pools", headers={"X-Auth-Token": api.tokens["admin"],
                                                  "X-OpenStack-Manila-API-Version": "2.65"})
        assert listed.json == {"pools": []}
    finally:
        api.heartbeat()
    assert api.create_share(token=api.tokens["alice"])["status"] == "creating"


def test_a_disabled_service_gets_no_new_shares(api, other_pool):
    with api.services.db.write() as s:
        share_services.set_disabled(s, "otherhost@b1", True, reason="disk swap", now=utcnow())
    placed = api.create_share(token=api.tokens["alice"])
    assert api.share_row(placed["id"]).host == POOL_HOST  # not the roomier, disabled one
    names = [p["name"] for p in api.get("/v2/scheduler-stats/pools", token=api.tokens["admin"]).json["pools"]]
    assert names == [POOL_HOST]
    with api.services.db.write() as s:
        share_services.set_disabled(s, "otherhost@b1", False, reason=None, now=utcnow())
    assert api.share_row(api.create_share(token=api.tokens["alice"])["id"]).host == OTHER


def test_pools_lists_and_details_are_manilas_and_for_admins(api, other_pool):
    admin = api.tokens["admin"]
    summary = api.get("/v2/scheduler-stats/pools", token=admin).json
    assert summary == {"pools": [
        {"name": OTHER, "host": "otherhost", "backend": "b1", "pool": "pool0"},
        {"name": POOL_HOST, "host": "testhost", "backend": "b1", "pool": "pool0"},
    ]}
    detail = api.get("/v2/adminproj/scheduler-stats/pools/detail", token=admin, version="2.0").json["pools"]
    assert [p["name"] for p in detail] == [OTHER, POOL_HOST]
    caps = detail[1]["capabilities"]
    assert caps["snapshot_support"] is True and caps["driver_handles_share_servers"] is False
    assert caps["share_backend_name"] == "b1" and caps["storage_protocol"] == "NFS"
    for path in ("/v2/scheduler-stats/pools", "/v2/scheduler-stats/pools/detail"):
        message = assert_fault(api.get(path, token=api.tokens["alice"]), 403)
        assert message.startswith("Policy doesn't allow scheduler_stats:pools:")


def test_pool_filters_are_manilas(api, other_pool):
    admin = api.tokens["admin"]

    def names(version="2.65", **params):
        result = api.get("/v2/scheduler-stats/pools", token=admin, params=params, version=version)
        assert result.status_code == 200, result.text
        return [p["name"] for p in result.json["pools"]]

    assert names(host="other") == [OTHER]           # a regular expression from the start
    assert names(host="host") == []
    assert names(host=".*host") == [OTHER, POOL_HOST]
    assert names(backend="b1", pool="pool0$") == [OTHER, POOL_HOST]
    assert names(backend="b2") == []
    assert names(anything="x") == []                # not a key of a pool: nothing passes
    assert_fault(api.get("/v2/scheduler-stats/pools", token=admin, params={"host": "("}), 400)

    created = api.post("/v2/types", {"share_type": {"name": "needs-revert", "extra_specs": {
        "driver_handles_share_servers": "False", "revert_to_snapshot_support": "True",
        "capabilities:thin_provisioning": "<is> True", "max_over_subscription_ratio": ">= 1",
        "vendor:anything": "ignored", "storage_protocol": "<or> CIFS <or> NFS"}}}, token=admin)
    assert created.status_code == 200, created.text
    created = api.post("/v2/types", {"share_type": {"name": "needs-dhss", "extra_specs": {
        "driver_handles_share_servers": "True"}}}, token=admin)
    assert created.status_code == 200, created.text
    assert names(share_type="needs-revert") == [OTHER, POOL_HOST]
    assert names(share_type="needs-dhss") == []
    type_id = api.get("/v2/types", token=admin).json["share_types"]
    dhss_id = next(t["id"] for t in type_id if t["name"] == "needs-dhss")
    assert names(share_type=dhss_id) == []
    message = assert_fault(api.get("/v2/scheduler-stats/pools", token=admin, params={"share_type": "nope"}), 400)
    assert message == "Share type nope not found."
    assert names(version="2.22", share_type="needs-revert") == []  # before 2.23: not a pool key
    assert names(capabilities="{'share_backend_name': 'b1', 'thin_provisioning': 'True'}") == [OTHER, POOL_HOST]
    assert names(capabilities="{'vendor_name': 'someone-else'}") == []
    assert_fault(api.get("/v2/scheduler-stats/pools", token=admin, params={"capabilities": "nope"}), 400)


def test_manilaclient_and_openstack_cli_list_the_pools(tokens_server, tmp_path):
    env, server = tokens_server
    pools = manila(server, env.tokens["admin"]).pools.list(detailed=True)
    (pool,) = pools
    assert (pool.name, pool.host, pool.backend, pool.pool) == (POOL_HOST, "testhost", "b1", "pool0")
    assert pool.capabilities["share_backend_name"] == "b1"
    auth = ["--os-auth-type", "admin_token", "--os-endpoint", f"{server.url}/v2",
            "--os-token=" + env.tokens["admin"], "--os-share-api-version", "2.65"]
    listed = _openstack_cli(*auth, "share", "pool", "list", "--detail", "-f", "json", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["Name"] == POOL_HOST and row["Host"] == "testhost" and row["Backend"] == "b1"


def test_the_stale_interval_is_the_configured_one(api, tmp_path):
    """``[scheduler] pool_stale_after``: a pool last reported 10 s ago is
    offered with the default 90 s and not with 5 s."""
    from shareflow.config import parse
    from shareflow.exceptions import NoValidHost
    from shareflow.scheduler.scheduler import Scheduler, request_spec, stale_after_of

    quick = parse({"state_dir": str(tmp_path), "scheduler": {"pool_stale_after": 5}}, tmp_path / "c.toml")
    assert stale_after_of(quick) == 5.0 and stale_after_of(api.config) == 90.0
    now = utcnow()
    with api.services.db.write() as s:
        s.execute(sa.update(Pool).where(Pool.host == POOL_HOST).values(updated_at=now - timedelta(seconds=10)))
        try:
            spec = request_spec(size_gb=1, share_proto="NFS")
            assert Scheduler.from_config(api.config, clock=lambda: now).place(s, spec).host == POOL_HOST
            with pytest.raises(NoValidHost):
                Scheduler.from_config(quick, clock=lambda: now).place(s, spec)
        finally:
            s.execute(sa.update(Pool).where(Pool.host == POOL_HOST).values(updated_at=now))
