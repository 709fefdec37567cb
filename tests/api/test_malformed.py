"""Malformed input on every write route: a 400 with Manila's body, never a 500,
and a rejected request changes nothing in the database.

The write routes are read from the falcon app's router and must all be in
:func:`routes` (a new route cannot be forgotten). Every one of them gets the
body-level classes: a body that is not declared JSON, one that is not JSON,
one whose text is not Unicode (lone surrogates) or holds a NUL. Routes that
read fields also get, for every field, each JSON type it does not take
(booleans, numbers, lists, objects, their empty forms, null) and a lone
surrogate in every string of the valid body, keys included. The valid body
itself is sent last and must not be a 400, which shows that each 400 before
it came from the one field that was changed.

(Every response in tests/api also passes ``check_response``: no 5xx at all,
and Manila's fault body on every error.)
"""

from __future__ import annotations

import copy
import itertools
import json
import uuid
from dataclasses import dataclass, field

import falcon.inspect
import pytest
import sqlalchemy as sa

from shareflow.api.codec import NOT_UNICODE, UNSUPPORTED_CONTENT_TYPE
from shareflow.api.views.quota_sets import UNLIMITED_RESOURCES
from shareflow.db.quotas import RESOURCES
from shareflow.db.models import Base, ShareSnapshot
from shareflow.domain.instance_ids import share_instance_id, snapshot_instance_id
from tests.api.conftest import MAX, POOL_HOST, assert_fault, check_response

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")

#: JSON values of every type, by name; a field spec lists the ones it takes.
JSON_TYPES = {
    "true": True, "false": False, "zero": 0, "int": 7, "float": 1.5, "empty_list": [], "list": ["x"],
    "empty_object": {}, "object": {"x": "y"}, "null": None,
}
TEXT: frozenset[str] = frozenset()
TEXT_OR_NULL = frozenset({"null"})
#: Manila's lenient booleans (strutils.bool_from_string takes 0 and 1 too).
BOOLEAN = frozenset({"true", "false", "zero"})
JSON_BOOLEAN = frozenset({"true", "false"})
COUNT = frozenset({"int"})
QUOTA = frozenset({"int", "zero", "null"})
OBJECT = frozenset({"object", "empty_object"})
#: An action without arguments (Manila's force_delete): null, or an empty object.
ACTION_ARGUMENT = frozenset({"null", "empty_object"})

#: Odd values of the right and wrong types: whatever a route answers, not a 500.
JUNK = [None, True, False, 0, -1, 10 ** 100, -(10 ** 100), 1.5, 1e308, "", " ", "x" * 5000,
        "☃", "../../etc", "' OR 1=1 --", [], [None], {}, {"a": {"b": [1, {"c": None}]}}]
#: Bodies that are wrong whatever the route (also used by tests/api/test_networks.py).
NOT_BODIES = ["", "null", "true", "0", "1e999", '"text"', "[]", "[{}]", "{", "}{", "{}",
              '{"a": 1, "a": 2}', "\x00", "\xff", '{"x": NaN}', "not json at all",
              json.dumps({"k": [[[[[[[[[[[]]]]]]]]]]]})]
NOT_JSON_TYPES = ["text/plain", "application/x-www-form-urlencoded", "application/xml", "text/xml",
                  "multipart/form-data; boundary=x", "application/json-patch+json",
                  "application/json; charset=latin-1", None]  # None: no type at all
NOT_JSON = ["{", "}{", "not json", "{'share': {}}", "[1,", '{"x": NaN}', '{"x": Infinity}', "1e999",
            '{"x": 1e999}', "\x00", "[" * 5000 + "]" * 5000]
NOT_JSON_BYTES = [b"\xff\xfe{}", b'{"x": "\xed\xa0\x80"}', b'{"x": "\xc0\xaf"}', b'{"\xff": 1}']
NOT_TEXT = ['{"x": "\\ud800"}', '{"\\udfff": 1}', '{"x": ["a", {"y": "b\\udc00c"}]}', '"\\ud800"',
            '["\\udbff"]', '{"x": "\\u0000"}', '{"\\u0000": "x"}']
#: JSON, but no body any write route takes.
WRONG_SHAPE = ["null", "true", "0", '"text"', "[]", "[{}]", "{}"]


