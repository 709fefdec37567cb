"""``/types``: CRUD (admin writes), default, extra specs, project access lists."""

from __future__ import annotations

import uuid

import pytest

from shareflow.db.models import ShareType
from tests.api.conftest import assert_fault

DHSS = "driver_handles_share_servers"


def new_type(api, **extra) -> dict:
    body = {"share_type": {"name": f"t-{uuid.uuid4().hex[:8]}", "extra_specs": {DHSS: False}, **extra}}
    result = api.post("/v2/types", body, token=api.tokens["admin"])
    assert result.status_code == 200, result.text
    return result.json["share_type"]


def test_create_show_list_delete(api):
    admin = api.tokens["admin"]
    created = new_type(api, description="gold", **{"share_type_access:is_public": True})
    assert created["extra_specs"] == {DHSS: "False"}
    assert created["required_extra_specs"] == {DHSS: "False"}
    assert created["share_type_access:is_public"] is True and created["description"] == "gold"
    assert created["is_default"] is False

    shown = api.get(f"/v2/types/{created['id']}").json
    assert shown["share_type"]["name"] == created["name"] and shown["volume_type"] == shown["share_type"]
    # Members get Manila's inferred optional specs.
    assert shown["share_type"]["extra_specs"]["snapshot_support"] is False
    listed = api.get("/v2/types").json
    assert created["id"] in [t["id"] for t in listed["share_types"]]
    assert listed["volume_types"] == listed["share_types"]

    result = api.delete(f"/v2/types/{created['id']}", token=admin)
    assert result.status_code == 202
    assert_fault(api.get(f"/v2/types/{created['id']}"), 404)
    assert_fault(api.delete(f"/v2/types/{created['id']}", token=admin), 404)


def test_default_type(api):
    default = api.get("/v2/types/default").json["share_type"]
    assert default["name"] == "default" and default["is_default"] is True
    assert api.get("/v2/types/default", version="2.45").json["share_type"].get("is_default") is None


def test_members_may_not_write(api):
    existing = new_type(api)
    body = {"share_type": {"name": "nope", "extra_specs": {DHSS: False}}}
    for result in (
        api.post("/v2/types", body),
        api.post("/v2/types", {"garbage": True}),  # policy before body, as Manila
        api.delete(f"/v2/types/{existing['id']}"),
        api.post(f"/v2/types/{existing['id']}/extra_specs", {"extra_specs": {"a": "b"}}),
        api.put(f"/v2/types/{existing['id']}/extra_specs/a", {"a": "b"}),
        api.delete(f"/v2/types/{existing['id']}/extra_specs/{DHSS}"),
        api.get(f"/v2/types/{existing['id']}/share_type_access"),
    ):
        assert_fault(result, 403, "forbidden")
    assert api.count(ShareType, name="nope") == 0


@pytest.mark.parametrize("body", [
    {"share_type": {"name": "x"}},  # required spec missing
    {"share_type": {"name": "x", "extra_specs": {DHSS: "maybe"}}},
    {"share_type": {"name": "", "extra_specs": {DHSS: False}}},
    {"share_type": {"name": None, "extra_specs": {DHSS: False}}},
    {"share_type": {"name": "x" * 300, "extra_specs": {DHSS: False}}},
    {"share_type": {"name": "x", "extra_specs": [DHSS]}},
    {"share_type": {"name": "x", "extra_specs": {DHSS: False, "k": {"nested": 1}}}},
    {"share_type": {"name": "x", "extra_specs": {DHSS: False}, "share_type_access:is_public": "sure"}},
    {"share_type": "x"},
    {},
])
def test_bad_type_bodies_are_400(api, body):
    before = api.count(ShareType)
    assert_fault(api.post("/v2/types", body, token=api.tokens["admin"]), 400)
    assert api.count(ShareType) == before


def test_duplicate_name_is_409(api):
    existing = new_type(api)
    body = {"share_type": {"name": existing["name"], "extra_specs": {DHSS: False}}}
    assert_fault(api.post("/v2/types", body, token=api.tokens["admin"]), 409, "conflictingRequest")


def test_description_needs_2_41_and_snapshot_support_defaults_before_2_24(api):
    body = {"share_type": {"name": "old-style", "extra_specs": {DHSS: False}, "description": "d"}}
    assert_fault(api.post("/v2/types", body, token=api.tokens["admin"], version="2.40"), 400)
    body["share_type"].pop("description")
    body["volume_type"] = body.pop("share_type")
    old = api.post("/v2/types", body, token=api.tokens["admin"], version="2.23").json["share_type"]
    assert old["extra_specs"]["snapshot_support"] == "True"
    assert "description" not in old


