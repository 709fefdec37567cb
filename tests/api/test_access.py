"""Share actions (allow/deny/list access) and ``/share-access-rules``."""

from __future__ import annotations

import pytest

from shareflow.db.models import AccessRule, Job
from tests.api.conftest import assert_fault


@pytest.fixture
def share(api) -> dict:
    share = api.create_share(token=api.tokens["alice"])
    api.set_share_status(share["id"], "available")
    return share


def action(api, share_id, body, **kw):
    return api.post(f"/v2/shares/{share_id}/action", body, **kw)


def allow(api, share_id, access_to="10.0.0.0/24", level="rw", **kw):
    return action(api, share_id, {"allow_access": {"access_type": "ip", "access_to": access_to,
                                                   "access_level": level}}, **kw)


def test_allow_list_deny(api, share):
    result = allow(api, share["id"], "10.0.0.0/24")
    assert result.status_code == 200
    rule = result.json["access"]
    assert rule["access_to"] == "10.0.0.0/24" and rule["access_level"] == "rw"
    assert rule["state"] == "queued_to_apply" and rule["share_id"] == share["id"]
    assert rule["metadata"] == {} and rule["access_key"] is None and rule["created_at"]
    assert api.get(f"/v2/shares/{share['id']}").json["share"]["access_rules_status"] == "syncing"
    assert api.count(Job, resource_id=rule["id"]) == 1

    listed = api.get("/v2/share-access-rules", params={"share_id": share["id"]}).json["access_list"]
    assert [r["id"] for r in listed] == [rule["id"]]
    shown = api.get(f"/v2/share-access-rules/{rule['id']}").json["access"]
    assert shown["share_id"] == share["id"]
    # access_list action: 2.7 - 2.44
    old = action(api, share["id"], {"access_list": None}, version="2.44").json["access_list"]
    assert [r["id"] for r in old] == [rule["id"]]

    result = action(api, share["id"], {"deny_access": {"access_id": rule["id"]}})
    assert result.status_code == 202 and result.text == ""
    assert api.get(f"/v2/share-access-rules/{rule['id']}").json["access"]["state"] == "queued_to_deny"
    # Denying it again while that job waits is a conflict.
    assert_fault(action(api, share["id"], {"deny_access": {"access_id": rule["id"]}}), 409)


def test_legacy_names_and_states(api, share):
    result = action(api, share["id"], {"os-allow_access": {"access_type": "ip", "access_to": "10.1.1.1"}},
                    version="2.6")
    rule = result.json["access"]
    # Before 2.28 a rule shows its share's rules status: syncing is "new".
    assert rule["state"] == "new" and rule["access_level"] == "rw"
    assert set(rule) == {"id", "share_id", "access_level", "access_to", "access_type", "state"}
    listed = action(api, share["id"], {"os-access_list": None}, version="2.0").json["access_list"]
    assert [r["id"] for r in listed] == [rule["id"]]
    # Each name only in its own range; out of range the route does not exist.
    assert_fault(action(api, share["id"], {"allow_access": {"access_type": "ip", "access_to": "10.1.1.2"}},
                        version="2.6"), 404)
    assert_fault(action(api, share["id"], {"os-allow_access": {"access_type": "ip", "access_to": "10.1.1.2"}},
                        version="2.7"), 404)
    assert_fault(action(api, share["id"], {"access_list": None}, version="2.45"), 404)
    assert_fault(api.get("/v2/share-access-rules", params={"share_id": share["id"]}, version="2.44"), 404)


@pytest.mark.parametrize("body", [
    {"allow_access": {"access_type": "ip", "access_to": "10.0.0.300"}},
    {"allow_access": {"access_type": "ip", "access_to": "not-an-ip"}},
    {"allow_access": {"access_type": "ip", "access_to": "10.0.0.1; rm -rf /"}},
    {"allow_access": {"access_type": "ip", "access_to": " 10.0.0.1"}},
    {"allow_access": {"access_type": "ip", "access_to": "fe80::1%lo"}},
    {"allow_access": {"access_type": "ip", "access_to": "fe80::1%x,*"}},
    {"allow_access": {"access_type": "ip", "access_to": "10.0.0.7/24"}},
    {"allow_access": {"access_type": "ip", "access_to": ["10.0.0.1"]}},
    {"allow_access": {"access_type": "ip", "access_to": 167772161}},
    {"allow_access": {"access_type": "ip", "access_to": "10.0.0.1", "access_level": "rx"}},
    {"allow_access": {"access_type": "ip", "access_to": "10.0.0.1", "access_level": 1}},
    {"allow_access": {"access_type": "user", "access_to": "alice"}},
    {"allow_access": {"access_type": "cephx", "access_to": "alice"}},
    {"allow_access": {"access_type": "bogus", "access_to": "10.0.0.1"}},
    {"allow_access": {"access_type": "ip"}},
    {"allow_access": {"access_to": "10.0.0.1"}},
    {"allow_access": "10.0.0.1"},
    {"allow_access": None},
    {"allow_access": {"access_type": "ip", "access_to": "10.0.0.1"}, "deny_access": {}},
    {"fly_away": {}},
    {"extend": {"new_size": "two"}},
    {},
    [],
    "allow_access",
])
def test_bad_access_requests_are_400_and_change_nothing(api, share, body):
    before_rules, before_jobs = api.count(AccessRule), api.count(Job)
    assert_fault(action(api, share["id"], body), 400, "badRequest")
    assert api.count(AccessRule) == before_rules and api.count(Job) == before_jobs
    assert api.get(f"/v2/shares/{share['id']}").json["share"]["access_rules_status"] == "active"