@dataclass
class Variant:
    """One body a route takes: ``fields`` maps a path into the body to the
    names of the :data:`JSON_TYPES` it takes there (all others must be a 400);
    ``section`` the same for the body's one top-level value (None: not tried)."""

    body: dict
    fields: dict[tuple, frozenset[str]] = field(default_factory=dict)
    section: frozenset[str] | None = TEXT
    version: str = MAX
    #: Another target than the route's (for a valid body that changes it).
    path: str | None = None


@dataclass
class Route:
    method: str
    template: str
    path: str
    variants: list[Variant] = field(default_factory=list)
    version: str = MAX
    #: The method exists only to answer a trailing slash 404 (Manila's
    #: router): without one, a body that is JSON gets this API's 405.
    slash_only: bool = False


def _d(**kw) -> dict:
    return kw


@pytest.fixture(scope="module")
def targets(api):
    """What the routes act on, each state-changing valid body on its own."""
    admin = api.tokens["admin"]

    def share(size=1, share_type=None):
        extra = {"share_type": share_type} if share_type else {}
        made = api.create_share(token=admin, size=size, **extra)
        api.set_share_status(made["id"], "available")
        return made["id"]

    def snapshot(share_id):
        result = api.post("/v2/snapshots", {"snapshot": {"share_id": share_id}}, token=admin)
        assert result.status_code == 202, result.text
        snap_id = result.json["snapshot"]["id"]
        with api.services.db.write() as s:
            s.execute(sa.update(ShareSnapshot).where(ShareSnapshot.id == snap_id).values(status="available"))
        return snap_id

    full = api.post("/v2/types", {"share_type": {"name": f"fuzz-{uuid.uuid4().hex[:6]}", "extra_specs": {
        "driver_handles_share_servers": False, "snapshot_support": True,
        "revert_to_snapshot_support": True}}}, token=admin).json["share_type"]
    revert_share = share(share_type=full["name"])
    snap_share = share()
    pn = api.post("/v2/provider-networks", {"provider_network": {
        "name": "fuzz-net", "bridge": "brfuzz0", "cidr": "203.0.113.0/24"}}, token=admin)
    assert pn.status_code == 201, pn.text
    sn = api.post("/v2/share-networks", {"share_network": {"name": "fuzz-sn"}}, token=admin)
    assert sn.status_code == 200, sn.text
    zone = api.get("/v2/availability-zones", token=admin).json["availability_zones"][0]["name"]
    ss = api.post("/v2/security-services", {"security_service": {"type": "ldap", "name": "fuzz-ss"}}, token=admin)
    assert ss.status_code == 200, ss.text
    group_stype = api.post("/v2/types", {"share_type": {"name": f"fuzz-g-{uuid.uuid4().hex[:6]}", "extra_specs": {
        "driver_handles_share_servers": False}}}, token=admin).json["share_type"]["id"]
    group_type = api.post("/v2/share-group-types", {"share_group_type": {
        "name": f"fuzz-gt-{uuid.uuid4().hex[:6]}", "share_types": [group_stype]}}, token=admin)
    assert group_type.status_code == 200, group_type.text
    group = api.post("/v2/share-groups", {"share_group": {
        "share_group_type_id": group_type.json["share_group_type"]["id"], "share_types": [group_stype]}},
        token=admin)
    assert group.status_code == 202, group.text
    group_snapshot = api.post("/v2/share-group-snapshots", {"share_group_snapshot": {
        "share_group_id": group.json["share_group"]["id"]}}, token=admin)
    assert group_snapshot.status_code == 202, group_snapshot.text
    rule_share = share()
    rule = api.post(f"/v2/shares/{rule_share}/action", {"allow_access": {
        "access_type": "ip", "access_to": "10.8.8.8"}}, token=admin)
    assert rule.status_code == 200, rule.text
    return {
        "security_service": ss.json["security_service"]["id"],
        "share": share(), "extend": share(), "shrink": share(size=2), "snap_share": snap_share,
        "revert_share": revert_share, "revert_snapshot": snapshot(revert_share),
        "snapshot": snapshot(snap_share), "type": full["id"], "provider": pn.json["provider_network"],
        "share_network": sn.json["share_network"]["id"], "zone": zone, "rule": rule.json["access"]["id"],
        "group_share_type": group_stype, "group_type": group_type.json["share_group_type"]["id"],
        "group": group.json["share_group"]["id"], "group_snapshot": group_snapshot.json["share_group_snapshot"]["id"],
    }


