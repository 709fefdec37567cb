"""Share types, complete (issue 10, item 4 and parts of 9): ``PUT /types/{id}``
(2.50), private types with project access lists, who sees and uses them,
extra spec values that are numbers or booleans, who reads extra specs, the
delete of a type only live shares keep, empty ids and trailing slashes, the
``availability_zones`` spec, the ``extra_specs`` filter on share lists, the
share ``reset_task_state`` action and ``/extensions`` - each with Manila's
codes at the microversion boundaries."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from shareflow.db.models import Share, ShareType, ShareTypeProject
from shareflow.wiring import utcnow
from tests.api.conftest import MAX, assert_fault

DHSS = "driver_handles_share_servers"
EXPERIMENTAL = {"X-OpenStack-Manila-API-Experimental": "True"}


def new_type(api, *, public: bool = True, **extra) -> dict:
    body = {"share_type": {"name": f"t-{uuid.uuid4().hex[:8]}", "extra_specs": {DHSS: False},
                           "share_type_access:is_public": public, **extra}}
    result = api.post("/v2/types", body, token=api.tokens["admin"])
    assert result.status_code == 200, result.text
    return result.json["share_type"]


def listed(api, token, **params) -> list[str]:
    return [t["id"] for t in api.get("/v2/types", token=token, params=params or None).json["share_types"]]


# --- PUT /types/{id} (2.50) ---------------------------------------------------------


def test_update_type_at_and_around_2_50(api):
    admin = api.tokens["admin"]
    stype = new_type(api, description="before")
    path = f"/v2/types/{stype['id']}"
    new_name = f"renamed-{uuid.uuid4().hex[:6]}"
    # One below: Manila has no update there (a bare 404), nothing changes.
    assert_fault(api.put(path, {"share_type": {"name": new_name}}, token=admin, version="2.49"), 404)
    assert api.count(ShareType, name=new_name) == 0

    updated = api.put(path, {"share_type": {"name": new_name}}, token=admin, version="2.50").json
    assert updated["share_type"]["name"] == new_name and updated["volume_type"] == updated["share_type"]
    assert updated["share_type"]["description"] == "before"
    # Above: the old alias of the body, a description, then visibility.
    result = api.put(path, {"volume_type": {"description": "after"}}, token=admin, version=MAX)
    assert result.json["share_type"]["description"] == "after" and result.json["share_type"]["name"] == new_name
    # "" clears the description (Manila's share_types.update).
    assert api.put(path, {"share_type": {"description": ""}}, token=admin).json["share_type"]["description"] is None
    hidden = api.put(path, {"share_type": {"share_type_access:is_public": False}}, token=admin).json
    assert hidden["share_type"]["share_type_access:is_public"] is False
    assert_fault(api.get(path), 404)  # a member no longer sees it
    shown = api.put(path, {"share_type": {"share_type_access:is_public": "true"}}, token=admin).json
    assert shown["share_type"]["share_type_access:is_public"] is True
    assert api.get(path).json["share_type"]["name"] == new_name


def test_update_type_errors(api):
    admin = api.tokens["admin"]
    stype, other = new_type(api), new_type(api)
    path = f"/v2/types/{stype['id']}"
    # Policy before the body, as Manila's decorator.
    assert_fault(api.put(path, {"share_type": {"name": "x"}}), 403, "forbidden")
    assert_fault(api.put(path, {"nonsense": 1}), 403, "forbidden")
    # A name another live type has: 409.
    assert_fault(api.put(path, {"share_type": {"name": other["name"]}}, token=admin), 409, "conflictingRequest")
    for bad in ({"share_type": {"name": ""}}, {"share_type": {"name": "   "}},
                {"share_type": {"name": "x" * 256}}, {"share_type": {"description": "d" * 256}},
                {"share_type": {"share_type_access:is_public": "not_bool"}},
                {"share_type": {}}, {"share_type": {"name": None, "description": None}},
                {"share_type": "x"}, {}):
        assert_fault(api.put(path, bad, token=admin), 400)
    assert api.get(path, token=admin).json["share_type"]["name"] == stype["name"]
    assert_fault(api.put("/v2/types/no-such-type", {"share_type": {"name": "y"}}, token=admin), 404)
    # Renaming a type to its own name is no conflict.
    assert api.put(path, {"share_type": {"name": stype["name"]}}, token=admin).status_code == 200


# --- private types and their access lists ----------------------------------------------


def test_project_access_lists(api):
    admin, alice, bob = api.tokens["admin"], api.tokens["alice"], api.tokens["bob"]
    private = new_type(api, public=False)
    tid = private["id"]
    access = f"/v2/types/{tid}/share_type_access"
    action = f"/v2/types/{tid}/action"
    assert api.get(access, token=admin).json == {"share_type_access": []}
    assert tid not in listed(api, alice) and tid not in listed(api, bob)

    assert api.post(action, {"addProjectAccess": {"project": "proj-a"}}, token=admin).status_code == 202
    assert api.get(access, token=admin).json == {
        "share_type_access": [{"share_type_id": tid, "project_id": "proj-a"}]}
    assert api.get(f"/v2/types/{tid}/os-share-type-access", token=admin).json["share_type_access"] == [{"share_type_id": tid, "project_id": "proj-a"}]
    # Now alice's project sees it (list and show), bob's does not.
    assert tid in listed(api, alice)
    assert api.get(f"/v2/types/{tid}", token=alice).json["share_type"]["id"] == tid
    assert tid not in listed(api, bob)
    assert_fault(api.get(f"/v2/types/{tid}", token=bob), 404)
    # Twice: 409; removing a project not on the list: 404.
    assert_fault(api.post(action, {"addProjectAccess": {"project": "proj-a"}}, token=admin), 409)
    assert_fault(api.post(action, {"removeProjectAccess": {"project": "proj-b"}}, token=admin), 404)

    assert api.post(action, {"removeProjectAccess": {"project": "proj-a"}}, token=admin).status_code == 202
    assert api.get(access, token=admin).json == {"share_type_access": []}
    assert tid not in listed(api, alice)
    assert_fault(api.get(f"/v2/types/{tid}", token=alice), 404)
    assert_fault(api.post(action, {"removeProjectAccess": {"project": "proj-a"}}, token=admin), 404)
    assert api.count(ShareTypeProject, share_type_id=tid) == 0


def test_project_access_errors(api):
    admin = api.tokens["admin"]
    private, public = new_type(api, public=False), new_type(api)
    for name in ("addProjectAccess", "removeProjectAccess"):
        body = {name: {"project": "proj-a"}}
        # Members: 403 before anything else; public types: 409; unknown: 404.
        assert_fault(api.post(f"/v2/types/{private['id']}/action", body), 403, "forbidden")
        assert_fault(api.post(f"/v2/types/{private['id']}/action", {name: "x"}), 403, "forbidden")
        assert_fault(api.post(f"/v2/types/{public['id']}/action", body, token=admin), 409)
        assert_fault(api.post("/v2/types/no-such-type/action", body, token=admin), 404)
        for bad in ({name: {}}, {name: {"project": ""}}, {name: {"project": 5}},
                    {name: {"project": "has space"}}, {name: "proj-a"}, {name: None}):
            assert_fault(api.post(f"/v2/types/{private['id']}/action", bad, token=admin), 400)
    assert api.count(ShareTypeProject, share_type_id=private["id"]) == 0
    assert_fault(api.get(f"/v2/types/{private['id']}/share_type_access"), 403, "forbidden")
    assert_fault(api.get("/v2/types/no-such-type/share_type_access", token=api.tokens["admin"]), 404)


def test_admin_visibility_filters(api):
    admin = api.tokens["admin"]
    private, public = new_type(api, public=False), new_type(api)
    granted = new_type(api, public=False)
    api.post(f"/v2/types/{granted['id']}/action", {"addProjectAccess": {"project": "adminproj"}}, token=admin)
    default = listed(api, admin)
    # Manila's is_public default for admins: public, and private ones their project may use.
    assert public["id"] in default and granted["id"] in default and private["id"] not in default
    only_private = listed(api, admin, is_public="false")
    assert private["id"] in only_private and granted["id"] in only_private and public["id"] not in only_private
    assert {private["id"], public["id"], granted["id"]} <= set(listed(api, admin, is_public="all"))
    # A member's is_public is ignored: public and granted ones only.
    assert private["id"] not in listed(api, api.tokens["alice"], is_public="all")
    assert api.get(f"/v2/types/{private['id']}", token=admin).status_code == 200


def test_private_type_cannot_be_used_without_access(api):
    admin, alice, bob = api.tokens["admin"], api.tokens["alice"], api.tokens["bob"]
    private = new_type(api, public=False)
    api.post(f"/v2/types/{private['id']}/action", {"addProjectAccess": {"project": "proj-a"}}, token=admin)
    before = api.count(Share)
    for ref in (private["name"], private["id"]):
        body = {"share": {"size": 1, "share_proto": "NFS", "share_type": ref}}
        message = assert_fault(api.post("/v2/shares", body, token=bob), 404, "itemNotFound")
        assert "could not be found" in message
    assert api.count(Share) == before
    assert api.create_share(token=alice, share_type=private["name"])["share_type"] == private["id"]
    assert api.create_share(token=admin, share_type=private["id"])["share_type"] == private["id"]


# --- extra specs: values, who reads them ---------------------------------------------------


def test_numbers_and_booleans_in_specs(api):
    admin = api.tokens["admin"]
    # A type's create stores numbers and booleans as strings (Manila's _metadata_refs).
    stype = new_type(api, extra_specs={DHSS: False, "snapshot_support": True, "max_files": 5, "ratio": 1.5})
    assert stype["extra_specs"] == {DHSS: "False", "snapshot_support": "True", "max_files": "5", "ratio": "1.5"}
    path = f"/v2/types/{stype['id']}/extra_specs"
    # The extra-specs routes take booleans, not numbers (Manila's _verify_extra_specs).
    assert api.post(path, {"extra_specs": {"mount_snapshot_support": True}}, token=admin).json == {
        "extra_specs": {"mount_snapshot_support": True}}
    assert api.put(f"{path}/revert_to_snapshot_support", {"revert_to_snapshot_support": False},
                   token=admin).json == {"revert_to_snapshot_support": False}
    assert_fault(api.post(path, {"extra_specs": {"count": 5}}, token=admin), 400)
    assert_fault(api.put(f"{path}/count", {"count": 5}, token=admin), 400)
    specs = api.get(path, token=admin).json["extra_specs"]
    assert specs["mount_snapshot_support"] == "True" and specs["revert_to_snapshot_support"] == "False"
    assert "count" not in specs
    for bad in ({"k": None}, {"k": [1]}, {"k": {"n": 1}}, {"k": float("inf")}):
        body = {"share_type": {"name": f"bad-{uuid.uuid4().hex[:6]}", "extra_specs": {DHSS: False, **bad}}}
        assert_fault(api.post("/v2/types", body, token=admin), 400)


def test_members_read_specs_only_in_the_type(api):
    stype = new_type(api, extra_specs={DHSS: False, "snapshot_support": True, "tier": "gold",
                                       "capabilities:thin": "<is> True"})
    path = f"/v2/types/{stype['id']}/extra_specs"
    # Manila's share_types_extra_spec policies are admin-only, reads too.
    assert_fault(api.get(path), 403, "forbidden")
    assert_fault(api.get(f"{path}/tier"), 403, "forbidden")
    assert_fault(api.get(f"{path}/{DHSS}"), 403, "forbidden")
    # In the type a member sees the tenant-visible specs only.
    seen = api.get(f"/v2/types/{stype['id']}").json["share_type"]["extra_specs"]
    assert "tier" not in seen and "capabilities:thin" not in seen
    assert seen[DHSS] == "False" and seen["snapshot_support"] == "True"
    admin_view = api.get(f"/v2/types/{stype['id']}", token=api.tokens["admin"]).json["share_type"]
    assert admin_view["extra_specs"]["tier"] == "gold"


def test_type_delete_refused_only_while_live_shares_use_it(api):
    admin = api.tokens["admin"]
    stype = new_type(api)
    share = api.create_share(token=api.tokens["alice"], share_type=stype["name"])
    message = assert_fault(api.delete(f"/v2/types/{stype['id']}", token=admin), 400)
    assert "not allowed with shares present" in message
    with api.services.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == share["id"]).values(status="deleted", deleted_at=utcnow()))
    assert api.delete(f"/v2/types/{stype['id']}", token=admin).status_code == 202
    assert_fault(api.get(f"/v2/types/{stype['id']}", token=admin), 404)


# --- empty ids and trailing slashes ------------------------------------------------------


def test_empty_ids_and_trailing_slashes_are_404(api):
    admin = api.tokens["admin"]
    stype = new_type(api)
    tid = stype["id"]
    body = {"share_type": {"name": f"slash-{uuid.uuid4().hex[:6]}", "extra_specs": {DHSS: False}}}
    assert_fault(api.get("/v2/types/", token=admin), 404)
    assert_fault(api.post("/v2/types/", body, token=admin), 404)
    assert api.count(ShareType, name=body["share_type"]["name"]) == 0
    assert_fault(api.get(f"/v2/types/{tid}/", token=admin), 404)
    assert_fault(api.delete(f"/v2/types/{tid}/", token=admin), 404)
    for method, path, payload in (
        ("GET", "/v2/types//extra_specs", None),
        ("POST", "/v2/types//extra_specs", {"extra_specs": {"key1": "value1"}}),
        ("DELETE", "/v2/types//extra_specs/key", None),
        ("PUT", "/v2/types//extra_specs/key", {"key": "v"}),
        ("GET", f"/v2/types/{tid}/extra_specs/", None),
        ("PUT", f"/v2/types/{tid}/extra_specs/", {"key": "v"}),
        ("DELETE", f"/v2/types/{tid}/extra_specs/", None),
        ("POST", f"/v2/types/{tid}/extra_specs/", {"extra_specs": {"key1": "value1"}}),
        ("GET", "/v2/types//share_type_access", None),
        ("POST", "/v2/types//action", {"addProjectAccess": {"project": "proj-a"}}),
        ("DELETE", "/v2/types/", None),
    ):
        kwargs = {"json_body": payload} if payload is not None else {}
        assert_fault(api.request(method, path, token=admin, **kwargs), 404)
    assert api.get(f"/v2/types/{tid}/extra_specs", token=admin).json == {"extra_specs": {DHSS: "False"}}
    assert tid in listed(api, admin)  # the collection is still the collection


# --- availability zones on a share type ------------------------------------------------------


def test_availability_zones_spec(api):
    admin, alice = api.tokens["admin"], api.tokens["alice"]
    for bad in ("az1,     az2, az 3,  ", "az1,,az 3", ",az2,  az 3"):
        body = {"share_type": {"name": f"az-{uuid.uuid4().hex[:6]}",
                               "extra_specs": {DHSS: False, "availability_zones": bad}}}
        assert_fault(api.post("/v2/types", body, token=admin), 400)
    zoned = new_type(api, extra_specs={DHSS: False, "availability_zones": "nova,   az2"})
    assert zoned["extra_specs"]["availability_zones"] == "nova,az2"
    elsewhere = new_type(api, extra_specs={DHSS: False, "availability_zones": "az2, az 3"})
    assert_fault(api.post(f"/v2/types/{elsewhere['id']}/extra_specs",
                          {"extra_specs": {"availability_zones": "az2,"}}, token=admin), 400)
    anywhere = new_type(api)

    # The type list's filter: every zone asked for among the type's, or no zones at all.
    found = listed(api, admin, is_public="all", extra_specs="{'availability_zones': 'az2'}")
    assert {zoned["id"], elsewhere["id"], anywhere["id"]} <= set(found)
    found = listed(api, admin, is_public="all", extra_specs="{'availability_zones': 'nova'}")
    assert zoned["id"] in found and anywhere["id"] in found and elsewhere["id"] not in found

    # A share in a zone its type does not list: 400 from 2.48, not before.
    body = {"share": {"size": 1, "share_proto": "NFS", "share_type": elsewhere["name"],
                      "availability_zone": "nova"}}
    before = api.count(Share)
    message = assert_fault(api.post("/v2/shares", body, token=alice, version="2.48"), 400)
    assert "not supported within the availability zone chosen nova" in message
    assert_fault(api.post("/v2/shares", body, token=alice), 400)
    assert api.count(Share) == before
    assert api.post("/v2/shares", body, token=alice, version="2.47").status_code == 200
    # Listed zone, or no zone asked: accepted.
    body["share"]["share_type"] = zoned["name"]
    assert api.post("/v2/shares", body, token=alice).json["share"]["availability_zone"] == "nova"
    body["share"].update(share_type=elsewhere["name"], availability_zone=None)
    assert api.post("/v2/shares", body, token=alice).status_code == 200
    # An unknown zone stays Manila's 404.
    body["share"]["availability_zone"] = "az-nowhere"
    assert_fault(api.post("/v2/shares", body, token=alice), 404)


# --- GET /shares?extra_specs= --------------------------------------------------------------


def test_share_list_extra_specs_filter(api):
    admin, alice = api.tokens["admin"], api.tokens["alice"]
    tag = uuid.uuid4().hex[:8]
    gold = new_type(api, extra_specs={DHSS: False, "tier": f"gold-{tag}", "snapshot_support": True})
    plain = new_type(api, extra_specs={DHSS: False, "tier": f"plain-{tag}"})
    in_gold = api.create_share(token=alice, share_type=gold["name"])
    in_plain = api.create_share(token=alice, share_type=plain["name"])
    for route in ("/v2/shares", "/v2/shares/detail"):
        for version in ("2.0", MAX):
            params = {"all_tenants": "1", "extra_specs": f"{{'tier': 'gold-{tag}'}}"}
            ids = [s["id"] for s in api.get(route, token=admin, params=params, version=version).json["shares"]]
            assert ids == [in_gold["id"]]
        # Every pair must match (booleans normalised as stored).
        params = {"all_tenants": "1", "extra_specs": f"{{'tier': 'gold-{tag}', 'snapshot_support': 'true'}}"}
        assert [s["id"] for s in api.get(route, token=admin, params=params).json["shares"]] == [in_gold["id"]]
        params = {"all_tenants": "1", "extra_specs": f"{{'tier': 'plain-{tag}', 'snapshot_support': 'true'}}"}
        assert api.get(route, token=admin, params=params).json["shares"] == []
        # Members: Manila's share_types_extra_spec:index policy.
        assert_fault(api.get(route, token=alice, params={"extra_specs": f"{{'tier': 'plain-{tag}'}}"}),
                     403, "forbidden")
        assert_fault(api.get(route, token=admin, params={"extra_specs": "tier"}), 400)
    assert in_plain["id"] in [s["id"] for s in api.get("/v2/shares", token=alice).json["shares"]]


# --- POST /shares/{id}/action reset_task_state ---------------------------------------------


def test_reset_task_state(api):
    admin = api.tokens["admin"]
    share = api.create_share(token=api.tokens["alice"])
    path = f"/v2/shares/{share['id']}/action"
    body = {"reset_task_state": {"task_state": "migration_error"}}
    # One below 2.22: 404; at 2.22 without the experimental header: 404 too.
    assert_fault(api.post(path, body, token=admin, version="2.21", headers=EXPERIMENTAL), 404)
    assert_fault(api.post(path, body, token=admin, version="2.22"), 404)
    assert_fault(api.post(path, body, version="2.22", headers=EXPERIMENTAL), 403, "forbidden")
    assert_fault(api.post(path, {"reset_task_state": {"task_state": "fake_state"}}, token=admin,
                          headers=EXPERIMENTAL), 400)
    assert assert_fault(api.post(path, {"reset_task_state": {}}, token=admin, headers=EXPERIMENTAL),
                        400) == "Must specify 'task_state'"
    assert_fault(api.post(path, {"reset_task_state": "x"}, token=admin, headers=EXPERIMENTAL), 400)
    assert_fault(api.post("/v2/shares/fake_share/action", body, token=admin, headers=EXPERIMENTAL), 404)
    assert api.share_row(share["id"]).task_state is None

    for version, state in (("2.22", "migration_error"), (MAX, "data_copying_completed"), (MAX, None)):
        result = api.post(path, {"reset_task_state": {"task_state": state}}, token=admin, version=version,
                          headers=EXPERIMENTAL)
        assert result.status_code == 202 and result.text == ""
        assert result.headers["X-OpenStack-Manila-API-Experimental"] == "True"
        assert api.share_row(share["id"]).task_state == state
        assert api.get(f"/v2/shares/{share['id']}", token=admin).json["share"]["task_state"] == state


# --- /extensions ----------------------------------------------------------------------------


def test_extensions(api):
    listing = api.get("/v2/extensions").json
    assert set(listing) == {"extensions"}
    aliases = [e["alias"] for e in listing["extensions"]]
    assert aliases == ["shareflow-jobs", "shareflow-provider-networks"]
    for ext in listing["extensions"]:
        assert set(ext) == {"name", "alias", "description", "updated", "links"} and ext["links"] == []
        assert api.get(f"/v2/extensions/{ext['alias']}").json == {"extension": ext}
    assert api.get("/v2/proj-a/extensions").json == listing
    assert_fault(api.get("/v2/extensions/os-share-unmanage"), 404)
    assert_fault(api.post("/v2/extensions", {"extension": {}}, token=api.tokens["admin"]), 405)
    assert_fault(api.delete("/v2/extensions/shareflow-jobs", token=api.tokens["admin"]), 405)
    assert_fault(api.get("/v2/extensions", token=None), 401)
