"""The walking skeleton's user story, end to end on the real stack, through the
unmodified python-manilaclient: create a 1 GiB share, allow an address, read
and write over NFS from it, be refused past the size, deny and be refused,
delete, and find nothing left on the backend."""

from __future__ import annotations

import pytest
from manilaclient import exceptions as mexc

from shareflow.drivers.export.ganesha_config import pseudo_path
from shareflow.system import btrfs
from tests.fixtures.stack import wait_until
from tests.functional.lifecycle_helpers import SMALL, fill_to_limit, subvolume, volume_dir

GiB = 1 << 30


def wait_rule(m, rule_id: str, state: str, timeout: float = 30):
    def check():
        rule = m.share_access_rules.get(rule_id)
        return rule if rule.state == state else None

    return wait_until(check, timeout, f"access rule {rule_id} to become {state}")


def assert_nothing_left(stack, share_id: str) -> None:
    backend = stack.backend()
    server = backend.server.server_for(share_id)
    assert share_id not in backend.share.list_volumes()
    assert share_id not in backend.export.list_exports(server)
    exports_conf = stack.exports_text()
    assert share_id not in exports_conf
    assert not (stack.btrfs.exports_dir / share_id).exists()
    with open("/proc/self/mountinfo") as f:
        assert share_id not in f.read()


def test_share_lifecycle_over_nfs(stack):
    m = stack.manila(stack.token("tenant-a"))
    share = m.shares.create("NFS", 1, name="story", description="walking skeleton")
    assert share.status == "creating"
    share = stack.wait_for_share(m, share.id, {"available", "error"})
    assert share.status == "available", stack.log("pool")[-3000:]
    assert share.size == 1 and share.share_proto == "NFS" and share.name == "story"

    locations = m.share_export_locations.list(share)
    assert [loc.path for loc in locations] == [f"{stack.network.server_address}:{pseudo_path(share.id)}"]
    export = locations[0].path.split(":", 1)[1]
    allowed, other = stack.nfs(0), stack.nfs(1)

    # Nobody may mount a share before a rule allows it.
    assert allowed.ls(export).returncode != 0

    rule = m.shares.allow(share, "ip", allowed.address, "rw")
    assert rule["state"] in ("queued_to_apply", "applying", "active")
    wait_rule(m, rule["id"], "active")
    assert m.shares.get(share.id).access_rules_status == "active"

    put = allowed.put(f"{export}/hello.txt", b"hello from the allowed client\n")
    assert put.returncode == 0, put.stderr
    cat = allowed.cat(f"{export}/hello.txt")
    assert cat.returncode == 0 and cat.stdout == "hello from the allowed client\n"
    assert "hello.txt" in allowed.ls(export).stdout

    refused = other.ls(export)
    assert refused.returncode != 0 and "NFS4ERR" in refused.stderr + refused.stdout

    # The share's size is a hard limit. The test's NFS client writes at most
    # NFS_WRITE_MAX bytes per file, so the share is filled up to its limit on
    # the storage host first; then a small write over NFS is refused.
    assert allowed.put(f"{export}/fits.bin", b"x" * SMALL).returncode == 0
    fill_to_limit(stack, share.id)
    over = allowed.put(f"{export}/over.bin", b"y" * SMALL)
    assert over.returncode != 0, "a write past the share's size was accepted"
    group = btrfs.subvolume_qgroup(subvolume(stack, share.id), timeout=10)
    assert group.max_referenced == GiB and group.referenced <= GiB
    assert allowed.cat(f"{export}/hello.txt").stdout == "hello from the allowed client\n"
    (volume_dir(stack, share.id) / "fill").unlink()

    m.shares.deny(share, rule["id"])
    wait_until(lambda: not m.share_access_rules.access_list(share), 30, "the rule to be gone")
    after_deny = allowed.ls(export)
    assert after_deny.returncode != 0 and "NFS4ERR_NOENT" in after_deny.stderr + after_deny.stdout

    m.shares.delete(share)

    def gone():
        try:
            m.shares.get(share.id)
        except mexc.NotFound:
            return True
        return False

    wait_until(gone, 30, "the share to be deleted")
    assert_nothing_left(stack, share.id)


def test_tenants_are_isolated(stack):
    a = stack.manila(stack.token("tenant-iso-a"))
    b = stack.manila(stack.token("tenant-iso-b"))
    share = a.shares.create("NFS", 1, name="mine")
    stack.wait_for_share(a, share.id, {"available"})
    assert share.id not in [s.id for s in b.shares.list()]
    with pytest.raises(mexc.NotFound):
        b.shares.get(share.id)
    with pytest.raises(mexc.NotFound):
        b.shares.allow(share.id, "ip", "192.0.2.99", "rw")
    with pytest.raises(mexc.NotFound):
        b.shares.delete(share.id)
    assert a.shares.get(share.id).status == "available"
    a.shares.delete(share)
    wait_until(lambda: share.id not in [s.id for s in a.shares.list()], 30, "the share to be deleted")