def routes(t) -> list[Route]:
    s, sn, typ, snap = t["share"], t["share_network"], t["type"], t["snapshot"]
    some = str(uuid.uuid4())
    share_fields = {("share", k): TEXT_OR_NULL for k in (
        "name", "description", "display_name", "display_description")}
    snapshot_fields = {("snapshot", k): TEXT_OR_NULL for k in (
        "name", "description", "display_name", "display_description")}
    quota_fields = {("quota_set", k): QUOTA for k in RESOURCES}
    # Not limited here: -1 (or nothing) is their only value.
    quota_fields |= {("quota_set", k): frozenset({"null"}) for k in UNLIMITED_RESOURCES}
    quota_fields[("quota_set", "force")] = BOOLEAN | {"null"}
    network_fields = {("share_network", k): TEXT_OR_NULL for k in ("name", "description")}
    pn = t["provider"]
    neutron = {"neutron_net_id": pn["id"], "neutron_subnet_id": pn["subnet_id"]}
    service_body = {"host": POOL_HOST.partition("#")[0], "binary": "manila-share"}
    return [
        Route("POST", "/v2/shares", "/v2/shares", [Variant(
            {"share": _d(size=1, share_proto="NFS", name="fz", description="d", metadata={"k": "v"},
                         is_public=False)},
            {("share", "size"): COUNT, ("share", "share_proto"): TEXT, ("share", "metadata"): OBJECT | {"null"},
             ("share", "metadata", "k"): TEXT, ("share", "is_public"): BOOLEAN,
             ("share", "share_type"): TEXT_OR_NULL, ("share", "volume_type"): TEXT_OR_NULL,
             ("share", "availability_zone"): TEXT_OR_NULL, ("share", "share_network_id"): TEXT_OR_NULL,
             ("share", "snapshot_id"): TEXT_OR_NULL, **share_fields})]),
        Route("PUT", "/v2/shares/{share_id}", f"/v2/shares/{s}", [Variant(
            {"share": {"name": "n2", "is_public": False}},
            {**share_fields, ("share", "is_public"): BOOLEAN}, section=OBJECT)]),
        Route("DELETE", "/v2/shares/{share_id}", f"/v2/shares/{s}"),
        Route("POST", "/v2/shares/{share_id}/action", f"/v2/shares/{s}/action", [
            Variant({"allow_access": _d(access_type="ip", access_to="10.9.9.9", access_level="ro",
                                        metadata={"k": "v"})},
                    {("allow_access", "access_type"): TEXT, ("allow_access", "access_to"): TEXT,
                     ("allow_access", "access_level"): TEXT_OR_NULL,
                     ("allow_access", "metadata"): OBJECT | {"null"}, ("allow_access", "metadata", "k"): TEXT}),
            Variant({"deny_access": {"access_id": some}}, {("deny_access", "access_id"): TEXT}),
            Variant({"reset_status": {"status": "available"}}, {("reset_status", "status"): TEXT}),
            Variant({"extend": {"new_size": 2, "force": False}},
                    {("extend", "new_size"): COUNT, ("extend", "force"): JSON_BOOLEAN},
                    path=f"/v2/shares/{t['extend']}/action"),
            Variant({"shrink": {"new_size": 1}}, {("shrink", "new_size"): COUNT},
                    path=f"/v2/shares/{t['shrink']}/action"),
            Variant({"revert": {"snapshot_id": t["revert_snapshot"]}}, {("revert", "snapshot_id"): TEXT},
                    path=f"/v2/shares/{t['revert_share']}/action"),
        ]),
        Route("POST", "/v2/shares/{share_id}/metadata", f"/v2/shares/{s}/metadata", [Variant(
            {"metadata": {"k": "v"}}, {("metadata",): OBJECT, ("metadata", "k"): TEXT}, section=None)]),
        Route("PUT", "/v2/shares/{share_id}/metadata", f"/v2/shares/{s}/metadata", [Variant(
            {"metadata": {"k": "v"}}, {("metadata",): OBJECT, ("metadata", "k"): TEXT}, section=None)]),
        Route("POST", "/v2/shares/{share_id}/metadata/{key}", f"/v2/shares/{s}/metadata/k", [Variant(
            {"meta": {"k": "v"}}, {("meta",): TEXT, ("meta", "k"): TEXT}, section=None)]),
        Route("DELETE", "/v2/shares/{share_id}/metadata/{key}", f"/v2/shares/{s}/metadata/k"),
        Route("PUT", "/v2/share-access-rules/{access_id}/metadata", f"/v2/share-access-rules/{t['rule']}/metadata",
              [Variant({"metadata": {"k": "v"}}, {("metadata",): OBJECT, ("metadata", "k"): TEXT}, section=None)]),
        Route("DELETE", "/v2/share-access-rules/{access_id}/metadata/{key}",
              f"/v2/share-access-rules/{t['rule']}/metadata/k"),
        Route("POST", "/v2/types", "/v2/types", [Variant(
            {"share_type": {"name": "fuzz-made", "description": "d", "share_type_access:is_public": True,
                            "extra_specs": {"driver_handles_share_servers": "False"}}},
            {("share_type", "name"): TEXT, ("share_type", "description"): TEXT_OR_NULL,
             ("share_type", "share_type_access:is_public"): BOOLEAN,
             ("share_type", "os-share-type-access:is_public"): BOOLEAN,
             ("share_type", "extra_specs"): TEXT,
             # A type's create takes numbers as Manila does (stored as text): 0 is False.
             ("share_type", "extra_specs", "driver_handles_share_servers"): JSON_BOOLEAN | {"zero"}})]),
        Route("PUT", "/v2/types/{type_id}", f"/v2/types/{typ}", [Variant(
            {"share_type": {"name": "fuzz-renamed", "description": "d", "share_type_access:is_public": True}},
            {("share_type", "name"): TEXT_OR_NULL, ("share_type", "description"): TEXT_OR_NULL,
             ("share_type", "share_type_access:is_public"): BOOLEAN | {"null"}})]),
        Route("DELETE", "/v2/types/{type_id}", f"/v2/types/{typ}"),
        # Only with a trailing slash (a 404 then); a 405 without.
        Route("DELETE", "/v2/types", "/v2/types", slash_only=True),
        Route("PUT", "/v2/types/{type_id}/extra_specs", f"/v2/types/{typ}/extra_specs", slash_only=True),
        Route("DELETE", "/v2/types/{type_id}/extra_specs", f"/v2/types/{typ}/extra_specs", slash_only=True),
        Route("POST", "/v2/types/{type_id}/action", f"/v2/types/{typ}/action", [Variant(
            {"addProjectAccess": {"project": "p"}}, {("addProjectAccess", "project"): TEXT})]),
        Route("POST", "/v2/types/{type_id}/extra_specs", f"/v2/types/{typ}/extra_specs", [Variant(
            {"extra_specs": {"fuzz_key": "v"}},
            {("extra_specs",): frozenset({"object"}), ("extra_specs", "fuzz_key"): JSON_BOOLEAN},
            section=None)]),
        Route("PUT", "/v2/types/{type_id}/extra_specs/{key}", f"/v2/types/{typ}/extra_specs/fuzz_key", [
            Variant({"fuzz_key": "v2"}, {("fuzz_key",): JSON_BOOLEAN}, section=None)]),
        Route("DELETE", "/v2/types/{type_id}/extra_specs/{key}", f"/v2/types/{typ}/extra_specs/fuzz_key"),
        Route("POST", "/v2/snapshots", "/v2/snapshots", [Variant(
            {"snapshot": _d(share_id=t["snap_share"], name="n", description="d", force=False)},
            {("snapshot", "share_id"): TEXT, ("snapshot", "force"): BOOLEAN | {"null"}, **snapshot_fields})]),
        Route("PUT", "/v2/snapshots/{snapshot_id}", f"/v2/snapshots/{snap}", [Variant(
            {"snapshot": {"name": "n"}}, snapshot_fields, section=OBJECT)]),
        Route("DELETE", "/v2/snapshots/{snapshot_id}", f"/v2/snapshots/{snap}"),
        Route("POST", "/v2/snapshots/{snapshot_id}/action", f"/v2/snapshots/{snap}/action", [Variant(
            {"reset_status": {"status": "available"}}, {("reset_status", "status"): TEXT})]),
        Route("POST", "/v2/share_instances/{instance_id}/action",
              f"/v2/share_instances/{share_instance_id(s)}/action", [
                  Variant({"reset_status": {"status": "available"}}, {("reset_status", "status"): TEXT})]),
        Route("POST", "/v2/snapshot-instances/{instance_id}/action",
              f"/v2/snapshot-instances/{snapshot_instance_id(snap)}/action", [
                  Variant({"reset_status": {"status": "available"}}, {("reset_status", "status"): TEXT})]),
        Route("PUT", "/v2/quota-sets/{target_id}", "/v2/quota-sets/proj-fuzz", [Variant(
            {"quota_set": {"shares": 50}}, quota_fields)]),
        Route("DELETE", "/v2/quota-sets/{target_id}", "/v2/quota-sets/proj-fuzz"),
        Route("PUT", "/v2/os-quota-sets/{target_id}", "/v2/os-quota-sets/proj-fuzz", [Variant(
            {"quota_set": {"shares": 50}}, quota_fields, version="2.6")], version="2.6"),
        Route("DELETE", "/v2/os-quota-sets/{target_id}", "/v2/os-quota-sets/proj-fuzz", version="2.6"),
        Route("DELETE", "/v2/messages/{message_id}", f"/v2/messages/{some}"),
        Route("DELETE", "/v2/share-servers/{server_id}", f"/v2/share-servers/{some}"),
        Route("POST", "/v2/share-servers/{server_id}/action", f"/v2/share-servers/{some}/action", [
            Variant({"reset_status": {"status": "active"}}, {("reset_status", "status"): TEXT}),
            Variant({"reset_task_state": {"task_state": None}},
                    {("reset_task_state", "task_state"): TEXT_OR_NULL}),
        ]),
        Route("POST", "/v2/share-networks", "/v2/share-networks", [Variant(
            {"share_network": {"name": "n", "description": "d", "availability_zone": t["zone"], **neutron}},
            {**network_fields, ("share_network", "availability_zone"): TEXT_OR_NULL,
             ("share_network", "neutron_net_id"): TEXT_OR_NULL,
             ("share_network", "neutron_subnet_id"): TEXT_OR_NULL}, section=OBJECT)]),
        Route("PUT", "/v2/share-networks/{share_network_id}", f"/v2/share-networks/{sn}", [Variant(
            {"share_network": {"name": "n", **neutron}},
            {**network_fields, ("share_network", "neutron_net_id"): TEXT,
             ("share_network", "neutron_subnet_id"): TEXT}, section=OBJECT)]),
        Route("DELETE", "/v2/share-networks/{share_network_id}", f"/v2/share-networks/{sn}"),
        Route("POST", "/v2/share-networks/{share_network_id}/action", f"/v2/share-networks/{sn}/action"),
        Route("POST", "/v2/share-networks/{share_network_id}/subnets", f"/v2/share-networks/{sn}/subnets", [
            Variant({"share-network-subnet": {"availability_zone": t["zone"], **neutron}},
                    {("share-network-subnet", "availability_zone"): TEXT_OR_NULL,
                     ("share-network-subnet", "neutron_net_id"): TEXT_OR_NULL,
                     ("share-network-subnet", "neutron_subnet_id"): TEXT_OR_NULL}, section=OBJECT)]),
        Route("DELETE", "/v2/share-networks/{share_network_id}/subnets/{subnet_id}",
              f"/v2/share-networks/{sn}/subnets/{some}"),
        # A section that is not an object is webob's 422, as Manila answers it: not tried here.
        Route("POST", "/v2/security-services", "/v2/security-services", [Variant(
            {"security_service": {"type": "ldap", "name": "n", "description": "d", "dns_ip": "10.0.0.1",
                                  "server": "s", "domain": "d", "user": "u", "password": "p", "ou": "o"}},
            {("security_service", "type"): TEXT}
            | {("security_service", k): TEXT_OR_NULL
               for k in ("name", "description", "dns_ip", "server", "domain", "user", "password", "ou")},
            section=None)]),
        Route("PUT", "/v2/security-services/{security_service_id}",
              f"/v2/security-services/{t['security_service']}", [Variant(
                  {"security_service": {"name": "n2", "server": "s2", "type": "kerberos"}},
                  {("security_service", "type"): TEXT}
                  | {("security_service", k): TEXT_OR_NULL for k in ("name", "server")}, section=None)]),
        Route("DELETE", "/v2/security-services/{security_service_id}",
              f"/v2/security-services/{t['security_service']}"),
        Route("POST", "/v2/provider-networks", "/v2/provider-networks", [Variant(
            {"provider_network": {"name": "fuzz-pn", "bridge": "brfuzz1", "cidr": "198.51.100.0/24",
                                  "gateway": "198.51.100.1", "mtu": 1500,
                                  "allocation_ranges": [{"start": "198.51.100.10", "end": "198.51.100.20"}]}},
            {("provider_network", k): TEXT for k in ("name", "bridge", "cidr")}
            | {("provider_network", "gateway"): TEXT_OR_NULL, ("provider_network", "mtu"): frozenset({"null"}),
               ("provider_network", "allocation_ranges"): frozenset({"null"}),
               ("provider_network", "allocation_ranges", 0): TEXT})]),
        Route("DELETE", "/v2/provider-networks/{network_id}", f"/v2/provider-networks/{some}"),
        # Enabling the enabled share service: valid, and it changes nothing.
        Route("PUT", "/v2/services/{action}", "/v2/services/enable", [Variant(
            service_body, {("host",): TEXT, ("binary",): TEXT}, section=None)]),
        Route("PUT", "/v2/os-services/{action}", "/v2/os-services/enable", [Variant(
            service_body, {("host",): TEXT, ("binary",): TEXT}, section=None, version="2.6")], version="2.6"),
        *group_routes(t),
        # The valid bodies reach the job lookup (a 404 here): steering itself
        # is tested in tests/api/test_jobs_api.py.
        Route("POST", "/v2/jobs/{job_id}/action", f"/v2/jobs/{some}/action", [
            Variant({name: None}, section=ACTION_ARGUMENT) for name in ("resume", "retry", "cancel")]),
    ]