def test_ipv6_rules_need_2_38(api, share):
    message = assert_fault(allow(api, share["id"], "fd00::/64", version="2.37"), 400)
    assert message == "Expected 4 octets in 'fd00::'"  # Manila's (IPv4Network's) words
    assert allow(api, share["id"], "fd00::/64", version="2.38").json["access"]["access_to"] == "fd00::/64"


@pytest.mark.parametrize("access_to,message", [
    ("fe80::1%lo", "'fe80::1%lo' does not appear to be an IPv4 or IPv6 network"),
    ("fe80::1%x,*", "'fe80::1%x,*' does not appear to be an IPv4 or IPv6 network"),
    ("10.0.0.7/24", "10.0.0.7/24 has host bits set"),
    ("10.0.0.1; rm -rf /", "'10.0.0.1; rm -rf /' does not appear to be an IPv4 or IPv6 network"),
])
def test_bad_ip_rules_get_manilas_message(api, share, access_to, message):
    assert assert_fault(allow(api, share["id"], access_to), 400, "badRequest") == message
    assert api.count(AccessRule, share_id=share["id"]) == 0


@pytest.mark.parametrize("access_to", ["0.0.0.0/0", "::/0", "0.0.0.0", "255.255.255.255", "::"])
def test_what_manila_accepts_is_accepted(api, share, access_to):
    # 0.0.0.0/0 is manila-csi's default client: it must be a rule like any other.
    rule = allow(api, share["id"], access_to).json["access"]
    assert rule["access_to"] == access_to and rule["state"] == "queued_to_apply"


def test_existing_rule_is_400(api, share):
    allow(api, share["id"], "10.9.9.9")
    message = assert_fault(allow(api, share["id"], "10.9.9.9/32"), 400)
    assert "exists" in message
    assert api.count(AccessRule, share_id=share["id"]) == 1


def test_access_on_a_share_that_is_not_available_is_400(api):
    creating = api.create_share(token=api.tokens["alice"])
    assert_fault(allow(api, creating["id"]), 400)
    assert api.count(AccessRule, share_id=creating["id"]) == 0
    # As Manila, the rule is looked up first: an id that is no rule is 404 whatever the share's status.
    assert_fault(action(api, creating["id"], {"deny_access": {"access_id": creating["id"]}}), 404)


def test_deny_unknown_rule(api, share):
    assert_fault(action(api, share["id"], {"deny_access": {"access_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12}}), 404)
    # A malformed id names no rule: Manila's 404 (its lookup finds nothing), not a 400.
    for malformed in ("not-a-uuid", "", "x" * 300, "0" * 32 + "g"):
        message = assert_fault(action(api, share["id"], {"deny_access": {"access_id": malformed}}), 404,
                               "itemNotFound")
        assert message == "Resource could not be found."
    assert_fault(action(api, share["id"], {"deny_access": {}}), 400)
    # Not even text: a bad body.
    for wrong_type in (42, None, ["a"], {"id": "x"}, True):
        assert_fault(action(api, share["id"], {"deny_access": {"access_id": wrong_type}}), 400)


def test_rules_of_other_projects(api, share):
    rule = allow(api, share["id"], "10.2.2.2").json["access"]
    bob = api.tokens["bob"]
    assert_fault(api.get(f"/v2/share-access-rules/{rule['id']}", token=bob), 404)
    message = assert_fault(api.get("/v2/share-access-rules", params={"share_id": share["id"]}, token=bob), 400)
    assert share["id"] in message
    assert_fault(api.get("/v2/share-access-rules"), 400)
    assert_fault(allow(api, share["id"], "10.3.3.3", token=bob), 404)
    assert_fault(action(api, share["id"], {"deny_access": {"access_id": rule["id"]}}, token=bob), 404)
    admin_view = api.get(f"/v2/share-access-rules/{rule['id']}", token=api.tokens["admin"])
    assert admin_view.json["access"]["id"] == rule["id"]
