"""Field gating of the views by microversion and role (pure: unsaved rows)."""

from __future__ import annotations

from datetime import datetime

import pytest

from shareflow.api.microversions import parse
from shareflow.api.views import access, export_locations, share_types, shares, versions
from shareflow.api.views.common import ViewContext, root_url
from shareflow.db.models import (
    AccessRule,
    ExportLocation,
    Share,
    ShareMetadata,
    ShareType,
    ShareTypeExtraSpec,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, 6)


def ctx(version: str, *, admin: bool = False, project: str | None = None) -> ViewContext:
    return ViewContext(version=parse(version), is_admin=admin, base_url="http://h:8786",
                       project_in_path=project, default_share_type="default")


def make_type(name="default", specs=None, public=True) -> ShareType:
    st = ShareType(id="type-1", name=name, description="d", is_public=public, created_at=T0)
    st.extra_specs = [ShareTypeExtraSpec(key=k, value=v) for k, v in (specs or {
        "driver_handles_share_servers": "False", "snapshot_support": "True", "secret_key": "x",
    }).items()]
    return st


def make_share(status="available", rules="active") -> Share:
    share = Share(
        id="share-1", project_id="p", user_id="u", name="n", description="d", size=1,
        share_proto="NFS", status=status, access_rules_status=rules, share_type_id="type-1",
        host="h@b1#pool0", backend="b1", availability_zone="nova", is_public=False,
        created_at=T0,
    )
    share.share_type = make_type()
    share.export_locations = [
        ExportLocation(id="el-1", share_id="share-1", path="10.0.0.1:/a", is_admin_only=False,
                       preferred=True, created_at=T0),
        ExportLocation(id="el-2", share_id="share-1", path="10.0.0.1:/admin", is_admin_only=True,
                       preferred=False, created_at=T0),
    ]
    share.metadata_items = [ShareMetadata(key="k", value="v")]
    return share


# Manila's fields per microversion (manila/api/views/shares.py).
BASE = {"id", "size", "availability_zone", "created_at", "status", "name", "description",
        "project_id", "snapshot_id", "share_network_id", "share_proto", "metadata", "share_type",
        "volume_type", "links", "is_public"}
ADDED = [
    ("2.2", {"snapshot_support"}), ("2.5", {"task_state"}), ("2.6", {"share_type_name"}),
    ("2.10", {"access_rules_status"}), ("2.11", {"replication_type", "has_replicas"}),
    ("2.16", {"user_id"}), ("2.24", {"create_share_from_snapshot_support"}),
    ("2.27", {"revert_to_snapshot_support"}),
    ("2.31", {"share_group_id", "source_share_group_snapshot_member_id"}),
    ("2.32", {"mount_snapshot_support"}), ("2.54", {"progress"}),
]


def expected_share_fields(version: str) -> set[str]:
    fields = set(BASE)
    if parse(version) < parse("2.9"):
        fields |= {"export_location", "export_locations"}
    for since, names in ADDED:
        if parse(version) >= parse(since):
            fields |= names
    return fields


@pytest.mark.parametrize("version", ["2.0", "2.1", "2.2", "2.5", "2.6", "2.8", "2.9", "2.10",
                                     "2.11", "2.16", "2.24", "2.27", "2.28", "2.31", "2.32",
                                     "2.45", "2.53", "2.54", "2.65"])
def test_share_fields_follow_the_microversion(version):
    assert set(shares.detail(make_share(), ctx(version))) == expected_share_fields(version)


def test_admin_also_sees_host_and_share_server():
    view = shares.detail(make_share(), ctx("2.65", admin=True))
    assert view["host"] == "h@b1#pool0" and view["share_server_id"] is None


def test_share_type_is_a_name_before_2_6_and_an_id_after():
    assert shares.detail(make_share(), ctx("2.5"))["share_type"] == "default"
    view = shares.detail(make_share(), ctx("2.6"))
    assert view["share_type"] == "type-1" and view["share_type_name"] == "default"
    assert view["volume_type"] == "default"


def test_legacy_export_locations_hide_admin_only_paths_from_members():
    view = shares.detail(make_share(), ctx("2.8"))
    assert view["export_location"] == "10.0.0.1:/a"
    assert view["export_locations"] == ["10.0.0.1:/a"]
    admin = shares.detail(make_share(), ctx("2.8", admin=True))
    assert admin["export_locations"] == ["10.0.0.1:/a", "10.0.0.1:/admin"]
    deleting = shares.detail(make_share(status="deleting"), ctx("2.8"))
    assert deleting["export_location"] == "10.0.0.1:/a" and deleting["export_locations"] == []


def test_syncing_rules_were_out_of_sync_before_2_28():
    assert shares.detail(make_share(rules="syncing"), ctx("2.27"))["access_rules_status"] == "out_of_sync"
    assert shares.detail(make_share(rules="syncing"), ctx("2.28"))["access_rules_status"] == "syncing"