def group_routes(t) -> list[Route]:
    """Share group types, share groups and share group snapshots (2.31+)."""
    gt, group, gsnap = t["group_type"], t["group"], t["group_snapshot"]
    texts = lambda section, *keys: {(section, k): TEXT_OR_NULL for k in keys}  # noqa: E731
    reset = [Variant({"reset_status": {"status": "available"}}, {("reset_status", "status"): TEXT})]
    return [
        Route("POST", "/v2/share-group-types", "/v2/share-group-types", [Variant(
            {"share_group_type": {"name": "fuzz-gt-made", "share_types": [t["group_share_type"]],
                                  "group_specs": {"k": "v"}, "is_public": True}},
            {("share_group_type", "name"): TEXT, ("share_group_type", "share_types"): frozenset({"list"}),
             ("share_group_type", "share_types", 0): TEXT,
             ("share_group_type", "group_specs"): OBJECT | {"null"}, ("share_group_type", "group_specs", "k"): TEXT,
             ("share_group_type", "is_public"): BOOLEAN})]),
        Route("DELETE", "/v2/share-group-types/{type_id}", f"/v2/share-group-types/{gt}"),
        Route("POST", "/v2/share-group-types/{type_id}/action", f"/v2/share-group-types/{gt}/action", [Variant(
            {"addProjectAccess": {"project": "p"}}, {("addProjectAccess", "project"): TEXT})]),
        Route("POST", "/v2/share-group-types/{type_id}/group-specs", f"/v2/share-group-types/{gt}/group-specs", [
            Variant({"group_specs": {"fuzz_key": "v"}},
                    {("group_specs",): OBJECT, ("group_specs", "fuzz_key"): JSON_BOOLEAN}, section=None)]),
        Route("PUT", "/v2/share-group-types/{type_id}/group-specs/{key}",
              f"/v2/share-group-types/{gt}/group-specs/fuzz_key", [
                  Variant({"fuzz_key": "v2"}, {("fuzz_key",): JSON_BOOLEAN}, section=None)]),
        Route("DELETE", "/v2/share-group-types/{type_id}/group-specs/{key}",
              f"/v2/share-group-types/{gt}/group-specs/fuzz_key"),
        Route("POST", "/v2/share-groups", "/v2/share-groups", [Variant(
            {"share_group": {"name": "n", "description": "d", "share_group_type_id": gt,
                             "share_types": [t["group_share_type"]], "availability_zone": t["zone"]}},
            {**texts("share_group", "name", "description", "availability_zone"),
             ("share_group", "share_group_type_id"): TEXT, ("share_group", "share_types"): frozenset({"list"}),
             ("share_group", "share_types", 0): TEXT})]),
        # An empty update is Manila's 200; an unknown field its 400.
        Route("PUT", "/v2/share-groups/{group_id}", f"/v2/share-groups/{group}", [Variant(
            {"share_group": {"name": "n2", "description": "d2"}}, texts("share_group", "name", "description"),
            section=frozenset({"empty_object"}))]),
        Route("DELETE", "/v2/share-groups/{group_id}", f"/v2/share-groups/{group}"),
        Route("POST", "/v2/share-groups/{group_id}/action", f"/v2/share-groups/{group}/action", reset),
        Route("POST", "/v2/share-group-snapshots", "/v2/share-group-snapshots", [Variant(
            {"share_group_snapshot": {"share_group_id": group, "name": "n", "description": "d"}},
            {**texts("share_group_snapshot", "name", "description"),
             ("share_group_snapshot", "share_group_id"): TEXT})]),
        Route("PUT", "/v2/share-group-snapshots/{snapshot_id}", f"/v2/share-group-snapshots/{gsnap}", [Variant(
            {"share_group_snapshot": {"name": "n2", "description": "d2"}},
            texts("share_group_snapshot", "name", "description"), section=frozenset({"empty_object"}))]),
        Route("DELETE", "/v2/share-group-snapshots/{snapshot_id}", f"/v2/share-group-snapshots/{gsnap}"),
        Route("POST", "/v2/share-group-snapshots/{snapshot_id}/action",
              f"/v2/share-group-snapshots/{gsnap}/action", reset),
    ]


