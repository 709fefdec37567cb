"""A share's access steps and a delete's ``clear_access`` hold the share's
lock, one between the processes of its host (``shareflow.engine.locks``):
no ZooKeeper round trip, the same exclusion - every job of a share runs on
the host of its backend. Checked on the real stack: a step waits while the
lock is held elsewhere and goes on once it is released; access jobs on one
share at once all end in the export's client list; the lock's file goes
with the share."""

from __future__ import annotations

import threading

from shareflow.engine.locks import HostLocks
from tests.fixtures.stack import wait_until
from tests.functional.lifecycle_helpers import Tenant


def share_locks(stack) -> HostLocks:
    """The locks the stack's conductors take (their state directory's)."""
    return HostLocks(stack.config.state_dir / "locks", timeout=10)


def test_access_and_delete_wait_for_the_shares_lock(stack):
    tenant = Tenant(stack, "share-lock")
    try:
        share = tenant.create(1)
        locks = share_locks(stack)
        with locks.hold("share", share.id):
            rule = tenant.m.shares.allow(share, "ip", "192.0.2.7", "ro")
            stack.job_inside(rule["id"], "allow_access", "apply_access")
            assert tenant.m.share_access_rules.get(rule["id"]).state != "active"
        wait_until(lambda: tenant.m.share_access_rules.get(rule["id"]).state == "active", 30,
                   "the rule to become active once the lock is released")
        assert "192.0.2.7" in stack.exports_text()

        lock_file = locks.path("share", share.id)
        with locks.hold("share", share.id):
            tenant.m.shares.delete(share)
            stack.job_inside(share.id, "delete_share", "clear_access")
            assert stack.share_row(share.id).deleted_at is None
        wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to go")
        assert stack.finished_job(share.id, "delete_share").state == "succeeded"
        assert share.id not in stack.exports_text()
        assert not lock_file.exists()
    finally:
        tenant.cleanup()


def test_access_jobs_on_one_share_at_once_all_end_in_its_client_list(stack):
    tenant = Tenant(stack, "share-lock-many")
    try:
        share = tenant.create(1)
        addresses = [f"192.0.2.{20 + i}" for i in range(6)]
        barrier = threading.Barrier(len(addresses))
        rules, errors = [], []

        def allow(address):
            try:
                barrier.wait()
                rules.append(tenant.m.shares.allow(share, "ip", address, "rw")["id"])
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=allow, args=(a,)) for a in addresses]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        wait_until(lambda: all(tenant.m.share_access_rules.get(r).state == "active" for r in rules), 60,
                   "every rule to become active")
        exported = stack.exports_text()
        assert all(a in exported for a in addresses), exported
    finally:
        tenant.cleanup()
