"""The reconciliation the chaos soak relies on finds each kind of
disagreement it claims to find (a leak, a missing export, wrong clients, a
stuck share, a job left on the board), and nothing on a clean stack."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from kazoo.client import KazooClient

from shareflow.db.models import Share
from shareflow.drivers.base import ClientRule
from shareflow.engine import once
from shareflow.engine.zk import board_path
from tests.fixtures import reconcile as rc


def _whats(rec: rc.Reconciliation) -> set[str]:
    return {f.what for f in rec.failures}


def test_reconcile_finds_each_disagreement(stack):
    m = stack.manila(stack.token("tenant-reconcile"))
    share = m.shares.create("NFS", 1, name="reconciled")
    stack.wait_for_share(m, share.id, {"available"})
    client = stack.network.clients[0].address
    rule = m.shares.allow(share.id, "ip", client, "rw")
    clean = rc.assert_consistent(stack, timeout=30)
    assert clean.seen["NFS probes"] >= 1 and clean.seen["shares available"] >= 1

    backend = stack.backend()
    server = backend.server.server_for(share.id)

    # A subvolume no share owns.
    stray = str(uuid.uuid4())
    backend.share.create_volume(stray, 1)
    try:
        assert "subvolume without share" in _whats(rc.reconcile(stack, probe_clients=False))
    finally:
        backend.share.delete_volume(stray)

    # The export server lets in a client no rule names, and not the one that has a rule.
    backend.export.update_access(server, share.id, [ClientRule("198.51.100.7", "ro")])
    try:
        found = _whats(rc.reconcile(stack))
        assert {"export clients differ from the active rules", "served access differs from the rules"} <= found
    finally:
        backend.export.update_access(server, share.id, [ClientRule(client, "rw")])

    # The share's export is gone.
    backend.export.remove_export(server, share.id)
    try:
        assert "share without export" in _whats(rc.reconcile(stack, probe_clients=False))
    finally:
        backend.export.add_export(server, share.id, backend.share.volume_path(share.id))
        backend.export.update_access(server, share.id, [ClientRule(client, "rw")])

    # Ganesha stopped serving an export its file still holds (a restart
    # would serve it again, so only the bus tells).
    from shareflow.drivers.export.ganesha import read_export
    from shareflow.drivers.export.ganesha_server import GaneshaServer

    gs = GaneshaServer(stack.config.backend("b1").ganesha)
    gs.export_manager().remove(read_export(gs, share.id).export_id)
    try:
        assert "served exports differ from the export files" in _whats(rc.reconcile(stack, probe_clients=False))
    finally:
        # The next change of its client list serves it again (the same list
        # told again would not: the driver's mark says it is served).
        backend.export.update_access(server, share.id, [])
        backend.export.update_access(server, share.id, [ClientRule(client, "rw")])
        gs.export_manager().close()

    # A share stuck in a transitional status.
    with stack.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == share.id).values(status="extending"))
    try:
        assert "share extending" in _whats(rc.reconcile(stack, probe_clients=False))
    finally:
        with stack.db.write() as s:
            s.execute(sa.update(Share).where(Share.id == share.id).values(status="available"))

    # A job left on the board.
    zk = KazooClient(hosts=stack.config.zookeeper.hosts)
    zk.start(timeout=15)
    try:
        node = zk.create(board_path(stack.config.zookeeper.chroot, stack.board_key("b1")) + "/job", b"{}", sequence=True,
                         makepath=True)
        try:
            assert "job left on the board" in _whats(rc.reconcile(stack, probe_clients=False))
        finally:
            zk.delete(node)
        # A posted-once marker its job did not take with it.
        marker = zk.create(once.marker_path(board_path(stack.config.zookeeper.chroot, stack.board_key("b1")),
                                            "no-such-job"), b"{}", makepath=True)
        try:
            assert "posted-once marker left behind" in _whats(rc.reconcile(stack, probe_clients=False))
        finally:
            zk.delete(marker)
    finally:
        zk.stop()
        zk.close()

    rc.assert_consistent(stack)
    m.shares.deny(share.id, rule["id"])
    m.shares.delete(share.id)
    assert rc.settle(stack, 30)[0]
