"""``/shares``: create, list, show, update, delete; project isolation; export locations."""

from __future__ import annotations

import pytest

from shareflow.db.models import Job, Share
from tests.api.conftest import assert_fault


def test_create_returns_the_share_creating_with_manilas_fields_at_2_65(api):
    result = api.post("/v2/shares", {"share": {"size": 2, "share_proto": "nfs", "name": "data",
                                              "description": "d", "metadata": {"k": "v"}}})
    assert result.status_code == 200
    share = result.json["share"]
    assert share["status"] == "creating" and share["size"] == 2 and share["share_proto"] == "NFS"
    assert share["name"] == "data" and share["description"] == "d" and share["metadata"] == {"k": "v"}
    assert share["project_id"] == "proj-a" and share["user_id"] == "alice"
    assert share["share_type_name"] == "default" and share["is_public"] is False
    assert share["access_rules_status"] == "active" and share["progress"] == "0%"
    assert "export_locations" not in share and "host" not in share
    # The job waits on the board for a conductor.
    assert api.count(Job, resource_id=share["id"]) == 1


def test_create_at_2_0_has_the_old_shape(api):
    result = api.post("/v2/shares", {"share": {"size": 1, "share_proto": "NFS",
                                              "display_name": "old", "display_description": "od"}},
                      version=None)
    share = result.json["share"]
    assert share["name"] == "old" and share["description"] == "od"
    assert share["share_type"] == "default" and share["volume_type"] == "default"
    assert share["export_location"] is None and share["export_locations"] == []
    for newer in ("share_type_name", "access_rules_status", "user_id", "snapshot_support", "progress"):
        assert newer not in share


@pytest.mark.parametrize("size", [0, -1, "x", None, 1.5, True, [], {}, 10 ** 30, "1e3"])
def test_bad_size_is_400_and_creates_nothing(api, size):
    before = api.count(Share)
    body = {"share": {"share_proto": "NFS", "size": size}}
    assert_fault(api.post("/v2/shares", body), 400)
    assert api.count(Share) == before


@pytest.mark.parametrize("proto", ["NFSX", "", None, 7, "CIFS", "cephfs"])
def test_bad_protocol_is_400(api, proto):
    before = api.count(Share)
    assert_fault(api.post("/v2/shares", {"share": {"size": 1, "share_proto": proto}}), 400)
    assert api.count(Share) == before


def test_unknown_share_type_is_404(api):
    message = assert_fault(api.post("/v2/shares", {"share": {"size": 1, "share_proto": "NFS",
                                                             "share_type": "nope"}}), 404)
    assert "nope" in message


def test_both_share_type_and_volume_type_is_400(api):
    assert_fault(api.post("/v2/shares", {"share": {"size": 1, "share_proto": "NFS",
                                                   "share_type": "default", "volume_type": "default"}}), 400)


def test_public_shares_are_for_admins(api):
    body = {"share": {"size": 1, "share_proto": "NFS", "is_public": True}}
    message = assert_fault(api.post("/v2/shares", body), 403, "forbidden")
    assert "is_public" in message
    assert_fault(api.post("/v2/shares", {"share": {"size": 1, "share_proto": "NFS", "is_public": "maybe"}}), 400)
    created = api.post("/v2/shares", body, token=api.tokens["admin"]).json["share"]
    assert created["is_public"] is True
    # Not writable by other projects even though they can see it (Manila's owner policy).
    assert api.get(f"/v2/shares/{created['id']}").status_code == 200
    assert_fault(api.put(f"/v2/shares/{created['id']}", {"share": {"name": "mine"}}), 403)


def test_list_detail_show_update(api):
    share = api.create_share(token=api.tokens["alice"], description="first")
    listed = api.get("/v2/shares").json["shares"]
    entry = next(s for s in listed if s["id"] == share["id"])
    assert set(entry) == {"id", "name", "links"}
    detailed = api.get("/v2/shares/detail").json["shares"]
    assert next(s for s in detailed if s["id"] == share["id"])["description"] == "first"
    assert api.get(f"/v2/shares/{share['id']}").json["share"]["id"] == share["id"]

    updated = api.put(f"/v2/shares/{share['id']}", {"share": {"display_name": "renamed",
                                                              "description": "second", "ignored": 1}})
    assert updated.status_code == 200
    assert updated.json["share"]["name"] == "renamed" and updated.json["share"]["description"] == "second"
    assert api.get(f"/v2/shares/{share['id']}").json["share"]["name"] == "renamed"
    assert_fault(api.put(f"/v2/shares/{share['id']}", {"share": {"name": 5}}), 400)
    assert_fault(api.put(f"/v2/shares/{share['id']}", {"share": {"is_public": True}}), 403)
    assert_fault(api.put(f"/v2/shares/{share['id']}", {"nope": {}}), 422)  # webob's bare 422, as Manila


def test_delete_of_a_creating_share_is_403_and_of_an_available_one_202(api):
    share = api.create_share(token=api.tokens["alice"])
    message = assert_fault(api.delete(f"/v2/shares/{share['id']}"), 403, "forbidden")
    assert "creating" in message
    assert api.share_row(share["id"]).status == "creating"
    api.set_share_status(share["id"], "available")
    result = api.delete(f"/v2/shares/{share['id']}")
    assert result.status_code == 202 and result.text == ""
    assert api.get(f"/v2/shares/{share['id']}").json["share"]["status"] == "deleting"


