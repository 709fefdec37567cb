"""Access rules on the real stack through python-manilaclient, unmodified:
IPv6 rules stored as given and written to the export server in its
spelling, rule metadata (2.45), a rule the export server refuses failing
alone (every other rule and export exactly as it was), and a rule in
``error`` denied and allowed again.

The stack's NFS-Ganesha listens on its IPv4 address only (one ``Bind_addr``
per server), so its IPv6 rules are checked in the export it writes; an IPv6
client served by such rules over NFS is in
tests/functional/drivers/test_ganesha_ipv6.py.
"""

from __future__ import annotations

import pytest
from manilaclient import exceptions as mexc

from shareflow.drivers.export import ganesha_config as gc
from shareflow.drivers.export.ganesha import export_file
from tests.fixtures.stack import wait_until
from tests.functional.lifecycle_helpers import Tenant, messages_for

#: The first microversion with rule metadata.
METADATA_VERSION = "2.45"
#: A client the test's export server "refuses" (fault plan), and only it.
REFUSED = "2001:db8:f00d::5"


@pytest.fixture
def tenants(faults):
    made = [Tenant(faults, name) for name in ("acl-one", "acl-two")]
    try:
        yield made
    finally:
        for t in made:
            t.cleanup()


def settled(tenant, rule_id: str) -> str:
    wait_until(lambda: tenant.m.share_access_rules.get(rule_id).state in ("active", "error"), 60,
               f"rule {rule_id} to settle")
    return tenant.m.share_access_rules.get(rule_id).state


def export_text(stack, share_id: str) -> str:
    backend = stack.backend()
    server = backend.server.server_for(share_id)
    return export_file(backend.export._server(server), share_id).read_text()


def export_clients(stack, share_id: str) -> list[tuple[str, str]]:
    backend = stack.backend()
    exports = backend.export.list_exports(backend.server.server_for(share_id))
    return sorted((c.access_to, c.access_level) for c in exports[share_id])


def test_ipv6_rules_are_stored_as_given_and_exported_normalised(tenants):
    tenant = tenants[0]
    stack = tenant.stack
    share = tenant.create(1)
    given = {"2001:0DB8:0:0:0:0:0:1": "2001:db8::1", "AD80::ABAA:0:C2:2": "ad80::abaa:0:c2:2",
             "2001:DB8:1::/48": "2001:db8:1::/48", "fd00::/99": "fd00::/99", "::1": "::1"}
    rules = {a: tenant.m.shares.allow(share, "ip", a, "rw") for a in given}
    assert {a: r["access_to"] for a, r in rules.items()} == {a: a for a in given}  # as given, like Manila
    assert {a: settled(tenant, r["id"]) for a, r in rules.items()} == {a: "active" for a in given}
    assert export_clients(stack, share.id) == sorted((n, "rw") for n in given.values())
    text = export_text(stack, share.id)
    for normalised in given.values():
        assert f"Clients = {normalised};" in text

    # The same client in another spelling is the same rule: Manila's 400.
    with pytest.raises(mexc.BadRequest) as e:
        tenant.m.shares.allow(share, "ip", "2001:db8::0:1", "ro")
    assert "Share access ip:2001:db8::0:1 exists." in str(e.value)
    # A network the export server cannot read is refused before it is stored.
    with pytest.raises(mexc.BadRequest) as e:
        tenant.m.shares.allow(share, "ip", "2001:db8::/112", "rw")
    assert "up to /99" in str(e.value)
    assert len(tenant.m.share_access_rules.access_list(share)) == len(given)