def variants(key: str, fields: dict) -> list:
    """Each field replaced by each junk value, then each field dropped, then
    the section itself replaced by junk."""
    bodies = []
    for name, value in itertools.product(fields, JUNK):
        bodies.append({key: {**fields, name: value}})
    for name in fields:
        bodies.append({key: {k: v for k, v in fields.items() if k != name}})
    bodies += [{key: junk} for junk in JUNK if not isinstance(junk, dict) or junk]
    return bodies


def write_routes(app) -> set[tuple[str, str]]:
    """(method, URI template) of every write responder of the app, without the
    ``/{project_id}`` twin each ``/v2`` route has."""
    found = set()
    for info in falcon.inspect.inspect_routes(app):
        for method in info.methods:
            if method.method in WRITE_METHODS and not method.internal:
                found.add((method.method, info.path.replace("/v2/{project_id}", "/v2")))
    return found


def snapshot_db(api) -> dict:
    """Every row of every table: what a rejected request must leave as it was
    (but the conductors' heartbeat, which the test env renews by itself)."""
    def columns(t):
        return [c for c in t.columns if not (t.name in HEARTBEATS and c.name == "updated_at")]

    with api.services.db.read() as s:
        return {t.name: [tuple(row) for row in s.execute(sa.select(*columns(t)).order_by(*t.primary_key.columns))]
                for t in Base.metadata.sorted_tables}