def test_private_types_and_access_lists(api):
    admin = api.tokens["admin"]
    private = new_type(api, **{"share_type_access:is_public": False})
    public = new_type(api)
    assert_fault(api.get(f"/v2/types/{private['id']}"), 404)
    assert private["id"] not in [t["id"] for t in api.get("/v2/types").json["share_types"]]
    # Admins see only public types unless they ask, as in Manila.
    assert private["id"] not in [t["id"] for t in api.get("/v2/types", token=admin).json["share_types"]]
    everything = api.get("/v2/types", token=admin, params={"is_public": "all"}).json["share_types"]
    assert private["id"] in [t["id"] for t in everything]
    assert_fault(api.get("/v2/types", token=admin, params={"is_public": "perhaps"}), 400)

    for name in ("share_type_access", "os-share-type-access"):
        assert api.get(f"/v2/types/{private['id']}/{name}", token=admin).json == {"share_type_access": []}
        assert_fault(api.get(f"/v2/types/{public['id']}/{name}", token=admin), 404)
    action = {"addProjectAccess": {"project": "proj-a"}}
    assert_fault(api.post(f"/v2/types/{public['id']}/action", action, token=admin), 409)
    assert_fault(api.post(f"/v2/types/{private['id']}/action", {"fly": {}}, token=admin), 400)


def test_extra_specs(api):
    admin = api.tokens["admin"]
    stype = new_type(api)
    path = f"/v2/types/{stype['id']}/extra_specs"
    assert api.get(path, token=admin).json == {"extra_specs": {DHSS: "False"}}

    # Manila echoes the body: a JSON boolean stays one; it is stored as 'True'.
    result = api.post(path, {"extra_specs": {"snapshot_support": True, "color": "blue"}}, token=admin)
    assert result.json == {"extra_specs": {"snapshot_support": True, "color": "blue"}}
    assert api.get(path, token=admin).json["extra_specs"] == {
        DHSS: "False", "snapshot_support": "True", "color": "blue"}
    assert api.get(f"{path}/color", token=admin).json == {"color": "blue"}
    assert_fault(api.get(f"{path}/nope", token=admin), 404)

    assert api.put(f"{path}/color", {"color": "red"}, token=admin).json == {"color": "red"}
    assert_fault(api.put(f"{path}/color", {"other": "red"}, token=admin), 400)
    assert_fault(api.put(f"{path}/color", {"color": "red", "x": "y"}, token=admin), 400)
    assert_fault(api.put(f"{path}/color", {}, token=admin), 400)

    assert api.delete(f"{path}/color", token=admin).status_code == 202
    assert_fault(api.delete(f"{path}/color", token=admin), 404)
    assert_fault(api.delete(f"{path}/{DHSS}", token=admin), 403)
    assert_fault(api.delete(f"{path}/snapshot_support", token=admin, version="2.23"), 403)

    for bad in ({"extra_specs": {"bad key!": "x"}}, {"extra_specs": {}}, {"extra_specs": "x"},
                {"extra_specs": {DHSS: "maybe"}}, {"extra_specs": {"k": 5}}):
        assert_fault(api.post(path, bad, token=admin), 400)
    assert_fault(api.get("/v2/types/no-such-type/extra_specs", token=admin), 404)


def test_type_in_use_cannot_be_deleted(api):
    admin = api.tokens["admin"]
    stype = new_type(api)
    api.create_share(token=api.tokens["alice"], share_type=stype["name"])
    assert_fault(api.delete(f"/v2/types/{stype['id']}", token=admin), 400)
    changed = api.post(f"/v2/types/{stype['id']}/extra_specs", {"extra_specs": {DHSS: True}}, token=admin)
    assert_fault(changed, 409)


def test_extra_specs_filter_needs_2_43(api):
    stype = new_type(api)
    api.post(f"/v2/types/{stype['id']}/extra_specs", {"extra_specs": {"tier": "gold"}},
             token=api.tokens["admin"])
    found = api.get("/v2/types", params={"extra_specs": "{'tier': 'gold'}"}).json["share_types"]
    assert [t["id"] for t in found] == [stype["id"]]
    assert_fault(api.get("/v2/types", params={"extra_specs": "{'tier': 'gold'}"}, version="2.42"), 400)
    assert_fault(api.get("/v2/types", params={"extra_specs": "tier"}), 400)
