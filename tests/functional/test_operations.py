"""Delete and access operations on the real stack: their failures, and the
operator's view of jobs through the ``shareflow`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import sqlalchemy as sa

from shareflow.db.models import Message
from tests.fixtures.stack import wait_until


def shareflow_cli(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHAREFLOW_CONFIG": str(stack.config_path)}
    return subprocess.run([sys.executable, "-m", "shareflow.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def messages_for(stack, share_id: str) -> list[str]:
    with stack.db.read() as s:
        return [m.user_message for m in s.scalars(
            sa.select(Message).where(Message.resource_id == share_id).order_by(Message.created_at))]


def test_failed_delete_is_error_deleting_and_can_be_retried(faults):
    stack = faults
    m = stack.manila(stack.token("tenant-del"))
    share = m.shares.create("NFS", 1)
    stack.wait_for_share(m, share.id, {"available"})
    stack.set_faults({"delete_volume": "fail"})
    m.shares.delete(share)
    share = stack.wait_for_share(m, share.id, {"error_deleting"})
    assert any("delete: step 'delete_volume' failed: injected fault at delete_volume" in t
               for t in messages_for(stack, share.id))
    stack.clear_faults()
    stack.finished_job(share.id, "delete_share")
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the retried delete")
    assert share.id not in stack.backend().share.list_volumes()


def test_failed_allow_leaves_the_rule_in_error_and_the_client_out(faults):
    stack = faults
    m = stack.manila(stack.token("tenant-acl"))
    share = m.shares.create("NFS", 1)
    stack.wait_for_share(m, share.id, {"available"})
    good, bad = stack.nfs(0), stack.nfs(1)
    export = m.share_export_locations.list(share)[0].path.split(":", 1)[1]
    first = m.shares.allow(share, "ip", good.address, "rw")
    wait_until(lambda: m.share_access_rules.get(first["id"]).state == "active", 30, "the first rule")

    stack.set_faults({"update_access": "fail"})
    second = m.shares.allow(share, "ip", bad.address, "rw")
    wait_until(lambda: m.share_access_rules.get(second["id"]).state == "error", 30, "the second rule to fail")
    assert m.shares.get(share.id).access_rules_status == "error"
    assert any("allow access: step 'apply_access' failed" in t for t in messages_for(stack, share.id))
    stack.clear_faults()
    assert bad.ls(export).returncode != 0
    assert good.ls(export).returncode == 0

    # The rule in error can be denied, which settles the share's rules again.
    m.shares.deny(share, second["id"])
    wait_until(lambda: len(m.share_access_rules.access_list(share)) == 1, 30, "the failed rule to go")
    assert m.shares.get(share.id).access_rules_status == "active"
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")


def test_jobs_list_and_show(stack):
    m = stack.manila(stack.token("tenant-cli"))
    share = m.shares.create("NFS", 1)
    stack.wait_for_share(m, share.id, {"available"})
    job = stack.finished_job(share.id, "create_share")

    listed = shareflow_cli(stack, "jobs", "list", "--resource", share.id, "--json")
    assert listed.returncode == 0, listed.stderr
    # The create's one job (the API placed the share): the first of its chain.
    (row,) = json.loads(listed.stdout)
    assert row["id"] == job.id and row["operation"] == "create_share" and row["state"] == "succeeded"
    assert row["retry_of"] is None
    assert row["resource"] == f"share:{share.id}"

    table = shareflow_cli(stack, "jobs", "list")
    assert table.returncode == 0 and job.id in table.stdout and "OWNER" in table.stdout

    shown = shareflow_cli(stack, "jobs", "show", job.id, "--json")
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert detail["state"] == "succeeded" and detail["flow_state"] == "SUCCESS"
    assert [s["name"] for s in detail["steps"]][2:4] == ["provide_share_server", "create_volume"]
    assert all(s["state"] == "SUCCESS" and s["duration"] >= 0 for s in detail["steps"])

    text = shareflow_cli(stack, "jobs", "show", job.id)
    assert text.returncode == 0 and "create_volume" in text.stdout and "ms" in text.stdout

    missing = shareflow_cli(stack, "jobs", "show", "no-such-job")
    assert missing.returncode == 1 and "could not be found" in missing.stderr


def test_two_deletes_at_once_one_wins(stack):
    m = stack.manila(stack.token("tenant-race"))
    share = m.shares.create("NFS", 1)
    stack.wait_for_share(m, share.id, {"available"})
    import threading

    from manilaclient import exceptions as mexc

    outcomes = []
    barrier = threading.Barrier(2)

    def delete():
        barrier.wait()
        try:
            m.shares.delete(share.id)
            outcomes.append("accepted")
        except mexc.Forbidden:
            outcomes.append("refused")  # the other delete is running
        except mexc.NotFound:
            outcomes.append("refused")  # the other delete has already finished

    threads = [threading.Thread(target=delete) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["accepted", "refused"]
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
    with stack.db.read() as s:
        from shareflow.db.models import Job

        jobs = s.scalars(sa.select(Job).where(Job.resource_id == share.id, Job.operation == "delete_share")).all()
    assert len(jobs) == 1


def test_share_no_pool_can_hold_is_error_with_message_and_deletable(stack):
    m = stack.manila(stack.token("tenant-huge"))
    share = m.shares.create("NFS", 500, name="too-big")  # within the quota, not the 4 GiB pool
    assert share.status == "error"  # the API's answer: its scheduler decided
    assert stack.wait_for_share(m, share.id, {"available", "error"}).status == "error"
    (text,) = messages_for(stack, share.id)
    assert text.startswith("allocate host: No storage could be allocated")
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
