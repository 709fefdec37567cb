import pytest
from tests.fixtures.stack import wait_until
from tests.functional.lifecycle_helpers import Tenant, messages_for

@pytest.fixture
def tenant(faults):
    t = Tenant(faults, "v6")
    try:
        yield t
    finally:
        t.cleanup()

def test_v6(tenant):
    share = tenant.create(1)
    rules = {}
    for a in ["2001:db8::1", "AD80::ABAA:0:C2:2", "2001:DB8:1::/48", "fd00::/64", "::1", "::ffff:192.0.2.10", "2001:db8::/99"]:
        try:
            rules[a] = tenant.m.shares.allow(share, "ip", a, "rw")
        except Exception as e:
            print("REFUSED", a, e)
    wait_until(lambda: all(tenant.m.share_access_rules.get(r["id"]).state in ("active", "error") for r in rules.values()), 60, "settle")
    for a, r in rules.items():
        print(a, r["access_to"], tenant.m.share_access_rules.get(r["id"]).state)
    for m in messages_for(tenant.stack, share.id):
        print("MSG", m.user_message)
    print(tenant.stack.log("pool")[-3000:] if hasattr(tenant.stack, "log") else "")
    assert 0
