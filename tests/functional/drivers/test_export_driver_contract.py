"""The ExportDriver contract with NFS-Ganesha, checked by real NFS clients,
over the volumes of every share driver (a btrfs subvolume's bind mount, an
XFS image's loop mount: the export driver only sees a path).

Ganesha runs in a test network namespace on 192.0.2.1:2049; clients 0, 1 and
2 are libnfs tools in their own namespaces (192.0.2.10, .11, .12).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from shareflow.drivers.base import ClientRule
from shareflow.drivers.export import ganesha_config as gc
from shareflow.drivers.export.ganesha import GaneshaExportDriver, export_file, lock_path, read_export
from shareflow.drivers.export.ganesha_server import REFUSED_MESSAGE, ConfigRefused
from shareflow.exceptions import ExportError
from shareflow.system import filelock
from tests.fixtures.storage import FULL_ERRNO, SMALL, fill_until_full
from tests.fixtures.export_env import export_env as make_export_env
from tests.fixtures.export_env import SERVER_ID, new_volume, pseudo, ro, rw


@pytest.fixture
def export_env(any_share_driver, ganesha_server, nfs_clients):
    return make_export_env(any_share_driver, ganesha_server, nfs_clients)


def state_of(ganesha_server) -> dict[str, gc.ExportSpec]:
    """Every export as its file records it."""
    return {p.stem: gc.parse_export_file(p.read_text()) for p in ganesha_server.export_files()}


def written(ganesha_server, sid: str) -> tuple[int, int]:
    """Which write of the export's file is there (a write replaces the file)."""
    st = export_file(ganesha_server, sid).stat()
    return st.st_ino, st.st_mtime_ns


def test_add_export_is_idempotent_and_admits_nobody(export_env, ganesha_server):
    driver, server, shares, (c0, *_) = export_env
    sid, path = new_volume(shares)
    locations = driver.add_export(server, sid, path)
    assert locations == [f"192.0.2.1:/shares/{sid}"]
    before = written(ganesha_server, sid)
    assert driver.add_export(server, sid, path) == locations
    assert written(ganesha_server, sid) == before  # no change, nothing written
    assert driver.list_exports(server) == {sid: []}
    refused = c0.ls(pseudo(sid))
    assert refused.returncode != 0 and "NFS4ERR_NOENT" in refused.stdout + refused.stderr


def test_rw_client_reads_and_writes_other_clients_are_refused(export_env):
    driver, server, shares, (c0, c1, _) = export_env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0)])

    listing = c0.ls(pseudo(sid))
    assert listing.returncode == 0, listing.stderr
    assert "hello" in listing.stdout
    assert c0.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"
    put = c0.put(pseudo(sid, "written"), b"over nfs\n")
    assert put.returncode == 0, put.stderr
    assert Path(path, "written").read_text() == "over nfs\n"  # it really is the volume

    for probe in (c1.ls(pseudo(sid)), c1.cat(pseudo(sid, "hello")), c1.put(pseudo(sid, "x"), b"no")):
        assert probe.returncode != 0
    assert not Path(path, "x").exists()


def test_ro_client_reads_but_cannot_write(export_env):
    driver, server, shares, (c0, c1, c2) = export_env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0), ro(c1)])
    assert c1.cat(pseudo(sid, "hello")).returncode == 0
    denied = c1.put(pseudo(sid, "nope"), b"no")
    assert denied.returncode != 0 and "NFS4ERR_ROFS" in denied.stdout + denied.stderr
    assert not Path(path, "nope").exists()
    assert c0.put(pseudo(sid, "yes"), b"yes").returncode == 0
    assert c2.ls(pseudo(sid)).returncode != 0


def test_network_rules_and_specific_ro_override(export_env):
    driver, server, shares, (c0, c1, _) = export_env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    # The whole network may write, except c1 which may only read.
    driver.update_access(server, sid, [ClientRule("192.0.2.0/24", "rw"), ro(c1)])
    assert c0.put(pseudo(sid, "a"), b"a").returncode == 0
    assert c1.cat(pseudo(sid, "a")).returncode == 0
    assert c1.put(pseudo(sid, "b"), b"b").returncode != 0