#: Tables whose ``updated_at`` is the conductors' heartbeat.
HEARTBEATS = {"pools", "services"}


def send(api, route: Route, raw: str | bytes, *, content_type: str | None = "application/json",
         version: str | None = None, token: str | None = None, path: str | None = None):
    # No header at all for None (the harness adds JSON only when none is given).
    headers = {"Content-Type": content_type} if content_type is not None else {"Content-Type": ""}
    return api.request(route.method, path or route.path, body=raw, headers=headers,
                       version=version or route.version, token=token or api.tokens["admin"])


def _get(body, path):
    for key in path:
        body = body[key]
    return body


def _set(body, path, value):
    body = copy.deepcopy(body)
    _get(body, path[:-1])[path[-1]] = value
    return body


def surrogate_variants(body):
    """The body with each of its strings (keys too), in turn, holding a lone surrogate."""
    if isinstance(body, dict):
        for key, value in body.items():
            yield {**{k: v for k, v in body.items() if k != key}, key[:1] + "\ud800" + key[1:]: value}
            for inner in surrogate_variants(value):
                yield {**body, key: inner}
    elif isinstance(body, list):
        for i, value in enumerate(body):
            for inner in surrogate_variants(value):
                yield [*body[:i], inner, *body[i + 1:]]
    elif isinstance(body, str):
        yield body + "\udfff"


