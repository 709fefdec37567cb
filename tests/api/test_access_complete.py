"""Access rules, complete (issue 10 item 6), in process: rule metadata at
2.44 / 2.45 / 2.46, IPv6 rules as given, second rules for one client,
deny_access with malformed ids and of rules in ``error``."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shareflow.db.models import AccessRule, AccessRuleMetadata, Job
from tests.api.conftest import assert_fault

BELOW, AT, ABOVE = "2.44", "2.45", "2.46"


@pytest.fixture
def share(api) -> dict:
    share = api.create_share(token=api.tokens["alice"])
    api.set_share_status(share["id"], "available")
    return share


def allow(api, share_id, access_to, level="rw", metadata=None, **kw):
    info = {"access_type": "ip", "access_to": access_to, "access_level": level}
    if metadata is not None:
        info["metadata"] = metadata
    return api.post(f"/v2/shares/{share_id}/action", {"allow_access": info}, **kw)


def deny(api, share_id, access_id, **kw):
    return api.post(f"/v2/shares/{share_id}/action", {"deny_access": {"access_id": access_id}}, **kw)


def rule_metadata(api, rule_id) -> dict:
    with api.services.db.read() as s:
        return {m.key: m.value for m in s.scalars(
            sa.select(AccessRuleMetadata).where(AccessRuleMetadata.access_id == rule_id))}


def set_rule_state(api, rule_id, state) -> None:
    with api.services.db.write() as s:
        s.execute(sa.update(AccessRule).where(AccessRule.id == rule_id).values(state=state))


# --- metadata ------------------------------------------------------------------


def test_allow_with_metadata_from_2_45_ignored_before(api, share):
    old = allow(api, share["id"], "10.0.0.1", metadata={"k": "v"}, version=BELOW)
    assert old.status_code == 200 and "metadata" not in old.json["access"]
    assert rule_metadata(api, old.json["access"]["id"]) == {}
    for version, address in ((AT, "10.0.0.2"), (ABOVE, "10.0.0.3")):
        rule = allow(api, share["id"], address, metadata={"k": "v", "team": "a"}, version=version).json["access"]
        assert rule["metadata"] == {"k": "v", "team": "a"}
        assert rule_metadata(api, rule["id"]) == {"k": "v", "team": "a"}
        shown = api.get(f"/v2/share-access-rules/{rule['id']}", version=version).json["access"]
        assert shown["metadata"] == {"k": "v", "team": "a"}


@pytest.mark.parametrize(("metadata", "message"), [
    ("k=v", "Malformed request body"),
    ({"k": 1}, "Malformed request body"),
    ({"": "v"}, "Metadata property key is blank."),
    ({"k": ""}, "Metadata property value is blank."),
    ({"k" * 256: "v"}, "Metadata property key is greater than 255 characters."),
    ({"k": "v" * 1024}, "Metadata property value is greater than 1023 characters."),
])
def test_allow_with_bad_metadata_is_400_and_stores_nothing(api, share, metadata, message):
    before = api.count(AccessRule), api.count(Job), api.count(AccessRuleMetadata)
    assert assert_fault(allow(api, share["id"], "10.0.0.9", metadata=metadata, version=AT), 400) == message
    assert (api.count(AccessRule), api.count(Job), api.count(AccessRuleMetadata)) == before


def test_update_and_delete_rule_metadata(api, share):
    rule = allow(api, share["id"], "10.0.0.1", metadata={"a": "1", "b": "2"}, version=AT).json["access"]
    url = f"/v2/share-access-rules/{rule['id']}/metadata"
    # Not there below 2.45: Manila's 404 for a version a route does not exist at.
    assert_fault(api.put(url, {"metadata": {"c": "3"}}, version=BELOW), 404)
    assert_fault(api.delete(f"{url}/a", version=BELOW), 404)
    assert rule_metadata(api, rule["id"]) == {"a": "1", "b": "2"}

    for version in (AT, ABOVE):
        result = api.put(url, {"metadata": {"b": "20", "c": "3"}}, version=version)
        assert result.status_code == 200
        assert result.json == {"metadata": {"b": "20", "c": "3"}}  # the keys set, as Manila answers
    assert rule_metadata(api, rule["id"]) == {"a": "1", "b": "20", "c": "3"}

    gone = api.delete(f"{url}/a", version=AT)
    assert gone.status_code == 200 and gone.text == ""
    assert rule_metadata(api, rule["id"]) == {"b": "20", "c": "3"}
    message = assert_fault(api.delete(f"{url}/a", version=ABOVE), 404)
    assert message == "Share access rule metadata does not exist."
    shown = api.get(f"/v2/share-access-rules/{rule['id']}", version=ABOVE).json["access"]
    assert shown["metadata"] == {"b": "20", "c": "3"}


@pytest.mark.parametrize("body", [{}, {"meta": {"a": "b"}}, {"metadata": "a=b"}, {"metadata": None}, [], "x"])
def test_update_metadata_without_a_metadata_object_is_400(api, share, body):
    rule = allow(api, share["id"], "10.0.0.1", version=AT).json["access"]
    assert_fault(api.put(f"/v2/share-access-rules/{rule['id']}/metadata", body, version=AT), 400)
    assert rule_metadata(api, rule["id"]) == {}


def test_update_metadata_bad_values_are_400(api, share):
    rule = allow(api, share["id"], "10.0.0.1", version=AT).json["access"]
    url = f"/v2/share-access-rules/{rule['id']}/metadata"
    assert assert_fault(api.put(url, {"metadata": {"": "v"}}, version=AT), 400) == "Metadata property key is blank."
    assert assert_fault(api.put(url, {"metadata": {"k": 5}}, version=AT), 400) == "Malformed request body"
    assert rule_metadata(api, rule["id"]) == {}


def test_metadata_of_unknown_or_other_projects_rules_is_404(api, share):
    rule = allow(api, share["id"], "10.0.0.1", version=AT).json["access"]
    unknown = "00000000-0000-0000-0000-000000000000"
    for rule_id in (unknown, "not-a-uuid"):
        message = assert_fault(api.put(f"/v2/share-access-rules/{rule_id}/metadata", {"metadata": {"a": "b"}},
                                       version=AT), 404)
        assert message == f"Share access rule {rule_id} not found."
        assert_fault(api.delete(f"/v2/share-access-rules/{rule_id}/metadata/a", version=AT), 404)
    bob = api.tokens["bob"]
    assert_fault(api.put(f"/v2/share-access-rules/{rule['id']}/metadata", {"metadata": {"a": "b"}},
                         version=AT, token=bob), 404)
    assert_fault(api.get(f"/v2/share-access-rules/{unknown}", version=AT), 404)
    assert rule_metadata(api, rule["id"]) == {}


def test_list_filters_by_metadata(api, share):
    a = allow(api, share["id"], "10.0.0.1", metadata={"team": "a", "env": "prod"}, version=AT).json["access"]
    b = allow(api, share["id"], "10.0.0.2", metadata={"team": "b", "env": "prod"}, version=AT).json["access"]
    plain = allow(api, share["id"], "10.0.0.3", version=AT).json["access"]

    def listed(metadata, version=AT):
        params = {"share_id": share["id"]}
        if metadata is not None:
            params["metadata"] = metadata
        result = api.get("/v2/share-access-rules", params=params, version=version)
        return result, [r["id"] for r in result.json.get("access_list", [])]

    # python-manilaclient sends str(dict), Manila reads it with ast.literal_eval.
    assert listed("{'team': 'a'}")[1] == [a["id"]]
    assert listed(str({"env": "prod"}))[1] == [a["id"], b["id"]]
    assert listed("{'env': 'prod', 'team': 'b'}")[1] == [b["id"]]
    assert listed("{'team': 'z'}")[1] == []
    assert listed("{}")[1] == [a["id"], b["id"], plain["id"]]
    assert listed(None, ABOVE)[1] == [a["id"], b["id"], plain["id"]]
    for bad in ("team=a", "['a']", "{'a': 1}", "__import__('os')"):
        assert_fault(listed(bad)[0], 400)
    assert_fault(listed("{'team': 'a'}", BELOW)[0], 404)


def test_rule_views_show_metadata_from_2_45(api, share):
    rule = allow(api, share["id"], "10.0.0.1", metadata={"k": "v"}, version=AT).json["access"]
    old = api.post(f"/v2/shares/{share['id']}/action", {"access_list": None}, version=BELOW).json["access_list"]
    assert [r["id"] for r in old] == [rule["id"]] and "metadata" not in old[0]
    new = api.get("/v2/share-access-rules", params={"share_id": share["id"]}, version=AT).json["access_list"]
    assert new[0]["metadata"] == {"k": "v"}


# --- IPv6 and second rules ------------------------------------------------------------


@pytest.mark.parametrize("access_to", ["2001:0DB8:0:0:0:0:0:1", "AD80::ABAA:0:C2:2", "2001:DB8:1::/48",
                                       "2001:db8::/99", "2001:db8::1/128", "::ffff:192.0.2.10"])
def test_ipv6_rules_are_stored_and_shown_as_given(api, share, access_to):
    rule = allow(api, share["id"], access_to).json["access"]
    assert rule["access_to"] == access_to
    assert api.get(f"/v2/share-access-rules/{rule['id']}").json["access"]["access_to"] == access_to


@pytest.mark.parametrize("access_to", ["2001:db8::/100", "2001:db8::/112", "fd00::/127"])
def test_ipv6_networks_the_export_server_cannot_read_are_400(api, share, access_to):
    before = api.count(AccessRule), api.count(Job)
    message = assert_fault(allow(api, share["id"], access_to), 400)
    assert message.startswith(f"IPv6 network {access_to} cannot be exported") and "/99" in message
    assert (api.count(AccessRule), api.count(Job)) == before
    assert api.get(f"/v2/shares/{share['id']}").json["share"]["access_rules_status"] == "active"


@pytest.mark.parametrize(("first", "second"), [
    ("10.0.0.1", "10.0.0.1"),
    ("10.0.0.1", "10.0.0.1/32"),
    ("2001:db8::1", "2001:0DB8::0:1"),
    ("2001:DB8::/64", "2001:db8:0::/64"),
])
def test_a_second_rule_for_the_same_client_is_manilas_400(api, share, first, second):
    allow(api, share["id"], first)
    before = api.count(AccessRule), api.count(Job)
    message = assert_fault(allow(api, share["id"], second, level="ro"), 400, "badRequest")
    assert message == f"Share access ip:{second} exists."
    assert (api.count(AccessRule), api.count(Job)) == before


# --- deny -------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["2.6", "2.7", BELOW, AT])
def test_deny_with_a_malformed_id_is_404(api, share, version):
    name = "os-deny_access" if version == "2.6" else "deny_access"
    for bad in ("not-a-uuid", "1234", "00000000-0000-0000-0000-00000000000g"):
        result = api.post(f"/v2/shares/{share['id']}/action", {name: {"access_id": bad}}, version=version)
        assert assert_fault(result, 404, "itemNotFound") == "Resource could not be found."


def test_a_rule_of_another_share_is_404_to_deny(api, share):
    other = api.create_share(token=api.tokens["alice"])
    api.set_share_status(other["id"], "available")
    rule = allow(api, other["id"], "10.0.0.1").json["access"]
    assert_fault(deny(api, share["id"], rule["id"]), 404)
    assert api.get(f"/v2/share-access-rules/{rule['id']}").json["access"]["state"] == "queued_to_apply"


def test_a_rule_in_error_can_be_denied(api, share):
    rule = allow(api, share["id"], "2001:db8::5").json["access"]
    set_rule_state(api, rule["id"], "error")
    result = deny(api, share["id"], rule["id"])
    assert result.status_code == 202 and result.text == ""
    assert api.get(f"/v2/share-access-rules/{rule['id']}").json["access"]["state"] == "queued_to_deny"
    assert api.count(Job, resource_id=rule["id"]) == 2  # the allow's, then the deny's