def test_empty_rules_refuse_everyone(export_env):
    driver, server, shares, (c0, c1, _) = export_env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0), ro(c1)])
    assert c0.ls(pseudo(sid)).returncode == 0
    driver.update_access(server, sid, [])
    assert c0.ls(pseudo(sid)).returncode != 0
    assert c1.ls(pseudo(sid)).returncode != 0
    assert driver.list_exports(server) == {sid: []}


def test_update_access_is_idempotent_and_order_insensitive(export_env, ganesha_server):
    driver, server, shares, (c0, c1, _) = export_env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0), ro(c1)])
    before = written(ganesha_server, sid)
    # Same set in another order, and as JSON dicts (how a reloaded task passes them).
    driver.update_access(server, sid, [ro(c1).to_json(), rw(c0).to_json()])
    driver.update_access(server, sid, [ro(c1), rw(c0), rw(c0)])
    assert written(ganesha_server, sid) == before
    assert sorted(driver.list_exports(server)[sid], key=lambda r: r.access_to) == [rw(c0), ro(c1)]
    assert c0.ls(pseudo(sid)).returncode == 0


def test_update_access_without_export(export_env):
    driver, server, shares, (c0, *_) = export_env
    sid = str(uuid.uuid4())
    driver.update_access(server, sid, [])  # nothing exported, nobody admitted: done
    with pytest.raises(ExportError):
        driver.update_access(server, sid, [rw(c0)])


def test_remove_export(export_env, ganesha_server):
    driver, server, shares, (c0, *_) = export_env
    sid, path = new_volume(shares)
    keep, keep_path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.add_export(server, keep, keep_path)
    driver.update_access(server, sid, [rw(c0)])
    driver.update_access(server, keep, [rw(c0)])
    driver.remove_export(server, sid)
    assert c0.ls(pseudo(sid)).returncode != 0
    assert c0.ls(pseudo(keep)).returncode == 0  # the other export is untouched
    assert sid not in driver.list_exports(server)
    assert not export_file(ganesha_server, sid).exists()
    driver.remove_export(server, sid)  # again: nothing to do
    driver.remove_export(server, str(uuid.uuid4()))  # never exported
    # The volume is released by the server: it can be deleted now.
    shares.delete_volume(sid)


def test_has_export_answers_for_one_share_without_reading_the_others(export_env, ganesha_server, monkeypatch):
    """What the access and delete steps ask before changing one export; its
    cost must not grow with the exports on the server (it was a parse of
    every export file per delete)."""
    driver, server, shares, _ = export_env
    sid, path = new_volume(shares)
    other, other_path = new_volume(shares)
    assert not driver.has_export(server, sid)
    driver.add_export(server, sid, path)
    driver.add_export(server, other, other_path)

    def no_scan(*_a, **_k):
        raise AssertionError("has_export read every export")

    monkeypatch.setattr(gc, "parse_export_file", no_scan)
    monkeypatch.setattr(type(ganesha_server), "export_files", no_scan)
    assert driver.has_export(server, sid) and driver.has_export(server, other)
    assert not driver.has_export(server, str(uuid.uuid4()))
    monkeypatch.undo()
    driver.remove_export(server, sid)
    assert not driver.has_export(server, sid) and driver.has_export(server, other)
    driver.remove_export(server, other)
    shares.delete_volume(sid)
    shares.delete_volume(other)


def test_export_ids_start_at_100_and_a_freed_one_is_not_reused_at_once(export_env, ganesha_server):
    """Ids are taken after the last one (one symlink each, no listing of
    every export); a freed id waits for the wrap-around at 65535."""
    driver, server, shares, _ = export_env
    vols = [new_volume(shares) for _ in range(3)]
    for sid, path in vols:
        driver.add_export(server, sid, path)
    ids = {sid: e.export_id for sid, e in state_of(ganesha_server).items()}
    assert sorted(ids.values()) == [100, 101, 102]
    driver.remove_export(server, vols[0][0])
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    assert read_export(ganesha_server, sid).export_id == 103
    assert sorted(e.export_id for e in state_of(ganesha_server).values()) == [101, 102, 103]