def dumps(body) -> str:
    """JSON text as a client sends it: a lone surrogate as its \\u escape."""
    return json.dumps(body, ensure_ascii=True)


@pytest.fixture(scope="module")
def table(api, targets):
    return routes(targets)


def test_every_write_route_is_fuzzed(api, table):
    listed = {(r.method, r.template) for r in table}
    assert write_routes(api.client.app) == listed


@pytest.mark.parametrize("token_name", ["admin", "alice"])
def test_bodies_that_are_not_json_text_are_400_everywhere(api, table, token_name):
    token = api.tokens[token_name]
    before = snapshot_db(api)
    for route in table:
        valid = dumps(route.variants[0].body) if route.variants else "{}"
        for content_type in NOT_JSON_TYPES:
            result = send(api, route, valid, content_type=content_type, token=token)
            message = assert_fault(result, 400, "badRequest")
            assert message == UNSUPPORTED_CONTENT_TYPE, (route.method, route.path, content_type, message)
        for raw in NOT_JSON + NOT_JSON_BYTES:
            result = send(api, route, raw, token=token)
            assert assert_fault(result, 400, "badRequest") == "Malformed request body", (route.path, raw)
        for raw in NOT_TEXT:
            result = send(api, route, raw, token=token)
            message = assert_fault(result, 400, "badRequest")
            assert message in (NOT_UNICODE, "Malformed request body"), (route.path, raw, message)
        if route.method != "DELETE" and not route.slash_only:
            for raw in WRONG_SHAPE:
                result = send(api, route, raw, token=token)
                # 422 where Manila answers a missing section so (shares, share networks).
                assert result.status_code in (400, 403, 422), (route.method, route.path, raw, result.text)
    assert snapshot_db(api) == before