def test_another_projects_share_does_not_exist_for_the_caller(api):
    share = api.create_share(token=api.tokens["bob"])
    api.set_share_status(share["id"], "available")
    path = f"/v2/shares/{share['id']}"
    assert_fault(api.get(path), 404, "itemNotFound")
    assert_fault(api.put(path, {"share": {"name": "x"}}), 404)
    assert_fault(api.delete(path), 404)
    assert_fault(api.post(path + "/action", {"allow_access": {"access_type": "ip", "access_to": "10.0.0.1"}}), 404)
    assert_fault(api.get(path + "/export_locations"), 404)
    assert share["id"] not in [s["id"] for s in api.get("/v2/shares").json["shares"]]
    assert api.share_row(share["id"]).status == "available"

    # The admin sees it, with its host, but lists other projects only with all_tenants.
    admin = api.tokens["admin"]
    seen = api.get(path, token=admin).json["share"]
    assert seen["project_id"] == "proj-b" and seen["host"] == "testhost@b1#pool0"
    assert share["id"] not in [s["id"] for s in api.get("/v2/shares", token=admin).json["shares"]]
    for flag in ("", "1", "true"):
        everyone = api.get("/v2/shares", token=admin, params={"all_tenants": flag}).json["shares"]
        assert share["id"] in [s["id"] for s in everyone]
    # A member asking for all tenants still sees only their project.
    mine = api.get("/v2/shares", params={"all_tenants": "1"}).json["shares"]
    assert share["id"] not in [s["id"] for s in mine]


def test_list_filters_sorting_and_paging(api):
    token = api.tokens["bob"]
    made = [api.create_share(token=token, size=i + 1, name=f"pager-{i}", description=f"desc-{i}")
            for i in range(3)]
    api.set_share_status(made[0]["id"], "available")

    def names(**params):
        result = api.get("/v2/shares/detail", token=token, params=params)
        assert result.status_code == 200, result.text
        return [s["name"] for s in result.json["shares"] if s["name"] and s["name"].startswith("pager-")]

    assert names(sort_key="size", sort_dir="asc") == ["pager-0", "pager-1", "pager-2"]
    assert names(sort_key="name", sort_dir="desc") == ["pager-2", "pager-1", "pager-0"]
    assert names(name="pager-1") == ["pager-1"]
    assert names(status="available") == ["pager-0"]
    assert names(**{"name~": "ger-2"}) == ["pager-2"]
    assert names(**{"description~": "sc-1"}) == ["pager-1"]
    share_type_id = made[0]["share_type"]
    assert len(names(share_type_id=share_type_id)) == 3
    page = {"name~": "pager-", "sort_key": "size", "sort_dir": "asc", "limit": "2", "offset": "1"}
    assert names(**page) == ["pager-1", "pager-2"]
    counted = api.get("/v2/shares", token=token, params={"with_count": "true", "limit": "1"}).json
    assert counted["count"] >= 3 and len(counted["shares"]) == 1
    assert names(metadata="{'no': 'such'}") == []


@pytest.mark.parametrize("params", [
    {"limit": "x"}, {"limit": "-1"}, {"offset": "-3"}, {"offset": "abc"}, {"sort_key": "nope"},
    {"sort_key": "__table__"}, {"sort_dir": "up"}, {"all_tenants": "perhaps"},
    {"metadata": "{{"}, {"metadata": "[1, 2]"}, {"is_public": "sometimes"}, {"with_count": "7"},
    {"name": "x" * 300},
])
def test_bad_list_parameters_are_400(api, params):
    assert_fault(api.get("/v2/shares/detail", params=params), 400)


def test_host_filter_is_admin_only(api):
    assert_fault(api.get("/v2/shares", params={"host": "testhost@b1#pool0"}), 403)
    assert api.get("/v2/shares", token=api.tokens["admin"], params={"host": "x"}).json["shares"] == []


def test_name_like_filters_are_ignored_before_2_36(api):
    everything = api.get("/v2/shares", version="2.35").json["shares"]
    assert api.get("/v2/shares", version="2.35", params={"name~": "zzz-none"}).json["shares"] == everything


def test_export_locations(api):
    share = api.create_share(token=api.tokens["alice"])
    el_id = api.add_export_location(share["id"], "10.0.0.5:/shares/x")
    admin_el = api.add_export_location(share["id"], "192.168.0.5:/shares/x", admin_only=True)
    path = f"/v2/shares/{share['id']}/export_locations"

    listed = api.get(path).json["export_locations"]
    assert listed == [{"id": el_id, "path": "10.0.0.5:/shares/x", "preferred": True}]
    shown = api.get(f"{path}/{el_id}").json["export_location"]
    assert shown["path"] == "10.0.0.5:/shares/x" and "created_at" in shown
    assert_fault(api.get(f"{path}/{admin_el}"), 403)
    assert_fault(api.get(f"{path}/no-such-location"), 404)
    admin_view = api.get(path, token=api.tokens["admin"]).json["export_locations"]
    assert {el["id"] for el in admin_view} == {el_id, admin_el}
    # Before 2.9 the route does not exist; the share itself carries the paths.
    assert_fault(api.get(path, version="2.8"), 404)
    api.set_share_status(share["id"], "available")
    old = api.get(f"/v2/shares/{share['id']}", version="2.8").json["share"]
    assert old["export_location"] == "10.0.0.5:/shares/x"
    assert old["export_locations"] == ["10.0.0.5:/shares/x"]
