"""Quotas, limits and user messages on the real stack, through python-manilaclient.

Each test works in a project of its own, sets its quotas as admin, and deletes
its shares and resets its quotas at the end.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from manilaclient import exceptions as mexc

from shareflow.db.models import Job, Share, ShareSnapshot
from shareflow.services.context import Caller
from tests.fixtures.stack import wait_until

GIGABYTES_OVER = "Requested share exceeds allowed project/user or share type gigabytes quota."
SHARES_OVER = "Maximum number of shares allowed (2) either per project/user or share type quota is exceeded."
SNAPSHOTS_OVER = (
    "Maximum number of snapshots allowed (1) either per project/user or share type quota is exceeded.")
SNAPSHOT_TYPE = "quota-snappy"


class Tenant:
    """A project with its own member client; cleans up its shares and quotas."""

    def __init__(self, stack, name: str):
        self.stack = stack
        self.project = f"{name}-{uuid.uuid4().hex[:6]}"
        self.m = stack.manila(stack.token(self.project))
        self.admin = stack.manila()
        self.shares: list[str] = []
        self.snapshots: list[str] = []

    def create(self, size: int = 1, *, wait_for: set[str] | None = None):
        share = self.m.shares.create("NFS", size)
        self.shares.append(share.id)
        if wait_for:
            share = self.stack.wait_for_share(self.m, share.id, wait_for)
        return share

    def delete(self, share_id: str) -> None:
        if self.stack.share_row(share_id).backend is not None:  # else never placed: no job
            self.stack.finished_job(share_id)
        self.m.shares.delete(share_id)
        wait_until(lambda: self.stack.share_row(share_id).deleted_at is not None, 30, f"{share_id} deleted")

    def usage(self) -> dict:
        absolute = {a.name: a.value for a in self.m.limits.get().absolute}
        detail = self.m.quotas.get(self.project, detail=True)
        assert detail.shares["in_use"] == absolute["totalSharesUsed"]
        assert detail.gigabytes["in_use"] == absolute["totalShareGigabytesUsed"]
        return absolute

    def rows(self) -> tuple[int, int]:
        """(shares, jobs) of this project in the database, deleted or not."""
        with self.stack.db.read() as s:
            shares = s.scalar(sa.select(sa.func.count()).select_from(Share).where(Share.project_id == self.project))
            jobs = s.scalar(sa.select(sa.func.count()).select_from(Job).where(Job.project_id == self.project))
        return shares, jobs

    def snapshot(self, share_id: str, *, wait_for: set[str]):
        snap = self.m.share_snapshots.create(share_id)
        self.snapshots.append(snap.id)
        return wait_until(lambda: (lambda x: x if x.status in wait_for else None)(
            self.m.share_snapshots.get(snap.id)), 30, f"snapshot {snap.id} to become one of {wait_for}")

    def snapshot_rows(self) -> int:
        with self.stack.db.read() as s:
            return s.scalar(sa.select(sa.func.count()).select_from(ShareSnapshot)
                            .where(ShareSnapshot.project_id == self.project))

    def cleanup(self) -> None:
        self.stack.clear_faults()
        for snapshot_id in self.snapshots:
            try:
                self.admin.share_snapshots.force_delete(snapshot_id)
            except mexc.NotFound:
                continue
            except Exception:  # reported by the test's own assertions, not here
                continue
            wait_until(lambda sid=snapshot_id: _snapshot_gone(self.stack, sid), 30, f"{snapshot_id} deleted")
        for share_id in self.shares:
            row = self.stack.share_row(share_id)
            if row is None or row.deleted_at is not None:
                continue
            try:
                self.delete(share_id)
            except Exception:  # reported by the test's own assertions, not here
                pass
        self.admin.quotas.delete(self.project)
        volumes = self.stack.backend().share.list_volumes()
        for share_id in self.shares:
            row = self.stack.share_row(share_id)
            assert row is None or row.deleted_at is not None, f"{share_id} left {row.status}"
            assert share_id not in volumes
        assert all(_snapshot_gone(self.stack, sid) for sid in self.snapshots)


def _snapshot_gone(stack, snapshot_id: str) -> bool:
    with stack.db.read() as s:
        row = s.get(ShareSnapshot, snapshot_id)
        return row is None or row.deleted_at is not None


@pytest.fixture
def tenant(faults):
    made: list[Tenant] = []

    def make(name: str) -> Tenant:
        t = Tenant(faults, name)
        made.append(t)
        return t

    yield make
    for t in made:
        t.cleanup()


def test_quota_set_through_manilaclient_and_the_third_share_is_413(tenant):
    t = tenant("quota")
    defaults = t.m.quotas.defaults(t.project)
    assert (defaults.shares, defaults.gigabytes, defaults.snapshots, defaults.snapshot_gigabytes) == (50, 1000, 50, 1000)
    with pytest.raises(mexc.Forbidden):
        t.m.quotas.update(t.project, shares=100)
    t.admin.quotas.update(t.project, shares=2, gigabytes=2)
    shown = t.m.quotas.get(t.project)
    assert (shown.shares, shown.gigabytes) == (2, 2)

    first = t.create(wait_for={"available"})
    t.create(wait_for={"available"})
    before_rows, before_list = t.rows(), sorted(s.id for s in t.m.shares.list())
    with pytest.raises(mexc.RequestEntityTooLarge) as over:
        t.m.shares.create("NFS", 1)
    assert over.value.http_status == 413 and str(over.value).startswith(GIGABYTES_OVER)
    assert t.rows() == before_rows and sorted(s.id for s in t.m.shares.list()) == before_list
    # With room in gigabytes, the count is what stops it (Manila's other message).
    t.admin.quotas.update(t.project, gigabytes=10)
    with pytest.raises(mexc.RequestEntityTooLarge) as over:
        t.m.shares.create("NFS", 1)
    assert str(over.value).startswith(SHARES_OVER)
    assert t.rows() == before_rows
    absolute = t.usage()
    assert (absolute["maxTotalShares"], absolute["totalSharesUsed"]) == (2, 2)
    assert (absolute["maxTotalShareGigabytes"], absolute["totalShareGigabytesUsed"]) == (10, 2)

    # Deleting gives the quota back.
    t.delete(first.id)
    assert t.usage()["totalSharesUsed"] == 1
    t.create(wait_for={"available"})
    assert t.usage()["totalSharesUsed"] == 2


def test_a_failed_create_gives_its_quota_back_and_leaves_a_readable_message(tenant):
    t = tenant("failed")
    other = tenant("other")
    t.admin.quotas.update(t.project, shares=2, gigabytes=2)
    t.create(wait_for={"available"})
    t.stack.set_faults({"create_volume": "fail"})
    failed = t.create(wait_for={"error"})
    t.stack.finished_job(failed.id)
    t.stack.clear_faults()
    absolute = t.usage()
    assert (absolute["totalSharesUsed"], absolute["totalShareGigabytesUsed"]) == (1, 1)
    # So the project can still create its second share.
    t.create(wait_for={"available"})

    # The failure's message, through manilaclient.
    messages = t.m.messages.list(search_opts={"resource_id": failed.id})
    assert len(messages) == 1
    msg = t.m.messages.get(messages[0].id)
    assert msg.resource_type == "SHARE" and msg.resource_id == failed.id
    assert msg.action_id == "002" and msg.message_level == "ERROR" and msg.request_id.startswith("req-")
    assert msg.user_message == "create: step 'create_volume' failed: injected fault at create_volume"
    assert msg.id in [m.id for m in t.m.messages.list()]
    assert msg.id in [m.id for m in t.m.messages.list(search_opts={"action_id": "002"}, sort_key="created_at")]

    # Another project neither sees nor deletes it.
    assert msg.id not in [m.id for m in other.m.messages.list()]
    with pytest.raises(mexc.NotFound):
        other.m.messages.get(msg.id)
    with pytest.raises(mexc.NotFound):
        other.m.messages.delete(msg.id)
    # The admin sees it among all projects'.
    assert msg.id in [m.id for m in t.admin.messages.list(search_opts={"all_tenants": 1})]

    t.m.messages.delete(msg.id)
    assert t.m.messages.list(search_opts={"resource_id": failed.id}) == []
    with pytest.raises(mexc.NotFound):
        t.m.messages.get(msg.id)


def test_every_async_failure_names_resource_action_and_reason(tenant):
    t = tenant("reasons")
    share = t.create(wait_for={"available"})
    kept = t.m.shares.allow(share, "ip", t.stack.nfs(1).address, "ro")
    wait_until(lambda: t.m.share_access_rules.get(kept["id"]).state == "active", 30, "the first rule")
    t.stack.set_faults({"update_access": "fail"})
    t.m.shares.deny(share, kept["id"])
    wait_until(lambda: t.m.share_access_rules.get(kept["id"]).state == "error", 30, "the deny to fail")
    rule = t.m.shares.allow(share, "ip", t.stack.nfs(0).address, "rw")
    wait_until(lambda: t.m.share_access_rules.get(rule["id"]).state == "error", 30, "the rule to fail")
    t.stack.clear_faults()
    for failed in (rule, kept):
        t.m.shares.deny(share, failed["id"])
    wait_until(lambda: not t.m.share_access_rules.access_list(share), 30, "the rules to go")
    t.stack.set_faults({"delete_volume": "fail"})
    t.m.shares.delete(share)
    t.stack.wait_for_share(t.m, share.id, {"error_deleting"})
    t.stack.clear_faults()
    texts = {(m.resource_type, m.resource_id, m.action_id, m.user_message)
             for m in t.m.messages.list(search_opts={"resource_id": share.id})}
    # Undoing an access change writes the client list again, which fails
    # too: the message says so (the job is revert_failed, for an operator).
    undo = ("; undoing step 'apply_access' failed too: injected fault at update_access. Something may be "
            "left on the backend until an administrator resumes job ")
    for action_id, action in (("010", "allow access"), ("003", "deny access")):
        assert any(t[:3] == ("SHARE", share.id, action_id) and t[3].startswith(
            f"{action}: step 'apply_access' failed: injected fault at update_access{undo}") for t in texts), texts
    assert ("SHARE", share.id, "007", "delete: step 'delete_volume' failed: injected fault at delete_volume") in texts
    assert len(texts) == 3


def test_no_pool_for_the_share_is_an_allocate_host_message_and_no_quota(tenant):
    t = tenant("huge")
    share = t.create(500)  # within the default quota, far beyond the 4 GiB pool
    assert share.status == "error"  # the API's answer: its scheduler decided
    assert t.stack.wait_for_share(t.m, share.id, {"available", "error"}).status == "error"
    (msg,) = t.m.messages.list(search_opts={"resource_id": share.id})
    assert (msg.action_id, msg.detail_id) == ("001", "009")  # Manila's: the CapacityFilter's
    assert msg.user_message == ("allocate host: No storage could be allocated for this share request, "
                                "Capacity filter didn't succeed.")
    assert t.usage()["totalShareGigabytesUsed"] == 0


def test_an_extend_holds_its_gigabytes_and_a_failed_one_gives_them_back(tenant):
    t = tenant("extend")
    t.admin.quotas.update(t.project, shares=5, gigabytes=3)
    share = t.create(wait_for={"available"})
    # Over quota: Manila answers an extend 403 with the gigabytes message; nothing changes.
    with pytest.raises(mexc.Forbidden) as over:
        t.m.shares.extend(share, 4)
    assert str(over.value).startswith(GIGABYTES_OVER)
    assert (t.m.shares.get(share.id).status, t.usage()["totalShareGigabytesUsed"]) == ("available", 1)

    t.stack.set_faults({"resize_volume": "hang"})
    t.m.shares.extend(share, 3)
    t.stack.wait_for_share(t.m, share.id, {"extending"})
    # While it runs, the extend holds its new size: no room for another share.
    assert t.usage()["totalShareGigabytesUsed"] == 3
    with pytest.raises(mexc.RequestEntityTooLarge):
        t.m.shares.create("NFS", 1)
    t.stack.set_faults({"resize_volume": "fail"})  # releases the hang into a failure
    failed = t.stack.wait_for_share(t.m, share.id, {"extending_error"})
    t.stack.finished_job(share.id, "extend_share")
    t.stack.clear_faults()
    assert failed.size == 1 and t.stack.share_row(share.id).pending_size is None
    assert t.usage()["totalShareGigabytesUsed"] == 1
    t.create(2, wait_for={"available"})
    (msg,) = [m for m in t.m.messages.list(search_opts={"resource_id": share.id}) if m.action_id == "008"]
    assert msg.user_message.startswith("extend: step 'resize_volume' failed: injected fault at resize_volume")
    t.admin.shares.reset_state(share, "available")  # to delete it at the end


def test_snapshot_quotas_and_a_failed_snapshot_gives_its_quota_back(tenant):
    t = tenant("snapq")
    services = t.stack.services()
    try:
        try:
            services.share_types.get(Caller(project_id="admin", is_admin=True), SNAPSHOT_TYPE)
        except Exception:
            services.share_types.create(Caller(project_id="admin", is_admin=True), name=SNAPSHOT_TYPE,
                                        extra_specs={"driver_handles_share_servers": "False",
                                                     "snapshot_support": "True"})
    finally:
        services.close()
    t.admin.quotas.update(t.project, snapshots=1, snapshot_gigabytes=5)
    share = t.m.shares.create("NFS", 2, share_type=SNAPSHOT_TYPE)
    t.shares.append(share.id)
    t.stack.wait_for_share(t.m, share.id, {"available"})

    t.stack.set_faults({"create_snapshot": "fail"})
    failed = t.snapshot(share.id, wait_for={"error"})
    t.stack.finished_job(failed.id, "create_snapshot")
    t.stack.clear_faults()
    absolute = t.usage()
    assert (absolute["totalShareSnapshotsUsed"], absolute["totalSnapshotGigabytesUsed"]) == (0, 0)
    (msg,) = t.m.messages.list(search_opts={"resource_id": failed.id})
    assert msg.resource_type == "SHARE_SNAPSHOT" and msg.action_id == "002"
    assert msg.user_message.startswith("create: step 'create_snapshot' failed: injected fault at create_snapshot")

    t.snapshot(share.id, wait_for={"available"})
    absolute = t.usage()
    assert (absolute["totalShareSnapshotsUsed"], absolute["totalSnapshotGigabytesUsed"]) == (1, 2)
    rows = t.snapshot_rows()
    with pytest.raises(mexc.RequestEntityTooLarge) as over:
        t.m.share_snapshots.create(share.id)
    assert str(over.value).startswith(SNAPSHOTS_OVER)
    t.admin.quotas.update(t.project, snapshots=5, snapshot_gigabytes=3)
    with pytest.raises(mexc.RequestEntityTooLarge) as over:
        t.m.share_snapshots.create(share.id)
    assert str(over.value).startswith(
        "Requested snapshot exceeds allowed project/user or share type gigabytes quota.")
    assert t.snapshot_rows() == rows
