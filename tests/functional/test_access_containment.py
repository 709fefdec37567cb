"""Access rules on the real stack that the export server cannot take, and
manila-csi's default client.

A rule the export server refuses although it passed validation (injected
with the fault plan: what Ganesha 4.3 cannot read, such as an IPv6 network
longer than /99, is refused by the API with 400), sent at the same moment as
other tenants' valid rules, fails alone:
it ends ``error`` with a message saying why, the others end ``active`` and
are served over NFS, and no export but the one it was for is touched (and
that one keeps its client list). The issue's rule (an IPv6 scope id, which
used to stall the backend) is refused by the API before anything is stored.
"""

from __future__ import annotations

import threading

import pytest
from manilaclient import exceptions as mexc

from shareflow.db.models import AccessRule
from tests.fixtures.stack import wait_until
from tests.functional.lifecycle_helpers import Tenant, messages_for

#: The stack's [conductor] step_timeout (tests/fixtures/stack.py): the time a
#: change would have waited for a reload mark that never comes, or for a lock
#: held by such a change.
STEP_TIMEOUT = 30
#: The client the export server refuses in the containment test.
REFUSED = "2001:db8:bad::7"


@pytest.fixture
def tenants(faults):
    made = [Tenant(faults, name) for name in ("acl-bad", "acl-good1", "acl-good2")]
    try:
        yield made
    finally:
        for t in made:
            t.cleanup()


def rule_state(tenant, rule_id: str) -> str:
    return tenant.m.share_access_rules.get(rule_id).state


def test_manila_csi_default_client_lets_every_client_in(tenants):
    tenant = tenants[1]
    stack = tenant.stack
    share = tenant.create(1)
    export = tenant.export_path(share)
    rule = tenant.allow(share, "0.0.0.0/0", "rw")
    assert rule["access_to"] == "0.0.0.0/0"
    assert stack.nfs(0).put(f"{export}/csi.txt", b"from anywhere\n").returncode == 0
    for i in range(3):
        assert stack.nfs(i).cat(f"{export}/csi.txt").stdout == "from anywhere\n", stack.nfs(i)


def test_a_rule_the_export_server_cannot_take_fails_alone(tenants):
    bad, good1, good2 = tenants
    stack = bad.stack
    c0, c1, c2 = stack.nfs(0), stack.nfs(1), stack.nfs(2)
    bad_share, share1, share2 = bad.create(1), good1.create(1), good2.create(1)
    bad_export, export1, export2 = (t.export_path(s) for t, s in ((bad, bad_share), (good1, share1),
                                                                 (good2, share2)))
    kept = bad.allow(bad_share, c0, "rw")

    # The rule: 400 with Manila's message, nothing stored, no job.
    with pytest.raises(mexc.BadRequest) as e:
        bad.m.shares.allow(bad_share, "ip", "fe80::1%lo", "rw")
    assert "does not appear to be an IPv4 or IPv6 network" in str(e.value)
    assert [r.id for r in bad.m.share_access_rules.access_list(bad_share)] == [kept["id"]]

    # A network Ganesha 4.3 cannot read (an IPv6 prefix over /99): refused
    # with 400 before anything is stored, no longer an error on the server.
    with pytest.raises(mexc.BadRequest) as e:
        bad.m.shares.allow(bad_share, "ip", "2001:db8::/112", "rw")
    assert "the NFS server takes IPv6 prefixes up to /99" in str(e.value)
    assert [r.id for r in bad.m.share_access_rules.access_list(bad_share)] == [kept["id"]]

    # A rule that passes validation and that the export server still
    # refuses (the fault plan refuses every client list holding it), with
    # other tenants' valid rules, all sent at once.
    stack.set_faults({"update_access": {"fail_if_args_contain": f"'{REFUSED}'"}})
    calls = {
        "bad": lambda: bad.m.shares.allow(bad_share, "ip", REFUSED, "rw"),
        "good1": lambda: good1.m.shares.allow(share1, "ip", c1.address, "rw"),
        "good2": lambda: good2.m.shares.allow(share2, "ip", c2.address, "ro"),
        "good1-net": lambda: good1.m.shares.allow(share1, "ip", "192.0.2.0/24", "ro"),
    }
    rules: dict[str, dict] = {}
    barrier = threading.Barrier(len(calls))

    def send(name, call):
        barrier.wait()
        rules[name] = call()

    threads = [threading.Thread(target=send, args=item) for item in calls.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert set(rules) == set(calls)

    owners = {"bad": bad, "good1": good1, "good2": good2, "good1-net": good1}
    wait_until(lambda: all(rule_state(owners[n], r["id"]) in ("active", "error") for n, r in rules.items()),
               60, "every rule to settle")
    assert {n: rule_state(owners[n], r["id"]) for n, r in rules.items()} == {
        "bad": "error", "good1": "active", "good2": "active", "good1-net": "active"}

    # The failed rule says why; the share's other rule is still in force.
    assert bad.m.shares.get(bad_share.id).access_rules_status == "error"
    assert any("allow access: step 'apply_access' failed: injected fault at update_access"
               in m.user_message for m in messages_for(stack, bad_share.id))
    assert rule_state(bad, kept["id"]) == "active"
    assert c0.ls(bad_export).returncode == 0
    assert c1.ls(bad_export).returncode != 0
    backend = stack.backend()
    server = backend.server.server_for(bad_share.id)
    exports = backend.export.list_exports(server)
    assert [(r.access_to, r.access_level) for r in exports[bad_share.id]] == [(c0.address, "rw")]

    # The other tenants' rules are served.
    assert c1.put(f"{export1}/mine.txt", b"rw\n").returncode == 0
    assert c2.cat(f"{export1}/mine.txt").stdout == "rw\n"  # the /24 read-only rule
    assert c2.ls(export2).returncode == 0 and c0.ls(export2).returncode != 0

    # No change waited out a timeout: every rule settled well within one
    # (before this fix a refused file held the server's lock for all of it).
    with stack.db.read() as s:
        for r in rules.values():
            row = s.get(AccessRule, r["id"])
            assert (row.updated_at - row.created_at).total_seconds() < STEP_TIMEOUT, r
