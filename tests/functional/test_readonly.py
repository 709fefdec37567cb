"""Read-only access on the real stack, through python-manilaclient: an ``ro``
rule lets its client read and refuses its writes over NFS (NFS4ERR_ROFS),
``rw`` and ``ro`` rules for different clients coexist on one share, and rule
states and the share's ``access_rules_status`` are Manila's throughout."""

from __future__ import annotations

import pytest
from manilaclient import exceptions as mexc

from tests.fixtures.stack import wait_until
from tests.functional.lifecycle_helpers import Tenant, volume_dir


@pytest.fixture
def tenant(faults):
    t = Tenant(faults, "ro")
    try:
        yield t
    finally:
        t.cleanup()


def refused_read_only(result) -> bool:
    return result.returncode != 0 and "NFS4ERR_ROFS" in result.stdout + result.stderr


def test_ro_and_rw_clients_coexist_on_one_share(tenant):
    stack, m = tenant.stack, tenant.m
    share = tenant.create(1)
    export = tenant.export_path(share)
    writer, reader, stranger = stack.nfs(0), stack.nfs(1), stack.nfs(2)

    rw = m.shares.allow(share, "ip", writer.address, "rw")
    ro = m.shares.allow(share, "ip", reader.address, "ro")
    assert rw["access_level"] == "rw" and ro["access_level"] == "ro"
    assert {rw["state"], ro["state"]} <= {"queued_to_apply", "applying", "active"}
    for rule in (rw, ro):
        wait_until(lambda r=rule: m.share_access_rules.get(r["id"]).state == "active", 30, "the rules to apply")
    assert m.shares.get(share.id).access_rules_status == "active"
    listed = {r.access_to: (r.access_level, r.state) for r in m.share_access_rules.access_list(share)}
    assert listed == {writer.address: ("rw", "active"), reader.address: ("ro", "active")}

    assert writer.put(f"{export}/shared.txt", b"written by the rw client\n").returncode == 0
    # The ro client reads what the rw client wrote ...
    assert reader.cat(f"{export}/shared.txt").stdout == "written by the rw client\n"
    assert "shared.txt" in reader.ls(export).stdout
    # ... and may not write, neither a new file nor over an existing one.
    assert refused_read_only(reader.put(f"{export}/from-reader.txt", b"no\n"))
    assert refused_read_only(reader.put(f"{export}/shared.txt", b"overwritten\n"))
    assert not (volume_dir(stack, share.id) / "from-reader.txt").exists()
    assert writer.cat(f"{export}/shared.txt").stdout == "written by the rw client\n"
    # A client with no rule gets nothing at all.
    refused = stranger.ls(export)
    assert refused.returncode != 0 and "NFS4ERR_NOENT" in refused.stdout + refused.stderr

    # Denying the ro rule shuts its client out and leaves the rw client as it was.
    m.shares.deny(share, ro["id"])
    wait_until(lambda: [r.id for r in m.share_access_rules.access_list(share)] == [rw["id"]], 30,
               "the ro rule to go")
    assert m.shares.get(share.id).access_rules_status == "active"
    gone = reader.cat(f"{export}/shared.txt")
    assert gone.returncode != 0 and "NFS4ERR_NOENT" in gone.stdout + gone.stderr
    assert writer.put(f"{export}/after-deny.txt", b"still writing\n").returncode == 0


def test_a_network_may_write_while_one_of_its_hosts_only_reads(tenant):
    stack = tenant.stack
    share = tenant.create(1)
    export = tenant.export_path(share)
    writer, reader = stack.nfs(0), stack.nfs(1)
    tenant.allow(share, reader, "ro")
    tenant.allow(share, "192.0.2.0/24", "rw")
    assert writer.put(f"{export}/net.txt", b"from the network\n").returncode == 0
    # The more specific ro rule wins for its host.
    assert reader.cat(f"{export}/net.txt").stdout == "from the network\n"
    assert refused_read_only(reader.put(f"{export}/net.txt", b"no\n"))


def test_an_ro_rule_becomes_rw_by_deny_and_allow(tenant):
    stack, m = tenant.stack, tenant.m
    share = tenant.create(1)
    export = tenant.export_path(share)
    client = stack.nfs(1)
    ro = tenant.allow(share, client, "ro")
    assert refused_read_only(client.put(f"{export}/x.txt", b"x\n"))
    # Manila: one rule per client; a second one for the same address is refused.
    with pytest.raises(mexc.BadRequest):
        m.shares.allow(share, "ip", client.address, "rw")
    m.shares.deny(share, ro["id"])
    wait_until(lambda: not m.share_access_rules.access_list(share), 30, "the ro rule to go")
    tenant.allow(share, client, "rw")
    assert client.put(f"{export}/x.txt", b"x\n").returncode == 0
    assert client.cat(f"{export}/x.txt").stdout == "x\n"
