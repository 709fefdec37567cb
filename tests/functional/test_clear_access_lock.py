"""A delete's ``clear_access`` step on the real stack takes the share's
ZooKeeper lock only when the share has live access rules (an access job
could then still be writing its client list): a share without rules is
deleted while its lock is held elsewhere, one with a rule waits in
``clear_access`` for the lock and is deleted once it is released."""

from __future__ import annotations

from shareflow.engine.locks import ResourceLocks
from shareflow.engine.zk import start_client, stop_client
from tests.fixtures.stack import wait_until
from tests.functional.lifecycle_helpers import Tenant


def test_only_a_share_with_rules_waits_for_its_lock_to_be_cleared(stack):
    tenant = Tenant(stack, "clear-lock")
    client = start_client(stack.config.zookeeper)
    try:
        bare = tenant.create(1)
        ruled = tenant.create(1)
        tenant.allow(ruled, "192.0.2.7", "ro")
        locks = ResourceLocks(client, stack.config.zookeeper.chroot, timeout=10)
        with locks.hold("share", bare.id), locks.hold("share", ruled.id):
            tenant.m.shares.delete(ruled)
            tenant.m.shares.delete(bare)
            wait_until(lambda: stack.share_row(bare.id).deleted_at is not None, 30, "the bare share to go")
            stack.job_inside(ruled.id, "delete_share", "clear_access")
            assert stack.share_row(ruled.id).deleted_at is None
        wait_until(lambda: stack.share_row(ruled.id).deleted_at is not None, 30, "the share with a rule to go")
        assert stack.finished_job(ruled.id, "delete_share").state == "succeeded"
        assert stack.finished_job(bare.id, "delete_share").state == "succeeded"
        assert ruled.id not in stack.exports_text() and bare.id not in stack.exports_text()
    finally:
        stop_client(client)
        tenant.cleanup()