def test_new_path_for_an_exported_share(export_env):
    """Ganesha cannot change a live export's path: the driver re-exports."""
    driver, server, shares, (c0, *_) = export_env
    sid, path = new_volume(shares)
    other, other_path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0)])
    driver.add_export(server, sid, other_path)
    assert driver.list_exports(server)[sid] == []  # a new export starts closed
    driver.update_access(server, sid, [rw(c0)])
    assert c0.cat(pseudo(sid, "hello")).stdout == f"hello from {other}\n"


def test_refuses_bad_input_before_touching_state(export_env, ganesha_server):
    driver, server, shares, (c0, *_) = export_env
    sid, path = new_volume(shares)
    with pytest.raises(ExportError):
        driver.add_export(server, sid, path + "/missing")
    with pytest.raises(ExportError):
        driver.add_export(server, "not-a-uuid", path)
    with pytest.raises(ExportError):
        driver.add_export({"id": "nope"}, sid, path)
    driver.add_export(server, sid, path)
    with pytest.raises(ExportError):
        driver.update_access(server, sid, [ClientRule("192.0.2.10; } EXPORT {", "rw")])
    with pytest.raises(ExportError):
        driver.update_access(server, sid, [ClientRule("192.0.2.10", "rwx")])
    assert driver.list_exports(server) == {sid: []}


def test_everyone_rules_over_nfs(export_env):
    """0.0.0.0/0 (manila-csi's default client) lets every IPv4 client in;
    ::/0 lets no IPv4 client in; the single addresses 0.0.0.0 and
    255.255.255.255 let nobody in (bare, Ganesha would read 0.0.0.0 as "any")."""
    driver, server, shares, clients = export_env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [ClientRule("0.0.0.0/0", "rw")])
    for c in clients:
        assert c.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n", c
    assert clients[0].put(pseudo(sid, "written"), b"by everyone\n").returncode == 0
    assert Path(path, "written").read_bytes() == b"by everyone\n"
    for nobody in (["::/0"], ["0.0.0.0"], ["255.255.255.255"], ["0.0.0.0", "255.255.255.255", "::/0"]):
        driver.update_access(server, sid, [ClientRule(a, "rw") for a in nobody])
        for c in clients:
            assert c.ls(pseudo(sid)).returncode != 0, (nobody, c)
    # Everyone read-only, one client read-write: the more specific rule wins.
    driver.update_access(server, sid, [ClientRule("0.0.0.0/0", "ro"), rw(clients[1])])
    assert clients[0].put(pseudo(sid, "ro"), b"x").returncode != 0
    assert clients[1].put(pseudo(sid, "rw"), b"x").returncode == 0
    assert clients[2].ls(pseudo(sid)).returncode == 0


@pytest.mark.parametrize("access_to", ["2001:db8::/112", "fe80::1%lo", "fe80::1%x,*"])
def test_a_client_ganesha_cannot_read_fails_that_change_only(export_env, ganesha_server, access_to):
    """Rules the API refuses now (a scope id) may still be stored from before,
    and an IPv6 prefix over /99 is valid for Manila but unreadable for
    Ganesha 4.3: the change fails before anything is written."""
    driver, server, shares, (c0, c1, _) = export_env
    sid, path = new_volume(shares)
    other, other_path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.add_export(server, other, other_path)
    driver.update_access(server, sid, [rw(c0)])
    driver.update_access(server, other, [rw(c1)])
    before = {p.name: p.read_text() for p in ganesha_server.export_files()}
    with pytest.raises(ExportError) as e:
        driver.update_access(server, sid, [rw(c0), ClientRule(access_to, "rw")])
    assert "NFS server cannot take" in e.value.user_message
    assert {p.name: p.read_text() for p in ganesha_server.export_files()} == before
    assert c0.ls(pseudo(sid)).returncode == 0 and c1.ls(pseudo(other)).returncode == 0
    driver.update_access(server, other, [rw(c0)])  # the server takes the next change
    assert c0.ls(pseudo(other)).returncode == 0


