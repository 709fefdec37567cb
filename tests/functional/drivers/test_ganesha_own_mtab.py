"""NFS-Ganesha with a mount table of its own (``ganesha.mount_table = "own"``),
checked by real NFS clients.

Ganesha 4.3 reads the whole mount table for every export it creates; in its
own mount namespace it reads a table that lists only the exports being
created (``shareflow/drivers/export/ganesha_mtab.py``). The btrfs volumes
live below a directory made a *shared* mount here (systemd makes every mount
shared; this machine's are private), so a volume mounted after Ganesha
started reaches its namespace. Ganesha runs on 192.0.2.1:2049 in a test
network namespace; clients 0-2 are libnfs tools in their own. Everything is
stopped and unmounted by its own handle (pid, path).
"""

from __future__ import annotations

import os
import threading
from dataclasses import replace

import pytest

from shareflow.drivers.export import ganesha_config as gc
from shareflow.drivers.export import ganesha_mtab as gm
from shareflow.drivers.export.ganesha import export_file, read_export
from shareflow.drivers.export.ganesha_dbus import ExportManager
from shareflow.drivers.export.ganesha_server import GaneshaServer
from shareflow.drivers.share.btrfs import BtrfsShareDriver
from shareflow.exceptions import ExportError
from shareflow.system import btrfs, mounts
from tests.fixtures.export_env import export_env as make_export_env
from tests.fixtures.export_env import new_volume, pseudo, rw
from tests.fixtures.storage import MS_PRIVATE, MS_SHARED, TIMEOUT, ganesha_config_for, own_mount, pool_view

ROOT = gm.line_for("/").rstrip("\n")
@pytest.fixture
def shared_shares(btrfs_pool, tmp_path):
    """A btrfs share driver whose pool view and mounts sit below a shared mount."""
    with own_mount(tmp_path / "shared", MS_SHARED) as base, pool_view(btrfs_pool, base) as cfg:
        yield BtrfsShareDriver(cfg, timeout=TIMEOUT)


@pytest.fixture
def own_server(shared_shares, test_network, tmp_path):
    server = GaneshaServer(replace(ganesha_config_for(test_network, tmp_path / "ganesha"), mount_table="own"),
                           timeout=TIMEOUT)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def env(shared_shares, own_server, nfs_clients):
    return make_export_env(shared_shares, own_server, nfs_clients)


@pytest.fixture
def tables_at_calls(monkeypatch, own_server):
    """(call, share id, the server's table) as it was when each
    AddExport/UpdateExport was sent."""
    seen: list[tuple[str, str, list[str]]] = []

    def recording(name, original):
        def call(self, conf_path, export_id):
            seen.append((name, os.path.basename(conf_path).removesuffix(".conf"), own_server.own_table.lines()))
            return original(self, conf_path, export_id)
        return call

    monkeypatch.setattr(ExportManager, "add", recording("add", ExportManager.add))
    monkeypatch.setattr(ExportManager, "update", recording("update", ExportManager.update))
    return seen


def line(path: str) -> str:
    return gm.line_for(path).rstrip("\n")


def test_the_server_reads_its_own_table_and_the_host_keeps_its_own(own_server):
    host_mtab = os.readlink("/etc/mtab")
    pid = own_server.pid()
    assert own_server.own_table.read_by(pid)
    assert os.readlink(f"/proc/{pid}/root/etc/mtab") == str(own_server.own_table.path)
    assert os.readlink("/etc/mtab") == host_mtab  # nothing leaked out of its namespace
    assert os.stat(f"/proc/{pid}/ns/mnt").st_ino != os.stat("/proc/self/ns/mnt").st_ino
    assert own_server.own_table.lines() == [ROOT]  # started: nothing being created


def test_an_export_added_over_dbus_is_served_at_once_and_its_table_held_only_it(env, own_server, tables_at_calls):
    driver, server, shares, (c0, c1, _) = env
    unrelated = [new_volume(shares) for _ in range(5)]  # mounted, not exported
    sid, path = new_volume(shares)  # mounted after Ganesha started
    host_lines = open("/proc/self/mounts").read()
    assert all(p in host_lines for _, p in unrelated) and path in host_lines

    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0)])
    assert c0.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"
    assert c1.ls(pseudo(sid)).returncode != 0
    # What Ganesha scanned when it created the export: the root and the
    # export's own mount, nothing of the host's other mounts.
    assert tables_at_calls[0] == ("add", sid, [ROOT, line(path)])
    assert line(path) == f"shareflow {path} btrfs rw"  # the share's own mount point
    assert own_server.own_table.lines() == [ROOT]

    driver.remove_export(server, sid)
    assert c0.ls(pseudo(sid)).returncode != 0
    driver.add_export(server, sid, path)  # and back, on the same mount
    driver.update_access(server, sid, [rw(c1)])
    assert c1.cat(pseudo(sid, "hello")).returncode == 0