def test_capabilities_come_from_the_share_type():
    view = shares.detail(make_share(), ctx("2.65"))
    assert view["snapshot_support"] is True
    assert view["create_share_from_snapshot_support"] is False
    assert view["created_at"] == "2025-01-02T03:04:05.000006"
    assert view["metadata"] == {"k": "v"}
    assert view["progress"] == "100%"
    assert shares.detail(make_share(status="creating"), ctx("2.65"))["progress"] == "0%"


def test_links_carry_the_project_only_when_the_url_did():
    assert shares.summary(make_share(), ctx("2.0"))["links"] == [
        {"rel": "self", "href": "http://h:8786/v2/shares/share-1"},
        {"rel": "bookmark", "href": "http://h:8786/shares/share-1"},
    ]
    links = shares.summary(make_share(), ctx("2.0", project="p"))["links"]
    assert links[0]["href"] == "http://h:8786/v2/p/shares/share-1"
    assert links[1]["href"] == "http://h:8786/p/shares/share-1"


def test_list_view_count_only_when_asked():
    assert "count" not in shares.list_view([make_share()], ctx("2.65"), detailed=False)
    assert shares.list_view([], ctx("2.65"), detailed=True, count=0) == {"shares": [], "count": 0}


def make_rule() -> AccessRule:
    return AccessRule(id="r1", share_id="share-1", access_type="ip", access_to="10.0.0.0/24",
                      access_level="rw", state="queued_to_apply", created_at=T0)


@pytest.mark.parametrize("version, extra", [
    ("2.0", set()), ("2.21", {"access_key"}), ("2.33", {"access_key", "created_at", "updated_at"}),
    ("2.45", {"access_key", "created_at", "updated_at", "metadata"}),
])
def test_access_rule_fields(version, extra):
    view = access.detail(make_rule(), ctx(version))["access"]
    assert set(view) == {"id", "share_id", "access_level", "access_to", "access_type", "state"} | extra
    entry = access.list_view([make_rule()], ctx(version))["access_list"][0]
    assert "share_id" not in entry


def test_access_rule_state_before_2_28_is_the_shares_rules_status():
    assert access.detail(make_rule(), ctx("2.27"), "syncing")["access"]["state"] == "new"
    assert access.detail(make_rule(), ctx("2.27"), "error")["access"]["state"] == "error"
    assert access.detail(make_rule(), ctx("2.28"))["access"]["state"] == "queued_to_apply"


def test_export_location_fields():
    el = make_share().export_locations[0]
    assert export_locations.list_view([el], ctx("2.9"))["export_locations"] == [{"id": "el-1", "path": "10.0.0.1:/a"}]
    member = export_locations.detail(el, ctx("2.14"))["export_location"]
    assert set(member) == {"id", "path", "preferred", "created_at", "updated_at"}
    admin = export_locations.detail(el, ctx("2.14", admin=True))["export_location"]
    assert admin["share_instance_id"] == "share-1" and admin["is_admin_only"] is False


def test_share_type_fields_by_version_and_role():
    old = share_types.detail(make_type(), ctx("2.6"))
    assert old["share_type"] is old["volume_type"]
    assert set(old["share_type"]) == {"id", "name", "extra_specs", "required_extra_specs",
                                      "os-share-type-access:is_public"}
    new = share_types.brief(make_type(), ctx("2.65"))
    assert new["share_type_access:is_public"] is True and new["is_default"] is True
    assert new["description"] == "d"
    # Members see only tenant-visible specs, plus Manila's inferred defaults.
    assert "secret_key" not in new["extra_specs"]
    assert new["extra_specs"]["revert_to_snapshot_support"] is False
    assert new["required_extra_specs"] == {"driver_handles_share_servers": "False"}
    admin = share_types.brief(make_type(), ctx("2.65", admin=True))
    assert admin["extra_specs"]["secret_key"] == "x"
    assert "revert_to_snapshot_support" not in admin["extra_specs"]


def test_versions_document():
    doc = versions.versions("http://h:8786")["versions"][0]
    assert doc["status"] == "CURRENT" and doc["version"] == "2.67" and doc["min_version"] == "2.0"
    assert {"rel": "self", "href": "http://h:8786/v2/"} in doc["links"]


@pytest.mark.parametrize("public, prefix, expected", [
    ("", "http://req:1", "http://req:1"),
    ("https://api.example/", "http://req:1", "https://api.example"),
    ("https://api.example/v2", "http://req:1", "https://api.example"),
    ("https://api.example/share/v2/", "http://req:1", "https://api.example/share"),
])
def test_root_url(public, prefix, expected):
    assert root_url(public, prefix) == expected
