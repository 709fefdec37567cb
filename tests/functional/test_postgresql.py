"""The service on PostgreSQL instead of SQLite: the same stack, a real private
PostgreSQL server, the whole create/allow/deny/delete cycle."""

from __future__ import annotations

from tests.fixtures.stack import wait_until


def test_share_cycle_on_postgresql(pg_stack):
    stack = pg_stack
    assert stack.db.engine.dialect.name == "postgresql"
    m = stack.manila(stack.token("tenant-pg"))
    share = m.shares.create("NFS", 1, name="on-postgres")
    stack.wait_for_share(m, share.id, {"available"})
    client = stack.nfs(0)
    rule = m.shares.allow(share, "ip", client.address, "rw")
    wait_until(lambda: m.share_access_rules.get(rule["id"]).state == "active", 30, "the rule")
    export = m.share_export_locations.list(share)[0].path.split(":", 1)[1]
    assert client.put(f"{export}/pg.txt", b"postgres").returncode == 0
    assert client.cat(f"{export}/pg.txt").stdout == "postgres"
    m.shares.deny(share, rule["id"])
    wait_until(lambda: not m.share_access_rules.access_list(share), 30, "the rule to go")
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
    job = stack.finished_job(share.id, "delete_share")
    assert job.state == "succeeded"
    assert share.id not in stack.backend().share.list_volumes()