def test_wrong_types_and_surrogates_in_every_field_are_400(api, table):
    """Then the valid body, which must get past validation."""
    wrong = []  # every miss, not just the first
    for route in table:
        for variant in route.variants:
            before = snapshot_db(api)
            sent = []
            for path, accepts in variant.fields.items():
                for name, junk in JSON_TYPES.items():
                    if name not in accepts:
                        sent.append(_set(variant.body, path, junk))
            if variant.section is not None:
                key, = variant.body
                sent += [{key: junk} for name, junk in JSON_TYPES.items() if name not in variant.section]
            sent += list(surrogate_variants(variant.body))
            for body in sent:
                result = send(api, route, dumps(body), version=variant.version, path=variant.path)
                if result.status_code != 400:
                    wrong.append((route.method, route.path, body, result.status_code, result.text[:200]))
                    if result.status_code < 300:
                        before = snapshot_db(api)  # reported: go on with the state it made
            assert snapshot_db(api) == before, (route.method, route.path)
            result = send(api, route, dumps(variant.body), version=variant.version, path=variant.path)
            if result.status_code == 400:
                wrong.append(("valid body refused", route.method, route.path, variant.body, result.text))
    assert not wrong, "\n".join(map(repr, wrong))


def test_surrogates_and_bad_bytes_in_paths_and_query_strings(api, table, targets):
    """Falcon decodes a path or query string as UTF-8 with replacement: no lone
    surrogate reaches a handler that way, and whatever is echoed encodes."""
    junk = ["%ed%a0%80", "%ff", "%c0%af", "%00", "a%ed%b0%80b"]
    before = snapshot_db(api)
    for value in junk:
        for route in table:
            path = route.path.rsplit("/", 1)[0] + "/" + value if "{" in route.template else route.path
            result = api.request(route.method, path, body="{}", version=route.version,
                                 token=api.tokens["admin"])
            result.content.decode("utf-8")
        for path in ("/v2/shares", "/v2/shares/detail", "/v2/snapshots", "/v2/share-networks",
                     "/v2/messages", "/v2/share-servers", "/v2/jobs", f"/v2/jobs/{value}", f"/v2/shares/{value}",
                     f"/v2/shares/{targets['share']}/metadata/{value}"):
            result = api.client.simulate_get(path, query_string=f"name={value}&sort_key={value}&limit=1"
                                                                 f"&state={value}&resource_id={value}",
                                             headers={"X-Auth-Token": api.tokens["admin"]})
            check_response(result)
            result.content.decode("utf-8")
    assert snapshot_db(api) == before


def test_junk_values_never_break_a_route(api, table):
    """Odd values in every top-level field of every body (as admin, whom no
    policy stops before the body is read): no 500, Manila's body on errors, and a refused request changes nothing."""
    for route in table:
        for variant in route.variants:
            if len(variant.body) != 1:
                continue  # no section (the services' host and binary): its fields are fuzzed above
            (key, fields), = variant.body.items()
            if not isinstance(fields, dict):
                continue
            before = snapshot_db(api)
            for body in variants(key, fields):
                result = send(api, route, dumps(body), version=variant.version, path=variant.path)
                after = snapshot_db(api)
                if result.status_code >= 400:
                    assert after == before, (route.path, body, result.text)
                before = after
