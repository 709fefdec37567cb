"""Roles against the app's own route table (shareflow/policy.py): a reader is
refused every write route and changes nothing, reads its project's resources;
a member is refused every admin-only route. Routes are enumerated from the
falcon router and each action resource's actions, not picked by hand: a new
route or action is covered (or fails here) without editing this file."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from shareflow import policy
from shareflow.api.resources.base import EXPERIMENTAL_HEADER, PER_ACTION, Resource
from shareflow.auth.tokens import TokenFile
from shareflow.db import messages as messages_db
from shareflow.db import networks as networks_db
from shareflow.db import share_servers as servers_db
from shareflow.db.models import Base, ShareSnapshot
from shareflow.domain import states
from shareflow.wiring import utcnow
from tests.api.conftest import MAX, assert_fault

WRITE_METHODS = ("POST", "PUT", "DELETE", "PATCH")
#: Responders that exist only to refuse what Manila's router or controller
#: has not (falcon reaches them for a path that has other methods): the same
#: 405 or 404 for everyone, before anything is read. Any other write responder
#: is a 403 to a reader, any other admin-only one a 403 to a member.
REFUSE_EVERYONE = {("ExtraSpecs", "on_put"): 405, ("ExtraSpecs", "on_delete"): 405,
                   ("ShareTypes", "on_delete"): 405, ("ShareInstances", "on_get_detail"): 404,
                   ("Services", "on_get_action"): 404}
#: Columns that requests themselves refresh (the API's and the test pool's heartbeats).
VOLATILE = {("services", "updated_at"), ("pools", "updated_at")}
#: Versions a responder is tried at, newest first: legacy routes (os-services,
#: os-quota-sets) exist only up to 2.6.
VERSIONS = (MAX, "2.6")


@dataclass(frozen=True)
class Route:
    template: str
    method: str
    resource: Resource
    responder: str
    rule: str

    @property
    def owner(self) -> tuple[str, str]:
        return type(self.resource).__name__, self.responder


def routes(app) -> Iterator[Route]:
    """Every (URI template, method) of the app served by one of our responders,
    without the duplicate ``/v2/{project_id}/...`` spelling."""
    stack = list(app._router._roots)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.resource is None or not node.uri_template.startswith("/v2"):
            continue
        if node.uri_template.startswith("/v2/{project_id}"):
            continue
        for method, responder in node.method_map.items():
            name = getattr(responder, "__name__", "")
            if getattr(responder, "__self__", None) is not node.resource or not name.startswith("on_"):
                continue  # falcon's own (OPTIONS, 405 for methods the resource has not)
            # A responder without a rule cannot even be defined (Resource.__init_subclass__).
            yield Route(node.uri_template, method, node.resource, name, responder.__policy_rule__)


def actions_of(route: Route) -> dict:
    actions = getattr(route.resource, "actions", None)
    assert isinstance(actions, dict) and actions, f"{route.owner} is per-action but has no actions table"
    return actions


@pytest.fixture(scope="module")
def reader(api) -> str:
    return TokenFile(api.config.auth.tokens_file).issue("proj-a", "rita", role="reader")[0]


@pytest.fixture(scope="module")
def world(api) -> dict[str, str]:
    """One of each resource, in proj-a where a project owns them: the ids
    the route templates are filled with, so a write that were let through
    would change a real row."""
    alice, admin = api.tokens["alice"], api.tokens["admin"]
    share = api.create_share(token=alice, size=1)
    api.set_share_status(share["id"], "available")
    ids = {"share_id": share["id"], "key": "color", "target_id": "proj-a", "action": "disable",
           "alias": "os-share-type-access", "replica_id": str(uuid.uuid4())}
    ids["export_location_id"] = api.add_export_location(share["id"], "10.0.0.1:/share")
    assert api.put(f"/v2/shares/{share['id']}/metadata", {"metadata": {"color": "blue"}},
                   token=alice).status_code == 200
    granted = api.post(f"/v2/shares/{share['id']}/action",
                       {"allow_access": {"access_type": "ip", "access_to": "10.0.0.9"}}, token=alice)
    assert granted.status_code == 200, granted.text
    ids["access_id"] = granted.json["access"]["id"]
    snap = api.post("/v2/snapshots", {"snapshot": {"share_id": share["id"]}}, token=alice)
    assert snap.status_code == 202, snap.text
    ids["snapshot_id"] = snap.json["snapshot"]["id"]
    with api.services.db.write() as s:
        s.execute(sa.update(ShareSnapshot).where(ShareSnapshot.id == ids["snapshot_id"])
                  .values(status="available", provider_location="pool0/snap"))
    ids["instance_id"] = api.get(f"/v2/shares/{share['id']}/instances", token=admin).json[
        "share_instances"][0]["id"]
    stype = api.post("/v2/types", {"share_type": {
        "name": f"pol-{uuid.uuid4().hex[:6]}", "share_type_access:is_public": False,
        "extra_specs": {"driver_handles_share_servers": "False"}}}, token=admin)
    assert stype.status_code == 200, stype.text
    ids["type_id"] = stype.json["share_type"]["id"]
    assert api.post(f"/v2/types/{ids['type_id']}/action", {"addProjectAccess": {"project": "proj-a"}},
                    token=admin).status_code == 202
    gtype = api.post("/v2/share-group-types", {"share_group_type": {
        "name": f"pol-{uuid.uuid4().hex[:6]}", "share_types": [ids["type_id"]]}}, token=admin)
    assert gtype.status_code == 200, gtype.text
    group = api.post("/v2/share-groups", {"share_group": {
        "share_group_type_id": gtype.json["share_group_type"]["id"], "share_types": [ids["type_id"]]}},
        token=alice)
    assert group.status_code == 202, group.text
    ids["group_id"] = group.json["share_group"]["id"]
    net = api.post("/v2/share-networks", {"share_network": {"name": "pol-net"}}, token=alice)
    assert net.status_code == 200, net.text
    ids["share_network_id"] = net.json["share_network"]["id"]
    ids["subnet_id"] = net.json["share_network"]["share_network_subnets"][0]["id"]
    sec = api.post("/v2/security-services", {"security_service": {"type": "ldap", "name": "pol-ldap"}},
                   token=alice)
    assert sec.status_code == 200, sec.text
    ids["security_service_id"] = sec.json["security_service"]["id"]
    provider = api.post("/v2/provider-networks", {"provider_network": {
        "name": f"pol-{uuid.uuid4().hex[:6]}", "bridge": "br-pol", "cidr": "10.251.0.0/24"}}, token=admin)
    assert provider.status_code == 201, provider.text
    ids["network_id"] = provider.json["provider_network"]["id"]
    ids["server_id"] = str(uuid.uuid4())
    with api.services.db.write() as s:
        sn = networks_db.get_share_network(s, ids["share_network_id"], None)
        servers_db.create(s, now=utcnow(), id=ids["server_id"], share_network_id=sn.id,
                          share_network_subnet_id=ids["subnet_id"], project_id="proj-a",
                          backend="testhost@b1", host="testhost@b1", address="198.51.100.7",
                          allocation_id=None, is_auto_deletable=True)
        ids["message_id"] = messages_db.create(
            s, now=utcnow(), project_id="proj-a", resource_type="SHARE", resource_id=share["id"],
            action_id="002", detail_id="001", user_message="create failed", request_id="req-pol").id
    jobs = api.get("/v2/jobs", token=alice).json["jobs"]
    ids["job_id"] = jobs[0]["id"]
    return ids


def path_of(template: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: ids[m.group(1)], template)


def snapshot(api) -> dict[str, list[tuple]]:
    """Every row of every table (less the heartbeat columns)."""
    out = {}
    with api.services.db.read() as s:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if (table.name, c.name) not in VOLATILE]
            rows = s.execute(sa.select(*columns)).all()
            out[table.name] = sorted(tuple(map(repr, row)) for row in rows)
    return out


def attempts(route: Route) -> Iterator[tuple[str, dict, dict]]:
    """(label, JSON body, extra headers) for each request that exercises
    ``route``: one per action for an action route, else one plausible body."""
    if route.rule == PER_ACTION:
        for name, action in actions_of(route).items():
            headers = {EXPERIMENTAL_HEADER: "True"} if action.experimental else {}
            yield name, {name: {}}, headers
    else:
        yield route.responder, {"anything": {"name": "x"}}, {}


def send(api, route: Route, ids, token, body, headers, *, version=None):
    """At the first version the route exists at (404 with Manila's bare
    "could not be found" means not at this version)."""
    versions = (version,) if version else VERSIONS
    for ver in versions:
        result = api.request(route.method, path_of(route.template, ids), token=token, version=ver,
                             json_body=body if route.method != "DELETE" else None, headers=headers)
        if result.status_code != 404 or "could not be found" not in result.text:
            return result
    return result


def action_version(action) -> str:
    return action.high or MAX


def test_the_route_table_is_enumerated(api):
    found = list(routes(api.client.app))
    owners = {r.owner for r in found}
    # Spot checks that the walk sees what create_app registers.
    assert {("Shares", "on_post"), ("Share", "on_delete"), ("ShareActions", "on_post"),
            ("QuotaSets", "on_put"), ("JobActions", "on_post")} <= owners
    writes = [r for r in found if r.method in WRITE_METHODS]
    assert len(writes) > 30
    for r in found:
        assert r.rule == PER_ACTION or r.rule in policy.RULES, r


def test_a_reader_is_refused_every_write_route_and_nothing_changes(api, world, reader):
    before = snapshot(api)
    tried = 0
    for route in routes(api.client.app):
        if route.method not in WRITE_METHODS:
            continue
        for label, body, headers in attempts(route):
            version, rule = None, route.rule
            if route.rule == PER_ACTION:
                action = actions_of(route)[label]
                version, rule = action_version(action), action.rule
            result = send(api, route, world, reader, body, headers, version=version)
            if policy.check_of(rule) in (policy.ADMIN_OR_PROJECT_READER, policy.ANYONE):
                # A read that Manila spells as a POST (access_list before 2.45).
                assert result.status_code == 200, (route.template, label, result.text)
                continue
            expected = REFUSE_EVERYONE.get(route.owner, 403)
            assert result.status_code == expected, (route.template, route.method, label, result.text)
            if expected == 403:
                assert assert_fault(result, 403) == policy.MESSAGE.format(rule=rule), (route.template, label)
            tried += 1
    assert tried > 60
    assert snapshot(api) == before


def test_a_member_is_refused_every_admin_only_route(api, world):
    alice = api.tokens["alice"]
    before = snapshot(api)
    tried = 0
    for route in routes(api.client.app):
        if route.rule == PER_ACTION:
            cases = [(name, action.rule, {name: {}}, action_version(action),
                      {EXPERIMENTAL_HEADER: "True"} if action.experimental else {})
                     for name, action in actions_of(route).items()]
        else:
            cases = [(route.responder, route.rule, {"anything": {}}, None, {})]
        for label, rule, body, version, headers in cases:
            if policy.check_of(rule) is not policy.ADMIN:
                continue
            result = send(api, route, world, alice, body, headers, version=version)
            if route.owner in REFUSE_EVERYONE:
                assert result.status_code == REFUSE_EVERYONE[route.owner], (route.template, result.text)
                continue
            assert result.status_code == 403, (route.template, route.method, label, result.text)
            assert assert_fault(result, 403) == policy.MESSAGE.format(rule=rule), (route.template, label)
            tried += 1
    assert tried > 40
    assert snapshot(api) == before


def test_a_reader_reads_its_projects_resources(api, world, reader):
    share_id = world["share_id"]
    assert api.get(f"/v2/shares/{share_id}", token=reader).json["share"]["id"] == share_id
    assert share_id in [s["id"] for s in api.get("/v2/shares/detail", token=reader).json["shares"]]
    assert api.get(f"/v2/shares/{share_id}/export_locations", token=reader).json["export_locations"]
    assert api.get(f"/v2/shares/{share_id}/metadata", token=reader).json["metadata"] == {"color": "blue"}
    rules = api.get("/v2/share-access-rules", token=reader, params={"share_id": share_id}).json
    assert [r["id"] for r in rules["access_list"]] == [world["access_id"]]
    assert api.get(f"/v2/snapshots/{world['snapshot_id']}", token=reader).status_code == 200
    assert api.get(f"/v2/share-networks/{world['share_network_id']}", token=reader).status_code == 200
    assert api.get(f"/v2/security-services/{world['security_service_id']}", token=reader).status_code == 200
    assert api.get(f"/v2/types/{world['type_id']}", token=reader).status_code == 200  # private, with access
    assert api.get("/v2/quota-sets/proj-a", token=reader).status_code == 200
    assert api.get(f"/v2/messages/{world['message_id']}", token=reader).status_code == 200
    assert api.get(f"/v2/jobs/{world['job_id']}", token=reader).status_code == 200


def test_a_reader_passes_every_reader_rule_route(api, world, reader):
    """Every GET whose rule a project reader satisfies answers it (never 403)."""
    tried = 0
    for route in routes(api.client.app):
        if route.method != "GET" or policy.check_of(route.rule) is policy.ADMIN:
            continue
        result = send(api, route, world, reader, None, {EXPERIMENTAL_HEADER: "True"})
        assert result.status_code != 403, (route.template, result.text)
        tried += 1
    assert tried > 25


def test_a_reader_of_another_project_sees_nothing_of_proj_a(api, world):
    stranger = TokenFile(api.config.auth.tokens_file).issue("proj-b", "rob", role="reader")[0]
    assert_fault(api.get(f"/v2/shares/{world['share_id']}", token=stranger), 404)
    assert_fault(api.get("/v2/quota-sets/proj-a", token=stranger), 403)
    assert world["share_id"] not in [s["id"] for s in api.get("/v2/shares", token=stranger).json["shares"]]


def test_a_token_without_any_known_role_may_not_even_read(api, world):
    path = Path(api.config.auth.tokens_file)
    tokens = TokenFile(path)
    token, record = tokens.issue("proj-a", "legacy")
    data = json.loads(path.read_text())
    data[record.hash]["roles"] = ["_member_"]  # what old Keystones gave; Manila does not map it
    path.write_text(json.dumps(data))
    message = assert_fault(api.get(f"/v2/shares/{world['share_id']}", token=token), 403)
    assert message == "Policy doesn't allow share:get to be performed."
    assert api.get("/v2/limits", token=token).status_code == 200  # Manila polices no limits


def test_member_keeps_writing_and_admin_keeps_acting_everywhere(api, world):
    """The roles change nothing for the tokens that existed before them."""
    alice, admin = api.tokens["alice"], api.tokens["admin"]
    share_id = world["share_id"]
    assert api.put(f"/v2/shares/{share_id}", {"share": {"display_description": "d"}},
                   token=alice).status_code == 200
    result = api.post(f"/v2/shares/{share_id}/action", {"reset_status": {"status": states.AVAILABLE}},
                      token=admin)
    assert result.status_code == 202, result.text