def test_rule_metadata_through_manilaclient(tenants):
    tenant = tenants[0]
    m = tenant.stack.manila(tenant.stack.token(tenant.project), version=METADATA_VERSION)
    share = tenant.create(1)
    rule = m.shares.allow(share, "ip", "192.0.2.10", "rw", metadata={"purpose": "backup", "team": "a"})
    assert rule["metadata"] == {"purpose": "backup", "team": "a"}
    other = m.shares.allow(share, "ip", "fd00::/64", "ro", metadata={"team": "b"})
    assert settled(tenant, rule["id"]) == "active" and settled(tenant, other["id"]) == "active"

    assert m.share_access_rules.set_metadata(rule["id"], {"team": "c", "zone": "1"})
    assert m.share_access_rules.get(rule["id"]).metadata == {"purpose": "backup", "team": "c", "zone": "1"}
    m.share_access_rules.unset_metadata(rule["id"], ["purpose", "zone"])
    assert m.share_access_rules.get(rule["id"]).metadata == {"team": "c"}
    with pytest.raises(mexc.NotFound):
        m.share_access_rules.unset_metadata(rule["id"], ["purpose"])

    by_team = {t: [r.id for r in m.share_access_rules.access_list(share, {"metadata": {"team": t}})]
               for t in ("b", "c", "z")}
    assert by_team == {"b": [other["id"]], "c": [rule["id"]], "z": []}
    # Metadata changes are bookkeeping: the export is as the rules say.
    assert export_clients(tenant.stack, share.id) == [("192.0.2.10", "rw"), ("fd00::/64", "ro")]


def test_a_rule_the_export_server_refuses_fails_alone(tenants):
    one, two = tenants
    stack = one.stack
    c0, c1 = stack.nfs(0), stack.nfs(1)
    share, other = one.create(1), two.create(1)
    path, other_path = one.export_path(share), two.export_path(other)
    kept = one.allow(share, c0, "rw")
    kept_v6 = one.allow(share, "fd00::/64", "ro")
    other_rule = two.allow(other, c1, "rw")
    before = {s: export_text(stack, s) for s in (share.id, other.id)}

    # The export server takes every client list but those holding REFUSED.
    stack.set_faults({"update_access": {"fail_if_args_contain": f"'{REFUSED}'"}})
    bad = one.m.shares.allow(share, "ip", REFUSED, "rw")
    assert settled(one, bad["id"]) == "error"
    assert any("injected fault at update_access" in m.user_message for m in messages_for(stack, share.id))
    assert one.m.shares.get(share.id).access_rules_status == "error"
    # Only that rule failed: the others are active, both exports are exactly as they were.
    assert [settled(one, r["id"]) for r in (kept, kept_v6)] == ["active", "active"]
    assert settled(two, other_rule["id"]) == "active"
    assert {s: export_text(stack, s) for s in (share.id, other.id)} == before
    assert c0.ls(path).returncode == 0 and c1.ls(other_path).returncode == 0
    assert c1.ls(path).returncode != 0
    # The server takes other changes meanwhile.
    more = two.allow(other, c0, "ro")
    assert settled(two, more["id"]) == "active" and c0.ls(other_path).returncode == 0

    # The rule in error can be denied; it is gone, and the address can be allowed again.
    one.m.shares.deny(share, bad["id"])
    wait_until(lambda: bad["id"] not in {r.id for r in one.m.share_access_rules.access_list(share)}, 60,
               "the failed rule to be gone")
    with pytest.raises(mexc.NotFound):
        one.m.share_access_rules.get(bad["id"])
    assert one.m.shares.get(share.id).access_rules_status == "active"
    assert gc.parse_export_file(export_text(stack, share.id)) == gc.parse_export_file(before[share.id])
    stack.clear_faults()
    again = one.allow(share, REFUSED, "rw")
    assert again["id"] != bad["id"]
    assert (REFUSED, "rw") in export_clients(stack, share.id)
    assert c0.ls(path).returncode == 0


def test_deny_with_a_malformed_id_is_404(tenants):
    tenant = tenants[0]
    share = tenant.create(1)
    for bad_id in ("not-a-uuid", "1234"):
        with pytest.raises(mexc.NotFound):
            tenant.m.shares.deny(share, bad_id)