def test_a_change_ganesha_refuses_fails_alone_while_others_go_through(export_env, ganesha_server):
    """Ganesha really refuses an export of /dev (its VFS FSAL cannot resolve
    that filesystem). While one thread keeps asking for it, others change
    their shares' client lists: theirs are served, the refused one is not in
    the state, and the export that was there before is untouched."""
    driver, server, shares, clients = export_env
    steady, steady_path = new_volume(shares)
    driver.add_export(server, steady, steady_path)
    driver.update_access(server, steady, [rw(clients[0])])
    steady_before = state_of(ganesha_server)[steady]
    busy = [new_volume(shares) for _ in range(2)]
    for sid, p in busy:
        driver.add_export(server, sid, p)
    bad = str(uuid.uuid4())
    refusals: list[ExportError] = []
    errors: list[BaseException] = []

    def refused():
        for _ in range(5):
            try:
                driver.add_export(server, bad, "/dev")
            except ExportError as e:
                refusals.append(e)

    def churn(sid, final):
        try:
            for c in clients:
                driver.update_access(server, sid, [ro(c)])
            driver.update_access(server, sid, [final])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=refused)] + [
        threading.Thread(target=churn, args=(sid, rw(clients[i + 1]))) for i, (sid, _) in enumerate(busy)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(refusals) == 5
    assert all(isinstance(e, ConfigRefused) and "resolve_posix_filesystem(/dev)" in str(e) for e in refusals)
    assert refusals[0].user_message == REFUSED_MESSAGE
    state = state_of(ganesha_server)
    assert bad not in state and state[steady] == steady_before
    assert clients[0].cat(pseudo(steady, "hello")).stdout == f"hello from {steady}\n"
    assert clients[0].ls(pseudo(bad)).returncode != 0
    for i, (sid, _) in enumerate(busy):
        for j, c in enumerate(clients):
            assert (c.ls(pseudo(sid)).returncode == 0) == (j == i + 1), (sid, c)


def test_the_wait_for_the_servers_lock_is_bounded(export_env, ganesha_server):
    driver, server, shares, (c0, *_) = export_env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    impatient = GaneshaExportDriver({SERVER_ID: ganesha_server}, timeout=0.2)
    with filelock.locked(lock_path(ganesha_server, sid), timeout=5):
        with pytest.raises(ExportError) as e:
            impatient.update_access(server, sid, [rw(c0)])
    assert e.value.user_message == "the NFS server is busy with other changes; try again"
    assert driver.list_exports(server) == {sid: []}
    impatient.update_access(server, sid, [rw(c0)])  # free again: it goes through
    assert c0.ls(pseudo(sid)).returncode == 0


def test_a_change_written_but_not_served_is_served_on_retry(export_env, ganesha_server):
    """A conductor that died after writing the export's file but before
    telling Ganesha (a client list, and a whole new export)."""
    driver, server, shares, (c0, *_) = export_env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    spec = read_export(ganesha_server, sid)
    export_file(ganesha_server, sid).write_text(gc.render_export_file(replace(spec, clients=(rw(c0),))))
    assert c0.ls(pseudo(sid)).returncode != 0  # written, not served
    driver.update_access(server, sid, [rw(c0)])  # the retried call
    assert c0.ls(pseudo(sid)).returncode == 0

    fresh, fresh_path = new_volume(shares)
    os.symlink(fresh, ganesha_server.state_dir / "export-ids" / "4000")
    export_file(ganesha_server, fresh).write_text(gc.render_export_file(
        gc.ExportSpec(4000, fresh_path, pseudo(fresh), (rw(c0),))))
    assert c0.ls(pseudo(fresh)).returncode != 0  # written, not served
    driver.update_access(server, fresh, [rw(c0)])  # the retried step after the add
    assert c0.cat(pseudo(fresh, "hello")).stdout == f"hello from {fresh}\n"


def test_exports_survive_a_server_restart(export_env, ganesha_server):
    driver, server, shares, (c0, *_) = export_env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0)])
    ganesha_server.stop()
    assert not ganesha_server.is_running()
    ganesha_server.restart_wait = 0.2  # nobody restarts it here
    with pytest.raises(ExportError, match="not running"):
        driver.update_access(server, sid, [])  # cannot serve a change now
    ganesha_server.start()
    # The failed change was rolled back: the old client list is served.
    assert c0.ls(pseudo(sid)).returncode == 0
    assert driver.list_exports(server) == {sid: [rw(c0)]}


