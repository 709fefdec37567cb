"""Share instances, their export locations, snapshot instances and share
replicas in-process (manila/api/v2/share_instances.py,
share_instance_export_locations.py, share_snapshot_instances.py,
share_replicas.py): every route at its microversion boundaries, Manila's
policy (admin only; replicas readable by members), bodies and error codes,
and admin actions on an instance acting on its share (snapshot)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from shareflow.api.microversions import parse
from shareflow.api.views import instances as instances_view
from shareflow.api.views.common import ViewContext
from shareflow.db import shares as shares_db
from shareflow.db.models import Job, Share, ShareSnapshot
from shareflow.domain import instance_ids
from shareflow.services.instances import ShareInstance
from shareflow.wiring import utcnow
from tests.api.conftest import POOL_HOST, assert_fault

NOT_FOUND = "The resource could not be found."
EXPERIMENTAL = {"X-OpenStack-Manila-API-Experimental": "True"}


@pytest.fixture(scope="module", autouse=True)
def unlimited(api):
    api.put("/v2/quota-sets/proj-a", {"quota_set": {"shares": -1, "gigabytes": -1, "snapshots": -1,
                                                    "snapshot_gigabytes": -1}}, token=api.tokens["admin"])


@pytest.fixture
def admin(api):
    return api.tokens["admin"]


@pytest.fixture
def share(api):
    created = api.create_share(token=api.tokens["alice"], size=1)
    api.set_share_status(created["id"], "available")
    return created


def instance_of(api, share_id: str, version: str = "2.65") -> dict:
    result = api.get(f"/v2/shares/{share_id}/instances", token=api.tokens["admin"], version=version)
    assert result.status_code == 200, result.text
    (instance,) = result.json["share_instances"]
    return instance


def policy(rule: str) -> str:
    return f"Policy doesn't allow {rule} to be performed."


def snapshot_of(api, share_id: str) -> dict:
    result = api.post("/v2/snapshots", {"snapshot": {"share_id": share_id}}, token=api.tokens["alice"])
    assert result.status_code == 202, result.text
    snap = result.json["snapshot"]
    with api.services.db.write() as s:
        s.execute(sa.update(ShareSnapshot).where(ShareSnapshot.id == snap["id"]).values(
            status="available", provider_location="pool0/snap"))
    return snap


# --- share instances ----------------------------------------------------------------


def test_an_instance_is_its_share_with_its_own_stable_id(api, admin, share):
    instance = instance_of(api, share["id"])
    assert instance["id"] != share["id"]
    assert uuid.UUID(instance["id"]).version == 4
    assert instance == instance_of(api, share["id"])  # stable
    shown = api.get(f"/v2/share_instances/{instance['id']}", token=admin).json["share_instance"]
    assert shown == instance
    row = api.share_row(share["id"])
    assert instance["share_id"] == share["id"]
    assert (instance["host"], instance["status"], instance["availability_zone"]) == (POOL_HOST, "available", "nova")
    assert (instance["share_network_id"], instance["share_server_id"]) == (None, None)
    assert instance["share_type_id"] == row.share_type_id and instance["replica_state"] is None
    assert instance["access_rules_status"] == "active" and instance["cast_rules_to_readonly"] is False
    assert instance["progress"] == "100%"
    # The status is the share's, whatever it becomes.
    api.set_share_status(share["id"], "error")
    assert api.get(f"/v2/share_instances/{instance['id']}", token=admin).json["share_instance"]["status"] == "error"
    listed = api.get("/v2/share_instances", token=admin).json["share_instances"]
    assert [i for i in listed if i["share_id"] == share["id"]] == [{**instance, "status": "error", "progress": "0%"}]


def test_instance_fields_by_microversion(api, admin, share):
    el = api.add_export_location(share["id"], "10.0.0.1:/inst-old")
    admin_el = api.add_export_location(share["id"], "192.168.0.1:/inst-old", admin_only=True)
    assert el and admin_el
    base = {"id", "share_id", "availability_zone", "created_at", "host", "status", "share_network_id",
            "share_server_id"}
    old = instance_of(api, share["id"], "2.8")
    assert set(old) == base | {"export_location", "export_locations"}
    assert old["export_location"] == "10.0.0.1:/inst-old"
    assert old["export_locations"] == ["10.0.0.1:/inst-old", "192.168.0.1:/inst-old"]
    assert set(instance_of(api, share["id"], "2.9")) == base
    assert set(instance_of(api, share["id"], "2.10")) == base | {"access_rules_status"}
    assert set(instance_of(api, share["id"], "2.11")) == base | {"access_rules_status", "replica_state"}
    v221 = base | {"access_rules_status", "replica_state"}
    assert set(instance_of(api, share["id"], "2.21")) == v221
    assert set(instance_of(api, share["id"], "2.22")) == v221 | {"share_type_id"}
    assert set(instance_of(api, share["id"], "2.29")) == v221 | {"share_type_id"}
    v230 = v221 | {"share_type_id", "cast_rules_to_readonly"}
    assert set(instance_of(api, share["id"], "2.30")) == v230
    assert set(instance_of(api, share["id"], "2.53")) == v230
    assert set(instance_of(api, share["id"], "2.54")) == v230 | {"progress"}
    # updated_at comes with 2.71, beyond this service's maximum: the view has it ready.
    with api.services.db.read() as s:
        instance = ShareInstance.of(s.get(Share, share["id"]))
        for version, has in (("2.70", False), ("2.71", True), ("2.72", True)):
            ctx = ViewContext(version=parse(version), is_admin=True, base_url="http://x")
            assert ("updated_at" in instances_view.share_instance(instance, ctx)) is has


@pytest.mark.parametrize("path", ["/v2/share_instances", "/v2/share_instances/{iid}", "/v2/shares/{sid}/instances"])
def test_instance_routes_begin_at_2_3(api, admin, share, path):
    iid = instance_of(api, share["id"])["id"]
    url = path.format(iid=iid, sid=share["id"])
    assert assert_fault(api.get(url, token=admin, version="2.2"), 404) == NOT_FOUND
    assert api.get(url, token=admin, version="2.3").status_code == 200
    assert api.get(url, token=admin, version="2.4").status_code == 200


@pytest.mark.parametrize("path,rule", [
    ("/v2/share_instances", "share_instance:index"),
    ("/v2/share_instances/{iid}", "share_instance:show"),
    ("/v2/shares/{sid}/instances", "share_instance:index"),
    ("/v2/share_instances/{iid}/export_locations", "share_instance_export_location:index"),
    ("/v2/share_instances/{iid}/export_locations/{el}", "share_instance_export_location:show"),
])
def test_members_get_403_with_manilas_policy_message(api, share, path, rule):
    el = api.add_export_location(share["id"], f"10.0.0.1:/{uuid.uuid4().hex}")
    url = path.format(iid=instance_of(api, share["id"])["id"], sid=share["id"], el=el)
    assert assert_fault(api.get(url, token=api.tokens["alice"]), 403) == policy(rule)
    # Policy before the resource: a member learns nothing of what exists.
    missing = path.format(iid=str(uuid.uuid4()), sid=str(uuid.uuid4()), el=str(uuid.uuid4()))
    assert assert_fault(api.get(missing, token=api.tokens["alice"]), 403) == policy(rule)
    # ... but not before the microversion.
    assert assert_fault(api.get(url, token=api.tokens["alice"], version="2.2"), 404) == NOT_FOUND


def test_unknown_instances_and_shares_are_404(api, admin, share):
    for missing in (str(uuid.uuid4()), "not-a-uuid", share["id"]):  # a share id is no instance id
        assert assert_fault(api.get(f"/v2/share_instances/{missing}", token=admin), 404) == NOT_FOUND
    assert assert_fault(api.get(f"/v2/shares/{uuid.uuid4()}/instances", token=admin), 404) == NOT_FOUND


def test_share_instances_detail_is_manilas_404_for_everyone(api, admin):
    for token in (admin, api.tokens["alice"]):
        for version in ("2.2", "2.3", "2.65"):
            assert assert_fault(api.get("/v2/share_instances/detail", token=token, version=version),
                                404) == NOT_FOUND


def test_a_deleted_shares_instance_is_gone(api, admin, share):
    iid = instance_of(api, share["id"])["id"]
    api.set_share_status(share["id"], "deleting")
    with api.services.db.write() as s:
        assert shares_db.mark_deleted(s, share["id"], now=utcnow())
    assert_fault(api.get(f"/v2/share_instances/{iid}", token=admin), 404)
    assert iid not in [i["id"] for i in api.get("/v2/share_instances", token=admin).json["share_instances"]]


def test_list_filters_from_2_35(api, admin):
    one = api.create_share(token=api.tokens["alice"])
    two = api.create_share(token=api.tokens["alice"])
    el = api.add_export_location(one["id"], f"10.0.0.2:/{one['id']}")
    api.set_share_status(two["id"], "error")

    def listed(version: str, **params) -> set[str]:
        result = api.get("/v2/share_instances", token=admin, version=version, params=params)
        return {i["share_id"] for i in result.json["share_instances"]} & {one["id"], two["id"]}

    both = {one["id"], two["id"]}
    for version in ("2.35", "2.36", "2.65"):
        assert listed(version, export_location_id=el) == {one["id"]}
        assert listed(version, export_location_path=f"10.0.0.2:/{one['id']}") == {one["id"]}
        assert listed(version, export_location_id=el, export_location_path="elsewhere") == set()
        assert listed(version, export_location_id=str(uuid.uuid4())) == set()
        assert listed(version, status="error") == {two["id"]}
        assert listed(version, host=POOL_HOST.partition("#")[0]) == both  # host@backend: its pools
        assert listed(version, host=POOL_HOST) == both
        assert listed(version, host="testhost") == set()  # not a prefix match
        assert listed(version, share_server_id=str(uuid.uuid4())) == set()
        assert listed(version, is_soft_deleted="true") == set()  # no recycle bin: none soft-deleted
        assert listed(version, unknown="x") == both
    # Before 2.35 Manila ignores every query parameter.
    assert listed("2.34", export_location_id=str(uuid.uuid4()), status="error") == both


def test_instance_export_locations(api, admin, share):
    iid = instance_of(api, share["id"])["id"]
    el = api.add_export_location(share["id"], "10.0.0.3:/inst")
    admin_el = api.add_export_location(share["id"], "192.168.0.3:/inst", admin_only=True)
    url = f"/v2/share_instances/{iid}/export_locations"
    assert assert_fault(api.get(url, token=admin, version="2.8"), 404) == NOT_FOUND
    assert api.get(url, token=admin, version="2.10").status_code == 200
    listed = api.get(url, token=admin, version="2.9").json["export_locations"]
    assert listed == [
        {"id": el, "path": "10.0.0.3:/inst", "share_instance_id": iid, "is_admin_only": False},
        {"id": admin_el, "path": "192.168.0.3:/inst", "share_instance_id": iid, "is_admin_only": True},
    ]
    assert [e["preferred"] for e in api.get(url, token=admin).json["export_locations"]] == [True, False]
    shown = api.get(f"{url}/{admin_el}", token=admin).json["export_location"]
    assert shown["is_admin_only"] is True and shown["share_instance_id"] == iid
    assert set(shown) == {"id", "path", "preferred", "share_instance_id", "is_admin_only", "created_at",
                          "updated_at"}
    assert_fault(api.get(f"{url}/{admin_el}", token=admin, version="2.8"), 404)
    # The share's own admin view names the same instance.
    own = api.get(f"/v2/shares/{share['id']}/export_locations", token=admin).json["export_locations"]
    assert {e["share_instance_id"] for e in own} == {iid}
    missing = str(uuid.uuid4())
    assert assert_fault(api.get(f"{url}/{missing}", token=admin), 404) == f"Export location {missing} could not be found."
    other = api.create_share(token=api.tokens["alice"])
    other_el = api.add_export_location(other["id"], "10.0.0.4:/other")
    assert_fault(api.get(f"{url}/{other_el}", token=admin), 404)  # another instance's location
    for path in (f"/v2/share_instances/{missing}/export_locations",
                 f"/v2/share_instances/{missing}/export_locations/{el}"):
        assert assert_fault(api.get(path, token=admin), 404) == f"Share instance '{missing}' not found."


# --- share instance actions -----------------------------------------------------------


def action(api, iid: str, body, **kw):
    return api.post(f"/v2/share_instances/{iid}/action", body, **kw)


def test_reset_status_resets_the_share(api, admin, share):
    iid = instance_of(api, share["id"])["id"]
    result = action(api, iid, {"reset_status": {"status": "error"}}, token=admin)
    assert result.status_code == 202 and result.text == ""
    assert api.share_row(share["id"]).status == "error"
    assert action(api, iid, {"os-reset_status": {"status": "available"}}, token=admin, version="2.6").status_code == 202
    assert api.share_row(share["id"]).status == "available"
    assert action(api, iid, {"os-reset_status": {"status": "error"}}, token=admin, version="2.3").status_code == 202
    assert api.share_row(share["id"]).status == "error"
    # Each name only at its versions; nothing at all before 2.3.
    assert assert_fault(action(api, iid, {"reset_status": {"status": "available"}}, token=admin, version="2.6"),
                        404) == NOT_FOUND
    assert_fault(action(api, iid, {"os-reset_status": {"status": "available"}}, token=admin, version="2.7"), 404)
    assert_fault(action(api, iid, {"os-reset_status": {"status": "available"}}, token=admin, version="2.2"), 404)
    assert action(api, iid, {"reset_status": {"status": "available"}}, token=admin, version="2.8").status_code == 202
    assert api.share_row(share["id"]).status == "available"


def test_reset_status_errors_in_manilas_order(api, admin, share):
    iid = instance_of(api, share["id"])["id"]
    missing = str(uuid.uuid4())
    alice = api.tokens["alice"]
    # Policy first, for anything.
    for target in (iid, missing):
        assert assert_fault(action(api, target, {"reset_status": {"status": "error"}}, token=alice),
                            403) == policy("share_instance:reset_status")
        assert assert_fault(action(api, target, {"force_delete": None}, token=alice),
                            403) == policy("share_instance:force_delete")
    # Then the body, then the instance.
    assert assert_fault(action(api, missing, {"reset_status": {"status": "sparkling"}}, token=admin),
                        400).startswith("Invalid state. Valid states:")
    assert assert_fault(action(api, missing, {"reset_status": {}}, token=admin), 400) == "Must specify 'status'"
    assert assert_fault(action(api, missing, {"reset_status": {"status": "error"}}, token=admin),
                        404) == f"Share instance {missing} could not be found."
    assert assert_fault(action(api, missing, {"force_delete": None}, token=admin),
                        404) == f"Share instance {missing} could not be found."
    assert assert_fault(action(api, iid, {"extend": {"new_size": 2}}, token=admin),
                        400) == "There is no such action: extend"
    assert_fault(action(api, iid, {"reset_status": {"status": "error"}, "x": 1}, token=admin), 400)
    assert api.share_row(share["id"]).status == "available"


def test_force_delete_deletes_the_share(api, admin, share):
    iid = instance_of(api, share["id"])["id"]
    api.set_share_status(share["id"], "error_deleting")
    result = action(api, iid, {"force_delete": None}, token=admin)
    assert result.status_code == 202 and result.text == ""
    assert api.share_row(share["id"]).status == "deleting"
    with api.services.db.read() as s:
        (job,) = s.scalars(sa.select(Job).where(Job.resource_id == share["id"], Job.operation == "delete_share"))
    assert job.backend == POOL_HOST.partition("#")[0]


def test_force_delete_old_name_and_a_share_with_snapshots(api, admin, share):
    iid = instance_of(api, share["id"])["id"]
    snapshot_of(api, share["id"])
    assert_fault(action(api, iid, {"force_delete": None}, token=admin, version="2.6"), 404)
    message = assert_fault(action(api, iid, {"os-force_delete": None}, token=admin, version="2.6"), 400)
    assert message == "Invalid share: Share still has 1 dependent snapshots."
    assert api.share_row(share["id"]).status == "available"


# --- snapshot instances -------------------------------------------------------------------


def test_snapshot_instances(api, admin, share):
    snap = snapshot_of(api, share["id"])
    share_iid = instance_of(api, share["id"])["id"]
    summary = api.get("/v2/snapshot-instances", token=admin, params={"snapshot_id": snap["id"]}).json
    (instance,) = summary["snapshot_instances"]
    assert instance == {"id": instance["id"], "snapshot_id": snap["id"], "status": "available"}
    assert instance["id"] not in (snap["id"], share_iid)
    assert instance_ids.snapshot_of_instance(instance["id"]) == snap["id"]
    detail = api.get("/v2/snapshot-instances/detail", token=admin, params={"snapshot_id": snap["id"]}).json
    (detailed,) = detail["snapshot_instances"]
    assert set(detailed) == {"id", "snapshot_id", "created_at", "updated_at", "status", "share_id",
                             "share_instance_id", "progress", "provider_location"}
    assert (detailed["share_id"], detailed["share_instance_id"]) == (share["id"], share_iid)
    assert (detailed["progress"], detailed["provider_location"]) == ("100%", "pool0/snap")
    shown = api.get(f"/v2/snapshot-instances/{instance['id']}", token=admin).json["snapshot_instance"]
    assert shown == detailed
    everything = api.get("/v2/snapshot-instances", token=admin).json["snapshot_instances"]
    assert instance in everything
    assert api.get("/v2/snapshot-instances", token=admin,
                   params={"snapshot_id": str(uuid.uuid4())}).json["snapshot_instances"] == []
    missing = str(uuid.uuid4())
    assert assert_fault(api.get(f"/v2/snapshot-instances/{missing}", token=admin),
                        404) == f"Snapshot instance {missing} could not be found."
    assert_fault(api.get(f"/v2/snapshot-instances/{snap['id']}", token=admin), 404)


@pytest.mark.parametrize("method,path,rule", [
    ("GET", "/v2/snapshot-instances", "share_snapshot_instance:index"),
    ("GET", "/v2/snapshot-instances/detail", "share_snapshot_instance:detail"),
    ("GET", "/v2/snapshot-instances/{iid}", "share_snapshot_instance:show"),
    ("POST", "/v2/snapshot-instances/{iid}/action", "share_snapshot_instance:reset_status"),
])
def test_snapshot_instance_routes_from_2_19_and_admin_only(api, admin, share, method, path, rule):
    snap = snapshot_of(api, share["id"])
    url = path.format(iid=instance_ids.snapshot_instance_id(snap["id"]))
    kw = {"json_body": {"reset_status": {"status": "available"}}} if method == "POST" else {}
    assert assert_fault(api.request(method, url, token=admin, version="2.18", **kw), 404) == NOT_FOUND
    assert api.request(method, url, token=admin, version="2.19", **kw).status_code in (200, 202)
    assert api.request(method, url, token=admin, version="2.20", **kw).status_code in (200, 202)
    assert assert_fault(api.request(method, url, token=api.tokens["alice"], **kw), 403) == policy(rule)


def test_snapshot_instance_reset_status(api, admin, share):
    snap = snapshot_of(api, share["id"])
    iid = instance_ids.snapshot_instance_id(snap["id"])
    url = f"/v2/snapshot-instances/{iid}/action"
    assert api.post(url, {"reset_status": {"status": "error"}}, token=admin).status_code == 202
    assert api.get(f"/v2/snapshots/{snap['id']}", token=admin).json["snapshot"]["status"] == "error"
    missing = str(uuid.uuid4())
    assert assert_fault(api.post(f"/v2/snapshot-instances/{missing}/action",
                                 {"reset_status": {"status": "sparkling"}}, token=admin),
                        400).startswith("Invalid state. Valid states:")
    assert assert_fault(api.post(f"/v2/snapshot-instances/{missing}/action",
                                 {"reset_status": {"status": "available"}}, token=admin),
                        404) == f"Snapshot instance {missing} could not be found."
    assert assert_fault(api.post(url, {"reset_status": None}, token=admin), 400) == "Must specify 'status'"
    assert_fault(api.post(url, {"force_delete": None}, token=admin), 400)  # not a snapshot instance action
    assert_fault(api.post(url, {"os-reset_status": {"status": "available"}}, token=admin), 400)
    assert api.get(f"/v2/snapshots/{snap['id']}", token=admin).json["snapshot"]["status"] == "error"


# --- share replicas ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v2/share-replicas", "/v2/share-replicas/detail"])
def test_replica_lists_are_empty_from_2_11_experimental_and_2_56(api, share, path):
    alice = api.tokens["alice"]
    assert assert_fault(api.get(path, token=alice, version="2.10", headers=EXPERIMENTAL), 404) == NOT_FOUND
    for version in ("2.11", "2.12", "2.55"):
        # Experimental until 2.56: without Manila's header the route does not exist.
        assert assert_fault(api.get(path, token=alice, version=version), 404) == NOT_FOUND
        result = api.get(path, token=alice, version=version, headers=EXPERIMENTAL)
        assert result.status_code == 200 and result.json == {"share_replicas": []}
        assert result.headers["X-OpenStack-Manila-API-Experimental"] == "True"
    for version in ("2.56", "2.57", "2.65"):
        result = api.get(path, token=alice, version=version, params={"share_id": share["id"]})
        assert result.status_code == 200 and result.json == {"share_replicas": []}
        assert "X-OpenStack-Manila-API-Experimental" not in result.headers
    assert api.get(path, token=api.tokens["admin"], params={"share_id": str(uuid.uuid4())}).json == {
        "share_replicas": []}
    assert assert_fault(api.get(path, token=alice, params={"limit": "x"}), 400) == "limit param must be an integer"


def test_a_replica_is_never_found(api, share):
    alice = api.tokens["alice"]
    iid = instance_ids.share_instance_id(share["id"])
    for replica in (iid, share["id"], str(uuid.uuid4())):
        assert assert_fault(api.get(f"/v2/share-replicas/{replica}", token=alice), 404) == f"Replica {replica} not found."
    assert assert_fault(api.get(f"/v2/share-replicas/{iid}", token=alice, version="2.55"), 404) == NOT_FOUND
    assert assert_fault(api.get(f"/v2/share-replicas/{iid}", token=alice, version="2.55", headers=EXPERIMENTAL),
                        404) == f"Replica {iid} not found."
    assert assert_fault(api.get(f"/v2/share-replicas/{iid}", token=alice, version="2.10", headers=EXPERIMENTAL),
                        404) == NOT_FOUND
