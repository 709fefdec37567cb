"""Share group types and share groups (issue 10, item 7): every route with
Manila's codes, at the microversion boundaries (2.30 not there, 2.31-2.54
only with the experimental header, 2.55 GA), the group's one pool for all
its share types, and shares created into a group."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from shareflow.db.models import Share, ShareGroup, ShareGroupSnapshot, ShareGroupType
from shareflow.wiring import utcnow
from tests.api.conftest import MAX, assert_fault, report_pool

DHSS = "driver_handles_share_servers"
EXPERIMENTAL = {"X-OpenStack-Manila-API-Experimental": "True"}
#: Two more pools: GOLD has the most room (first for a "tier=gold" type
#: alone), BOTH is the only one with "tier=gold" and "replicated=yes".
GOLD, BOTH = "testhost@b3#gold", "testhost@b2#both"


def _report_extra_pools(api) -> None:
    report_pool(api.services.db, host=GOLD, total_gb=900_000, capabilities={"tier": "gold"})
    report_pool(api.services.db, host=BOTH, total_gb=200_000, capabilities={"tier": "gold", "replicated": "yes"})


@pytest.fixture(scope="module")
def pools(api):
    _report_extra_pools(api)
    return api


def new_share_type(api, **specs) -> dict:
    body = {"share_type": {"name": f"t-{uuid.uuid4().hex[:8]}", "extra_specs": {DHSS: False, **specs}}}
    result = api.post("/v2/types", body, token=api.tokens["admin"])
    assert result.status_code == 200, result.text
    return result.json["share_type"]


def new_group_type(api, share_types: list[str], *, version=MAX, headers=None, **extra) -> dict:
    body = {"share_group_type": {"name": f"g-{uuid.uuid4().hex[:8]}", "share_types": share_types, **extra}}
    result = api.post("/v2/share-group-types", body, token=api.tokens["admin"], version=version, headers=headers)
    assert result.status_code == 200, result.text
    return result.json["share_group_type"]


def new_group(api, group_type: dict, *, token=None, **extra) -> dict:
    # Manila takes the default share type when none is named: name them.
    body = {"share_group": {"share_group_type_id": group_type["id"], "share_types": group_type["share_types"],
                            **extra}}
    result = api.post("/v2/share-groups", body, token=token or api.tokens["alice"])
    assert result.status_code == 202, result.text
    return result.json["share_group"]


# --- microversions ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v2/share-group-types", "/v2/share-group-types/detail", "/v2/share-groups",
                                  "/v2/share-groups/detail", "/v2/share-group-snapshots",
                                  "/v2/share-group-snapshots/detail"])
def test_groups_api_exists_from_2_31_experimental_and_from_2_55(api, path):
    admin = api.tokens["admin"]
    # 2.30: not there, header or not.
    assert_fault(api.get(path, token=admin, version="2.30", headers=EXPERIMENTAL), 404)
    # 2.31 .. 2.54: only with the experimental header, which is echoed.
    assert_fault(api.get(path, token=admin, version="2.31"), 404)
    assert_fault(api.get(path, token=admin, version="2.54"), 404)
    assert_fault(api.get(path, token=admin, version="2.54",
                         headers={"X-OpenStack-Manila-API-Experimental": "False"}), 404)
    for v in ("2.31", "2.54"):
        result = api.get(path, token=admin, version=v, headers=EXPERIMENTAL)
        assert result.status_code == 200 and result.headers["X-OpenStack-Manila-API-Experimental"] == "True"
    # 2.55: GA.
    result = api.get(path, token=admin, version="2.55")
    assert result.status_code == 200 and "X-OpenStack-Manila-API-Experimental" not in result.headers


def test_every_item_route_is_at_2_31_experimental_and_2_55(api):
    admin = api.tokens["admin"]
    gt = new_group_type(api, [new_share_type(api)["id"]], group_specs={"k": "v"}, is_public=False)
    group = new_group(api, gt, token=admin)
    gsnap = api.post("/v2/share-group-snapshots", {"share_group_snapshot": {"share_group_id": group["id"]}},
                     token=admin).json["share_group_snapshot"]
    for path in (f"/v2/share-group-types/{gt['id']}", f"/v2/share-group-types/{gt['id']}/group-specs",
                 f"/v2/share-group-types/{gt['id']}/group-specs/k", f"/v2/share-group-types/{gt['id']}/access",
                 f"/v2/share-groups/{group['id']}", f"/v2/share-group-snapshots/{gsnap['id']}",
                 f"/v2/share-group-snapshots/{gsnap['id']}/members"):
        for version, headers in (("2.30", EXPERIMENTAL), ("2.31", None), ("2.54", None)):
            message = assert_fault(api.get(path, token=admin, version=version, headers=headers), 404)
            assert message == "The resource could not be found.", (path, version)
        for version, headers in (("2.31", EXPERIMENTAL), ("2.54", EXPERIMENTAL), ("2.55", None), (MAX, None)):
            assert api.get(path, token=admin, version=version, headers=headers).status_code == 200, (path, version)
    # Writes too: a rename below 2.55 without the header changes nothing.
    path = f"/v2/share-groups/{group['id']}"
    assert_fault(api.put(path, {"share_group": {"name": "x"}}, token=admin, version="2.54"), 404)
    assert api.get(path, token=admin).json["share_group"]["name"] is None
    assert api.put(path, {"share_group": {"name": "x"}}, token=admin, version="2.31",
                   headers=EXPERIMENTAL).json["share_group"]["name"] == "x"


# --- share group types -------------------------------------------------------------------


def test_group_type_create_show_list_delete(api):
    admin, alice = api.tokens["admin"], api.tokens["alice"]
    st1, st2 = new_share_type(api), new_share_type(api)
    # Share types by name or id; group specs; experimental at 2.31.
    gt = new_group_type(api, [st1["name"], st2["id"]], group_specs={"consistent_snapshot_support": "pool"},
                        version="2.31", headers=EXPERIMENTAL)
    assert gt["share_types"] == [st1["id"], st2["id"]]
    assert gt["group_specs"] == {"consistent_snapshot_support": "pool"} and gt["is_public"] is True
    assert "is_default" not in gt  # 2.46
    shown = api.get(f"/v2/share-group-types/{gt['id']}", token=alice).json["share_group_type"]
    assert shown["id"] == gt["id"] and shown["is_default"] is False
    assert gt["id"] in [t["id"] for t in api.get("/v2/share-group-types", token=alice).json["share_group_types"]]
    # Manila's create errors.
    base = {"name": f"g-{uuid.uuid4().hex[:8]}", "share_types": [st1["id"]]}
    assert_fault(api.post("/v2/share-group-types", {"share_group_type": base}, token=alice), 403)
    assert_fault(api.post("/v2/share-group-types", {"share_group_type": {**base, "share_types": []}},
                          token=admin), 400)
    assert_fault(api.post("/v2/share-group-types", {"share_group_type": {**base, "name": ""}}, token=admin), 400)
    assert_fault(api.post("/v2/share-group-types", {"share_group_type": {**base, "group_specs": "x"}},
                          token=admin), 400)
    assert_fault(api.post("/v2/share-group-types", {"share_group_type": {**base, "group_specs": {"a": 1}}},
                          token=admin), 400)
    assert_fault(api.post("/v2/share-group-types", {"share_group_type": {**base, "share_types": ["nope"]}},
                          token=admin), 404)
    assert_fault(api.post("/v2/share-group-types", {"share_group_type": {**base, "name": gt["name"]}},
                          token=admin), 409)
    assert_fault(api.post("/v2/share-group-types", {"nothing": {}}, token=admin), 400)
    assert api.count(ShareGroupType, name=base["name"]) == 0
    # A share type a live group type admits is not deleted (Manila's share_type_destroy).
    assert "share group types" in assert_fault(api.delete(f"/v2/types/{st1['id']}", token=admin), 400)
    # Delete: members 403, unknown 404, then 204 and gone.
    assert_fault(api.delete(f"/v2/share-group-types/{gt['id']}", token=alice), 403)
    assert_fault(api.delete(f"/v2/share-group-types/{uuid.uuid4()}", token=admin), 404)
    assert api.delete(f"/v2/share-group-types/{gt['id']}", token=admin).status_code == 204
    assert_fault(api.get(f"/v2/share-group-types/{gt['id']}", token=admin), 404)
    # Then the share type goes.
    assert api.delete(f"/v2/types/{st1['id']}", token=admin).status_code == 202


def test_default_group_type_is_404_unless_configured(api):
    message = assert_fault(api.get("/v2/share-group-types/default"), 404)
    assert message == "Default share group type not found."
    gt = new_group_type(api, [new_share_type(api)["id"]])
    api.config.__dict__["default_share_group_type"] = gt["name"]  # frozen dataclass: the test's own config
    try:
        shown = api.get("/v2/share-group-types/default").json["share_group_type"]
        assert shown["id"] == gt["id"] and shown["is_default"] is True
        # A group created without a type gets the default one.
        group = api.post("/v2/share-groups", {"share_group": {"share_types": gt["share_types"]}}).json["share_group"]
        assert group["share_group_type_id"] == gt["id"]
        api.delete(f"/v2/share-groups/{group['id']}")
    finally:
        api.config.__dict__["default_share_group_type"] = None
    message = assert_fault(api.post("/v2/share-groups", {"share_group": {"share_types": gt["share_types"]}}), 400)
    assert "default share group type has not been configured" in message


def test_group_specs_routes(api):
    admin, alice = api.tokens["admin"], api.tokens["alice"]
    gt = new_group_type(api, [new_share_type(api)["id"]], group_specs={"a": "1"})
    path = f"/v2/share-group-types/{gt['id']}/group-specs"
    assert api.get(path, token=admin).json == {"group_specs": {"a": "1"}}
    assert_fault(api.get(path, token=alice), 403)
    assert api.post(path, {"group_specs": {"b": "2", "c": True}}, token=admin).json == {
        "group_specs": {"b": "2", "c": True}}
    assert api.get(f"{path}/c", token=admin).json == {"c": "True"}
    assert_fault(api.post(path, {"group_specs": {"b": ""}}, token=admin), 400)
    assert_fault(api.post(path, {"group_specs": {"b": 3}}, token=admin), 400)
    assert_fault(api.post(f"/v2/share-group-types/{uuid.uuid4()}/group-specs", {"group_specs": {"b": "2"}},
                          token=admin), 404)
    assert api.put(f"{path}/b", {"b": "3"}, token=admin).json == {"b": "3"}
    assert_fault(api.put(f"{path}/b", {"x": "3"}, token=admin), 400)
    assert_fault(api.put(f"{path}/b", {"b": "3", "c": "4"}, token=admin), 400)
    assert_fault(api.put(f"{path}/b", {"b": "3"}, token=alice), 403)
    assert api.delete(f"{path}/b", token=admin).status_code == 204
    assert_fault(api.delete(f"{path}/b", token=admin), 404)
    assert_fault(api.get(f"{path}/b", token=admin), 404)
    assert api.get(path, token=admin).json == {"group_specs": {"a": "1", "c": "True"}}
    # Version boundary: 2.30 is not there.
    assert_fault(api.get(path, token=admin, version="2.30"), 404)


def test_private_group_type_access(api):
    admin, alice, bob = api.tokens["admin"], api.tokens["alice"], api.tokens["bob"]
    public = new_group_type(api, [new_share_type(api)["id"]])
    private = new_group_type(api, [new_share_type(api)["id"]], is_public=False)
    path = f"/v2/share-group-types/{private['id']}"
    assert private["is_public"] is False
    assert_fault(api.get(path, token=alice), 404)
    assert private["id"] not in [t["id"] for t in api.get("/v2/share-group-types", token=alice).json[
        "share_group_types"]]
    assert api.get(f"{path}/access", token=admin).json == {"share_group_type_access": []}
    assert_fault(api.get(f"{path}/access", token=alice), 403)
    assert_fault(api.get(f"/v2/share-group-types/{public['id']}/access", token=admin), 404)
    add = {"addProjectAccess": {"project": "proj-a"}}
    assert_fault(api.post(f"{path}/action", add, token=alice), 403)
    assert_fault(api.post(f"/v2/share-group-types/{public['id']}/action", add, token=admin), 409)
    assert_fault(api.post(f"{path}/action", {"addProjectAccess": {"project": "bad project!"}}, token=admin), 400)
    assert_fault(api.post(f"{path}/action", {"nope": {}}, token=admin), 400)
    assert api.post(f"{path}/action", add, token=admin).status_code == 202
    assert_fault(api.post(f"{path}/action", add, token=admin), 409)
    assert api.get(f"{path}/access", token=admin).json == {
        "share_group_type_access": [{"share_group_type_id": private["id"], "project_id": "proj-a"}]}
    assert api.get(path, token=alice).status_code == 200
    assert private["id"] in [t["id"] for t in api.get("/v2/share-group-types", token=alice).json[
        "share_group_types"]]
    assert_fault(api.get(path, token=bob), 404)
    # Admins list: public by default, private with is_public=false, all with all.
    listed = lambda **p: [t["id"] for t in api.get("/v2/share-group-types", token=admin, params=p).json[
        "share_group_types"]]
    assert public["id"] in listed() and private["id"] not in listed()
    assert private["id"] in listed(is_public="false") and public["id"] not in listed(is_public="false")
    assert {public["id"], private["id"]} <= set(listed(is_public="all"))
    remove = {"removeProjectAccess": {"project": "proj-a"}}
    assert api.post(f"{path}/action", remove, token=admin).status_code == 202
    assert_fault(api.post(f"{path}/action", remove, token=admin), 404)
    assert_fault(api.get(path, token=alice), 404)


# --- share groups ---------------------------------------------------------------------------


def test_group_goes_to_the_one_pool_all_its_types_can_use(pools):
    api = pools
    _report_extra_pools(api)
    gold = new_share_type(api, tier="gold")
    replicated = new_share_type(api, replicated="yes")
    gt = new_group_type(api, [gold["id"], replicated["id"]])
    # Alone, a gold share goes to the roomiest gold pool...
    alone = api.create_share(token=api.tokens["alice"], share_type=gold["id"])
    assert api.share_row(alone["id"]).host == GOLD
    # ... a group of both types to the only pool both can use.
    group = new_group(api, gt, name="g1", description="d1")
    assert group["status"] == "available" and group["share_types"] == [gold["id"], replicated["id"]]
    assert group["share_group_type_id"] == gt["id"] and group["availability_zone"] == "nova"
    assert group["host"] == BOTH
    assert api.get(f"/v2/share-groups/{group['id']}", token=api.tokens["admin"]).json["share_group"][
        "host"] == BOTH
    # A share created into the group lands there too, and says so.
    member = api.create_share(token=api.tokens["alice"], share_type=gold["id"], share_group_id=group["id"])
    assert member["share_group_id"] == group["id"]
    assert api.share_row(member["id"]).host == BOTH
    # The share list's share_group_id filter (2.31; ignored below, as Manila).
    listed = lambda v: {s["id"] for s in api.get("/v2/shares", params={"share_group_id": group["id"]},
                                                 version=v).json["shares"]}
    assert listed("2.31") == {member["id"]} and {member["id"], alone["id"]} <= listed("2.30")
    # Below 2.31 the field is ignored, as Manila does.
    old = api.post("/v2/shares", {"share": {"size": 1, "share_proto": "NFS", "share_type": gold["id"],
                                            "share_group_id": group["id"]}}, version="2.30").json["share"]
    assert api.share_row(old["id"]).share_group_id is None
    # A subset of the group type's share types; a type not in the group.
    only_gold = new_group(api, gt, share_types=[gold["id"]])
    assert only_gold["share_types"] == [gold["id"]]
    message = assert_fault(api.post("/v2/shares", {"share": {"size": 1, "share_proto": "NFS",
                                                             "share_type": replicated["id"],
                                                             "share_group_id": only_gold["id"]}}), 400)
    assert "not supported by the specified share group" in message
    # A group with members is not deleted; without, it is.
    assert_fault(api.delete(f"/v2/share-groups/{group['id']}"), 409)
    api.set_share_status(member["id"], "available")
    # Manila: a group's share is deleted naming its group.
    assert "Must provide 'share_group_id'" in assert_fault(api.delete(f"/v2/shares/{member['id']}"), 400)
    assert "does not match" in assert_fault(api.delete(f"/v2/shares/{member['id']}",
                                                       params={"share_group_id": only_gold["id"]}), 400)
    assert api.share_row(member["id"]).status == "available"
    assert api.delete(f"/v2/shares/{member['id']}", params={"share_group_id": group["id"]}).status_code == 202
    # What the delete job's last step does (no conductor runs here).
    with api.services.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == member["id"]).values(status="deleted", deleted_at=utcnow()))
    assert api.delete(f"/v2/share-groups/{group['id']}").status_code == 202
    assert_fault(api.get(f"/v2/share-groups/{group['id']}"), 404)
    assert api.delete(f"/v2/share-groups/{only_gold['id']}").status_code == 202


def test_group_that_no_pool_can_host_is_error_with_a_message(pools):
    api = pools
    nowhere = new_share_type(api, tier="platinum")
    group = new_group(api, new_group_type(api, [nowhere["id"]]))
    assert group["status"] == "error"
    messages = api.get("/v2/messages", params={"resource_id": group["id"]}).json["messages"]
    assert messages and messages[0]["resource_type"] == "SHARE_GROUP"
    # A share into a group in error: 400.
    assert_fault(api.post("/v2/shares", {"share": {"size": 1, "share_proto": "NFS", "share_type": nowhere["id"],
                                                   "share_group_id": group["id"]}}), 400)
    assert api.delete(f"/v2/share-groups/{group['id']}").status_code == 202


def test_group_create_errors(pools):
    api = pools
    st = new_share_type(api)
    other = new_share_type(api)
    gt = new_group_type(api, [st["id"]])
    create = lambda **g: api.post("/v2/share-groups", {"share_group": g})
    assert_fault(create(share_group_type_id=gt["id"], bogus=1), 400)
    assert_fault(create(share_group_type_id="not-a-uuid"), 400)
    assert_fault(create(share_group_type_id=str(uuid.uuid4())), 400)
    assert_fault(create(share_group_type_id=gt["id"], share_types=["x"]), 400)
    message = assert_fault(create(share_group_type_id=gt["id"], share_types=[other["id"]]), 400)
    assert "subset" in message
    assert_fault(create(share_group_type_id=gt["id"], share_network_id="nope"), 400)
    assert_fault(create(share_group_type_id=gt["id"], share_network_id=str(uuid.uuid4())), 400)
    assert_fault(create(share_group_type_id=gt["id"], availability_zone="nowhere"), 404)
    message = assert_fault(create(share_group_type_id=gt["id"], source_share_group_snapshot_id=str(uuid.uuid4())),
                           400)
    assert "not supported" in message
    assert_fault(create(share_group_type_id=gt["id"], share_types=[st["id"]],
                        source_share_group_snapshot_id=str(uuid.uuid4())), 400)
    assert_fault(api.post("/v2/share-groups", {"nope": {}}), 400)
    private = new_group_type(api, [st["id"]], is_public=False)
    assert_fault(create(share_group_type_id=private["id"]), 400)  # not visible to alice
    assert api.count(ShareGroup, share_group_type_id=gt["id"]) == 0


def test_group_list_show_update_and_admin_actions(pools):
    api = pools
    admin, alice, bob = api.tokens["admin"], api.tokens["alice"], api.tokens["bob"]
    gt = new_group_type(api, [new_share_type(api)["id"]])
    mine = new_group(api, gt, name=f"mine-{uuid.uuid4().hex[:6]}")
    theirs = new_group(api, gt, token=bob, name="theirs")
    summary = api.get("/v2/share-groups", token=alice).json["share_groups"]
    assert {"id": mine["id"], "name": mine["name"], "links": mine["links"]} in summary
    assert theirs["id"] not in [g["id"] for g in summary]
    assert_fault(api.get(f"/v2/share-groups/{theirs['id']}", token=alice), 404)
    detail = api.get("/v2/share-groups/detail", token=alice, params={"name": mine["name"]}).json["share_groups"]
    assert [g["id"] for g in detail] == [mine["id"]] and detail[0]["status"] == "available"
    assert "share_server_id" not in detail[0]
    assert api.get("/v2/share-groups/detail", token=alice, params={"status": "error", "name": mine["name"]}).json[
        "share_groups"] == []
    by_type = api.get("/v2/share-groups", token=alice, params={"group_type_id": gt["id"]}).json["share_groups"]
    assert [g["id"] for g in by_type] == [mine["id"]]
    everyone = api.get("/v2/share-groups/detail", token=admin, params={"all_tenants": "1",
                                                                       "share_group_type_id": gt["id"]})
    assert {mine["id"], theirs["id"]} == {g["id"] for g in everyone.json["share_groups"]}
    assert "share_server_id" in everyone.json["share_groups"][0]
    assert_fault(api.get("/v2/share-groups", params={"sort_key": "nope"}), 400)
    # Update: name and description only.
    path = f"/v2/share-groups/{mine['id']}"
    updated = api.put(path, {"share_group": {"name": "new", "description": "desc"}}).json["share_group"]
    assert updated["name"] == "new" and updated["description"] == "desc"
    assert_fault(api.put(path, {"share_group": {"status": "error"}}), 400)
    assert_fault(api.put(path, {"nope": {}}), 400)
    assert_fault(api.put(f"/v2/share-groups/{theirs['id']}", {"share_group": {"name": "x"}}), 404)
    # Admin actions.
    action = f"{path}/action"
    assert_fault(api.post(action, {"reset_status": {"status": "error"}}), 403)
    assert_fault(api.post(action, {"reset_status": {"status": "bogus"}}, token=admin), 400)
    assert api.post(action, {"reset_status": {"status": "deleting"}}, token=admin).status_code == 202
    assert api.get(path).json["share_group"]["status"] == "deleting"
    assert_fault(api.delete(path), 409)  # not available/error
    assert_fault(api.post(f"/v2/share-groups/{uuid.uuid4()}/action", {"force_delete": None}, token=admin), 404)
    assert_fault(api.post(action, {"force_delete": None}), 403)
    assert api.post(action, {"force_delete": None}, token=admin).status_code == 202
    assert_fault(api.get(path), 404)
    assert api.delete(f"/v2/share-groups/{theirs['id']}", token=bob).status_code == 202
    # Delete of the group type: refused while a group uses it, then allowed.
    in_use = new_group(api, gt)
    assert_fault(api.delete(f"/v2/share-group-types/{gt['id']}", token=admin), 400)
    api.delete(f"/v2/share-groups/{in_use['id']}")
    assert api.delete(f"/v2/share-group-types/{gt['id']}", token=admin).status_code == 204


# --- share group snapshots ------------------------------------------------------------------


def _group_with_members(api, count: int = 2) -> tuple[dict, list[dict]]:
    st = new_share_type(api)
    group = new_group(api, new_group_type(api, [st["id"]]))
    shares = [api.create_share(token=api.tokens["alice"], share_type=st["id"], share_group_id=group["id"])
              for _ in range(count)]
    for share in shares:
        api.set_share_status(share["id"], "available")
    return group, shares


def _set_group_snapshot_status(api, snapshot_id: str, status: str) -> None:
    with api.services.db.write() as s:
        s.execute(sa.update(ShareGroupSnapshot).where(ShareGroupSnapshot.id == snapshot_id).values(status=status))


def test_group_snapshot_create_takes_every_member_in_one_job(api):
    group, shares = _group_with_members(api)
    path = "/v2/share-group-snapshots"
    body = {"share_group_snapshot": {"share_group_id": group["id"], "name": "gs", "description": "d"}}
    assert_fault(api.post(path, body, version="2.30", headers=EXPERIMENTAL), 404)
    assert_fault(api.post(path, body, version="2.54"), 404)
    assert api.count(ShareGroupSnapshot, share_group_id=group["id"]) == 0
    result = api.post(path, body, version="2.31", headers=EXPERIMENTAL)
    assert result.status_code == 202, result.text
    snap = result.json["share_group_snapshot"]
    assert snap["status"] == "creating" and snap["share_group_id"] == group["id"] and snap["name"] == "gs"
    assert sorted(m["share_id"] for m in snap["members"]) == sorted(s["id"] for s in shares)
    assert all(m["size"] == 1 for m in snap["members"])
    # One job, on the group's backend, for all members.
    jobs = api.get("/v2/jobs", token=api.tokens["admin"], params={"resource_id": snap["id"]}).json["jobs"]
    assert [j["operation"] for j in jobs] == ["create_share_group_snapshot"]
    members = api.get(f"{path}/{snap['id']}/members").json["share_group_snapshot_members"]
    assert {m["share_id"] for m in members} == {s["id"] for s in shares}
    assert all(m["share_group_snapshot_id"] == snap["id"] and m["share_protocol"] == "NFS" for m in members)
    # While it exists: its shares and its group are not deleted.
    message = assert_fault(api.delete(f"/v2/shares/{shares[0]['id']}", params={"share_group_id": group["id"]}), 403)
    assert "share group snapshot members" in message
    assert_fault(api.delete(f"/v2/share-groups/{group['id']}"), 409)
    # Not deleted while creating.
    assert_fault(api.delete(f"{path}/{snap['id']}"), 409)


def test_group_snapshot_create_errors(api):
    group, shares = _group_with_members(api)
    path = "/v2/share-group-snapshots"
    assert_fault(api.post(path, {"share_group_snapshot": {}}), 400)
    assert_fault(api.post(path, {"share_group_snapshot": {"share_group_id": "nope"}}), 400)
    assert_fault(api.post(path, {"share_group_snapshot": {"share_group_id": str(uuid.uuid4())}}), 400)
    assert_fault(api.post(path, {"nope": {}}), 400)
    # Another project's group: not found (400, as Manila's ShareGroupNotFound here).
    assert_fault(api.post(path, {"share_group_snapshot": {"share_group_id": group["id"]}},
                          token=api.tokens["bob"]), 400)
    api.set_share_status(shares[1]["id"], "extending")
    message = assert_fault(api.post(path, {"share_group_snapshot": {"share_group_id": group["id"]}}), 409)
    assert shares[1]["id"] in message
    api.set_share_status(shares[1]["id"], "available")
    with api.services.db.write() as s:
        s.execute(sa.update(ShareGroup).where(ShareGroup.id == group["id"]).values(status="error"))
    assert_fault(api.post(path, {"share_group_snapshot": {"share_group_id": group["id"]}}), 409)
    assert api.count(ShareGroupSnapshot, share_group_id=group["id"]) == 0


def test_group_snapshot_list_show_update_delete_and_admin_actions(api):
    admin, alice, bob = api.tokens["admin"], api.tokens["alice"], api.tokens["bob"]
    group, _shares = _group_with_members(api, count=1)
    path = "/v2/share-group-snapshots"
    snap = api.post(path, {"share_group_snapshot": {"share_group_id": group["id"], "name": "one"}}).json[
        "share_group_snapshot"]
    item = f"{path}/{snap['id']}"
    assert {"id": snap["id"], "name": "one", "links": snap["links"]} in api.get(path).json["share_group_snapshots"]
    detail = api.get(f"{path}/detail", params={"share_group_id": group["id"]}).json["share_group_snapshots"]
    assert [s["id"] for s in detail] == [snap["id"]] and len(detail[0]["members"]) == 1
    assert api.get(f"{path}/detail", params={"status": "available", "share_group_id": group["id"]}).json[
        "share_group_snapshots"] == []
    assert snap["id"] not in [s["id"] for s in api.get(path, token=bob).json["share_group_snapshots"]]
    assert snap["id"] in [s["id"] for s in api.get(path, token=admin, params={"all_tenants": ""}).json[
        "share_group_snapshots"]]
    assert_fault(api.get(item, token=bob), 404)
    assert_fault(api.get(f"{path}/{uuid.uuid4()}"), 404)
    assert_fault(api.get(f"{path}/{uuid.uuid4()}/members"), 404)
    updated = api.put(item, {"share_group_snapshot": {"name": "two", "description": "x"}}).json
    assert updated["share_group_snapshot"]["name"] == "two"
    assert_fault(api.put(item, {"share_group_snapshot": {"status": "x"}}), 400)
    assert_fault(api.put(item, {"share_group_snapshot": {"name": "x"}}, token=bob), 404)
    # Admin reset_status; a member may not.
    assert_fault(api.post(f"{item}/action", {"reset_status": {"status": "available"}}), 403)
    assert_fault(api.post(f"{item}/action", {"reset_status": {"status": "bogus"}}, token=admin), 400)
    assert api.post(f"{item}/action", {"reset_status": {"status": "available"}}, token=admin).status_code == 202
    assert api.get(item).json["share_group_snapshot"]["status"] == "available"
    # Delete: one job for all members, the snapshot deleting until it runs.
    assert api.delete(item).status_code == 202
    assert api.get(item).json["share_group_snapshot"]["status"] == "deleting"
    jobs = api.get("/v2/jobs", token=admin, params={"resource_id": snap["id"]}).json["jobs"]
    assert sorted(j["operation"] for j in jobs) == ["create_share_group_snapshot", "delete_share_group_snapshot"]
    assert_fault(api.delete(item), 409)
    # force_delete: admins, from any status.
    assert_fault(api.post(f"{item}/action", {"force_delete": None}), 403)
    assert api.post(f"{item}/action", {"force_delete": None}, token=admin).status_code == 202
    jobs = api.get("/v2/jobs", token=admin, params={"resource_id": snap["id"]}).json["jobs"]
    assert len(jobs) == 3


def test_group_and_group_snapshot_lists_page_and_order(api):
    """limit, offset, sort_key and sort_dir on both lists (the page is cut
    after the filters), and a bad limit or sort key is a 400."""
    group, _shares = _group_with_members(api, count=1)
    names = ["b", "c", "a"]
    snaps = []
    for name in names:
        snap = api.post("/v2/share-group-snapshots", {"share_group_snapshot": {
            "share_group_id": group["id"], "name": name}}).json["share_group_snapshot"]
        _set_group_snapshot_status(api, snap["id"], "available")
        snaps.append(snap)
    path, key = "/v2/share-group-snapshots/detail", "share_group_snapshots"
    ours = {"share_group_id": group["id"], "sort_key": "name"}
    assert [s["name"] for s in api.get(path, params=ours).json[key]] == ["c", "b", "a"]
    page = api.get(path, params={**ours, "sort_dir": "asc", "limit": "2", "offset": "1"}).json[key]
    assert [s["name"] for s in page] == ["b", "c"]
    assert [s["name"] for s in api.get(path, params={**ours, "offset": "2"}).json[key]] == ["a"]
    assert_fault(api.get(path, params={**ours, "limit": "-1"}), 400)
    assert_fault(api.get(path, params={"sort_key": "size"}), 400)

    gt = new_group_type(api, [new_share_type(api)["id"]])
    for name in names:
        new_group(api, gt, name=name)
    path, key = "/v2/share-groups/detail", "share_groups"
    ours = {"share_group_type_id": gt["id"], "sort_key": "name", "sort_dir": "asc"}
    assert [g["name"] for g in api.get(path, params=ours).json[key]] == ["a", "b", "c"]
    page = api.get(path, params={**ours, "sort_dir": "desc", "limit": "1", "offset": "1"}).json[key]
    assert [g["name"] for g in page] == ["b"]
    assert_fault(api.get(path, params={**ours, "offset": "x"}), 400)


@pytest.mark.parametrize("kind", ["share-groups", "share-group-snapshots"])
def test_group_admin_actions_have_os_aliases_and_404_before_the_body(api, kind):
    admin = api.tokens["admin"]
    if kind == "share-groups":
        # No members: a group with shares is not force-deleted (409).
        group = new_group(api, new_group_type(api, [new_share_type(api)["id"]]))
        item, key = f"/v2/share-groups/{group['id']}", "share_group"
    else:
        group, _shares = _group_with_members(api, count=1)
        snap = api.post("/v2/share-group-snapshots", {"share_group_snapshot": {
            "share_group_id": group["id"]}}).json["share_group_snapshot"]
        item, key = f"/v2/share-group-snapshots/{snap['id']}", "share_group_snapshot"
    status = "error"
    missing = f"/v2/{kind}/{uuid.uuid4()}/action"
    # An unknown id is a 404 even with a body that would be a 400.
    for name in ("reset_status", "os-reset_status"):
        assert_fault(api.post(missing, {name: {"status": "bogus"}}, token=admin), 404)
        assert_fault(api.post(missing, {name: None}, token=admin), 404)
    assert_fault(api.post(missing, {"os-force_delete": None}, token=admin), 404)
    assert_fault(api.post(f"{item}/action", {"os-reset_status": None}, token=admin), 400)
    assert_fault(api.post(f"{item}/action", {"os-reset_status": {"status": status}}), 403)
    result = api.post(f"{item}/action", {"os-reset_status": {"status": status.upper()}}, token=admin)
    assert result.status_code == 202
    assert api.get(item).json[key]["status"] == status
    assert_fault(api.post(f"{item}/action", {"os-force_delete": None}), 403)
    assert api.post(f"{item}/action", {"os-force_delete": None}, token=admin).status_code == 202
    if kind == "share-groups":
        assert_fault(api.get(item), 404)
    else:
        # A forced delete of a group snapshot goes by a job; its records go even if the backend fails.
        jobs = api.get("/v2/jobs", token=admin, params={"resource_id": snap["id"]}).json["jobs"]
        assert "delete_share_group_snapshot" in [j["operation"] for j in jobs]