def test_a_change_waits_for_a_server_being_restarted(export_env, ganesha_server):
    """A change that meets the server down while its supervisor restarts it
    (the conductor pool does, within about a second) is served once the
    server is back, instead of failing the tenant's operation."""
    driver, server, shares, (c0, c1, _) = export_env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0)])
    ganesha_server.stop()
    before = written(ganesha_server, sid)

    def supervisor():
        # Restart only once the change is written: the driver is then past
        # finding the server down, waiting for it to be back.
        deadline = time.monotonic() + 30
        while written(ganesha_server, sid) == before and time.monotonic() < deadline:
            time.sleep(0.01)
        ganesha_server.start()

    restarter = threading.Thread(target=supervisor)
    restarter.start()
    try:
        driver.update_access(server, sid, [rw(c1)])
    finally:
        restarter.join(30)
    assert c1.ls(pseudo(sid)).returncode == 0
    assert c0.ls(pseudo(sid)).returncode != 0
    assert driver.list_exports(server) == {sid: [rw(c1)]}


def test_concurrent_updates_from_threads_and_processes(export_env, ganesha_server):
    driver, server, shares, clients = export_env
    vols = [new_volume(shares) for _ in range(4)]
    for sid, path in vols:
        driver.add_export(server, sid, path)
    final = {sid: [rw(clients[i % 3])] for i, (sid, _) in enumerate(vols)}

    def churn(sid):
        for c in clients:
            driver.update_access(server, sid, [ro(c)])
        driver.update_access(server, sid, final[sid])

    # Two shares churned by threads here, two by another process with its
    # own GaneshaServer object (it signals through the pid file).
    script = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        from shareflow.config import GaneshaConfig
        from shareflow.drivers.base import ClientRule
        from shareflow.drivers.export.ganesha import GaneshaExportDriver
        from shareflow.drivers.export.ganesha_server import GaneshaServer
        args = json.loads(sys.argv[1])
        cfg = GaneshaConfig(**{**args["cfg"], "state_dir": Path(args["cfg"]["state_dir"])})
        driver = GaneshaExportDriver({args["server"]["id"]: GaneshaServer(cfg)}, timeout=20)
        for sid, rules in args["work"]:
            for c in args["clients"]:
                driver.update_access(args["server"], sid, [ClientRule(c, "ro")])
            driver.update_access(args["server"], sid, [ClientRule.from_json(r) for r in rules])
        """
    )
    cfg = ganesha_server.cfg
    args = {
        "cfg": {"address": cfg.address, "port": cfg.port, "state_dir": str(cfg.state_dir),
                "netns": cfg.netns, "managed": cfg.managed},
        "server": server,
        "clients": [c.address for c in clients],
        "work": [[sid, [r.to_json() for r in final[sid]]] for sid, _ in vols[2:]],
    }
    proc = subprocess.Popen([sys.executable, "-c", script, json.dumps(args)])
    threads = [threading.Thread(target=churn, args=(sid,)) for sid, _ in vols[:2]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert proc.wait(60) == 0

    state = state_of(ganesha_server)  # every file whole, every change kept
    assert {sid: list(e.clients) for sid, e in state.items()} == final
    for i, (sid, _) in enumerate(vols):
        for j, c in enumerate(clients):
            allowed = c.ls(pseudo(sid)).returncode == 0
            assert allowed == (j == i % 3), (sid, c)


def test_size_limit_holds_over_nfs(export_env):
    driver, server, shares, (c0, *_) = export_env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0)])
    # The test's NFS client (libnfs 4.0 nfs-cp) cannot send a file larger than
    # NFS_WRITE_MAX bytes over NFSv4, so the volume is filled to its limit on
    # the storage host; then a small write through the NFS server must be
    # refused, where the same write was accepted before the volume was full.
    assert c0.put(pseudo(sid, "small"), b"x" * SMALL).returncode == 0
    fill_until_full(Path(path), full=(FULL_ERRNO[shares.capabilities()["share_driver"]],))
    refused = c0.put(pseudo(sid, "over"), b"y" * SMALL)
    assert refused.returncode != 0, "a write past the size limit was accepted"
    assert c0.cat(pseudo(sid, "small")).stdout == "x" * SMALL