def test_two_exports_added_at_once_are_both_served(env, own_server, tables_at_calls):
    driver, server, shares, clients = env
    vols = [new_volume(shares) for _ in range(4)]
    barrier = threading.Barrier(len(vols))
    errors = []

    def add(i, sid, path):
        try:
            barrier.wait()
            driver.add_export(server, sid, path)
            driver.update_access(server, sid, [rw(clients[i % 3])])
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=add, args=(i, *v)) for i, v in enumerate(vols)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i, (sid, _) in enumerate(vols):
        assert clients[i % 3].cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"
    paths = dict(vols)
    adds = [(sid, lines) for name, sid, lines in tables_at_calls if name == "add"]
    assert sorted(sid for sid, _ in adds) == sorted(paths)
    # Each call found its own line, whatever the others were doing, and
    # nothing but the lines of exports being added at that moment.
    for sid, lines in adds:
        assert lines[0] == ROOT and line(paths[sid]) in lines
        assert set(lines[1:]) <= {line(p) for p in paths.values()}


def test_a_restarted_server_serves_every_export_and_read_them_all_at_start(env, own_server, monkeypatch):
    driver, server, shares, clients = env
    vols = [new_volume(shares) for _ in range(3)]
    for i, (sid, path) in enumerate(vols):
        driver.add_export(server, sid, path)
        driver.update_access(server, sid, [rw(clients[i])])
    at_start = []
    real_started = gm.MountTable.started

    def started(self):
        at_start.append(sorted(self.lines()))
        real_started(self)

    monkeypatch.setattr(gm.MountTable, "started", started)
    own_server.stop()
    own_server.start()
    assert at_start == [sorted([ROOT, *(line(p) for _, p in vols)])]
    assert own_server.own_table.lines() == [ROOT]
    for i, (sid, _) in enumerate(vols):
        for j, c in enumerate(clients):
            assert (c.ls(pseudo(sid)).returncode == 0) == (i == j), (sid, c)
    assert set(own_server.export_manager().served()) == {read_export(own_server, s).export_id for s, _ in vols}


def test_a_mount_the_server_cannot_see_fails_its_export_clearly(env, own_server, tmp_path):
    driver, server, shares, (c0, _, _) = env
    pool = shares._pool
    subvol = pool / "hidden"
    btrfs.subvolume_create(subvol, timeout=TIMEOUT)
    try:
        # Below a *private* mount made after Ganesha started: the host's
        # mounts there never reach Ganesha's namespace.
        with own_mount(tmp_path / "shared" / "private", MS_PRIVATE) as private:
            target = private / "vol"
            target.mkdir()
            mounts.bind_mount(subvol, target)
            try:
                with pytest.raises(ExportError, match="does not see") as e:
                    driver.add_export(server, "0b7c1f5e-9e3c-4b7a-8d1e-3f1f6f7a9c01", str(target))
                assert e.value.user_message == "the NFS server cannot see the share's storage"
                assert not export_file(own_server, "0b7c1f5e-9e3c-4b7a-8d1e-3f1f6f7a9c01").exists()
                assert set(own_server.export_manager().served()) == set()
                assert own_server.own_table.lines() == [ROOT]
            finally:
                mounts.unmount(target, timeout=TIMEOUT)
    finally:
        btrfs.subvolume_delete(subvol, timeout=TIMEOUT)


def test_the_hosts_private_mounts_are_not_kept_alive_in_its_namespace(own_server, tmp_path):
    """A private mount of the host gets no unmount from it: a copy kept in
    Ganesha's namespace would hold that filesystem after the host let it go."""
    own_server.stop()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mounts.bind_mount(elsewhere, elsewhere)
    try:
        own_server.start()
        with open(f"/proc/{own_server.pid()}/mountinfo") as f:
            theirs = [row.split()[4] for row in f]
    finally:
        mounts.unmount(elsewhere, timeout=TIMEOUT)
    assert str(elsewhere) not in theirs
    assert str(tmp_path / "shared") in theirs  # what it needs stays


def test_a_sighup_reload_finds_every_export_in_the_table(env, own_server):
    """A reload creates the exports it has not served yet: the table lists
    every export of the file it re-reads while it does."""
    driver, server, shares, (c0, _, _) = env
    sid, path = new_volume(shares)
    spec = gc.ExportSpec(export_id=100, path=path, pseudo=gc.pseudo_path(sid), clients=(rw(c0),))
    export_file(own_server, sid).write_text(gc.render_export_file(spec))  # not told over D-Bus
    own_server.write_exports_list()
    own_server.reload()
    assert c0.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"
    assert own_server.own_table.lines() == [ROOT]


def test_the_start_lines_a_dead_starter_left_go_with_the_next_change(env, own_server, tables_at_calls):
    driver, server, shares, _ = env
    old, old_path = new_volume(shares)
    own_server.own_table.prepare([old_path])  # as a starter that died before started()
    assert own_server.own_table.starting()
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    assert tables_at_calls[0] == ("add", sid, [ROOT, line(path)])
    assert not own_server.own_table.starting() and own_server.own_table.lines() == [ROOT]


def test_a_start_the_helper_refuses_says_why(shared_shares, test_network, tmp_path, monkeypatch):
    from shareflow.drivers.export import ganesha_server as gs_mod

    helper = tmp_path / "refusing_helper.py"
    helper.write_text("import sys\nprint('own_mtab: no open_tree here', file=sys.stderr)\nsys.exit(1)\n")
    monkeypatch.setattr(gs_mod.own_mtab, "__file__", str(helper))
    server = GaneshaServer(replace(ganesha_config_for(test_network, tmp_path / "refused"), mount_table="own"),
                           timeout=TIMEOUT)
    try:
        with pytest.raises(ExportError, match="exited with 1 at start.*own_mtab: no open_tree here"):
            server.start()
        assert not server.own_table.starting()
    finally:
        server.stop()


def test_a_client_list_the_server_serves_already_is_not_told_again(env, own_server, tables_at_calls):
    """The create's access step tells Ganesha the client list the export
    step just served: no call. A new list changes the served export in
    place, without the table listing (no export is created); a restarted
    server (another instance) is told again."""
    driver, server, shares, (c0, c1, _) = env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [])  # as the create's access step does
    driver.add_export(server, sid, path)  # as a retried export step does
    assert tables_at_calls == [("add", sid, [ROOT, line(path)])]

    driver.update_access(server, sid, [rw(c0)])
    assert tables_at_calls[1:] == [("update", sid, [ROOT])]  # in place: nothing listed
    assert c0.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"
    assert c1.ls(pseudo(sid)).returncode != 0
    driver.update_access(server, sid, [rw(c0)])
    assert len(tables_at_calls) == 2

    own_server.stop()
    own_server.start()
    driver.update_access(server, sid, [rw(c0)])
    assert tables_at_calls[2:] == [("update", sid, [ROOT, line(path)])]
    assert c0.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"


def test_a_change_whose_conductor_died_after_telling_the_server_is_told_again(env, own_server):
    """A removal killed between Ganesha's answer and the file's deletion
    leaves the export unserved with its file as it was: the next change
    with the same client list must not take it for served."""
    driver, server, shares, (c0, *_) = env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0)])
    child = os.fork()
    if child == 0:  # the conductor that dies
        try:
            own_server._export_manager = None  # a connection to the bus of its own
            removing = ExportManager.remove

            def remove_then_die(self, export_id):
                removing(self, export_id)
                os._exit(0)

            ExportManager.remove = remove_then_die
            driver.remove_export(server, sid)
        finally:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # died right after RemoveExport
    assert export_file(own_server, sid).exists()
    assert c0.ls(pseudo(sid)).returncode != 0

    driver.update_access(server, sid, [rw(c0)])
    assert c0.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"


def test_an_export_removed_behind_the_drivers_back_is_served_with_the_next_client_list(env, own_server):
    """Ganesha's exports are the driver's: the same list told again does
    not repair an export an operator removed over the bus (a restart or the
    reconcile check finds it), but the next new list does - its in-place
    update is refused, and the export is created with its table line."""
    driver, server, shares, (c0, c1, _) = env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0)])
    own_server.export_manager().remove(read_export(own_server, sid).export_id)
    assert c0.ls(pseudo(sid)).returncode != 0
    driver.update_access(server, sid, [rw(c0), rw(c1)])
    assert c1.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"
    assert c0.ls(pseudo(sid)).returncode == 0
