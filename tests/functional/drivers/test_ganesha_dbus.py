"""Exports changed over Ganesha's private D-Bus, checked by real NFS clients.

Ganesha and its dbus-daemon run as the ``ganesha_server`` fixture starts
them (192.0.2.1:2049 in a test namespace); clients 0, 1 and 2 are libnfs
tools in their own namespaces. Processes are stopped by their own pids.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

import pytest

from shareflow.drivers.export.dbus_daemon import BusDaemon
from shareflow.drivers.export.ganesha import export_file, read_export
from shareflow.drivers.export.ganesha_server import BINARY, RELOAD_MARK, _listening
from shareflow.exceptions import ExportError
from shareflow.system import netns
from tests.fixtures.stack import wait_until
from tests.fixtures.export_env import export_env as make_export_env
from tests.fixtures.export_env import new_volume, pseudo, ro, rw


@pytest.fixture
def env(btrfs_share_driver, ganesha_server, nfs_clients):
    return make_export_env(btrfs_share_driver, ganesha_server, nfs_clients)


def served_ids(gs) -> set[int]:
    """What the running Ganesha serves, as it says over its bus."""
    return set(gs.export_manager().served())


def test_changes_over_dbus_are_served_at_once_without_a_reload(env, ganesha_server):
    driver, server, shares, (c0, c1, _) = env
    assert ganesha_server.on_bus()
    listed = ganesha_server.exports_path.stat()
    log_start = ganesha_server.log_path.stat().st_size
    sid, path = new_volume(shares)
    other, other_path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.add_export(server, other, other_path)
    assert served_ids(ganesha_server) == {read_export(ganesha_server, s).export_id for s in (sid, other)}

    driver.update_access(server, sid, [rw(c0)])
    assert c0.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"
    assert c1.ls(pseudo(sid)).returncode != 0
    driver.update_access(server, sid, [ro(c1)])  # the client list changes in place
    assert c1.cat(pseudo(sid, "hello")).returncode == 0
    assert c1.put(pseudo(sid, "x"), b"x").returncode != 0
    assert c0.ls(pseudo(sid)).returncode != 0

    driver.remove_export(server, sid)
    assert c1.ls(pseudo(sid)).returncode != 0
    assert served_ids(ganesha_server) == {read_export(ganesha_server, other).export_id}
    # None of it re-read the configuration: the include list is the one the
    # server started with, and the log has no reload.
    now = ganesha_server.exports_path.stat()
    assert (now.st_ino, now.st_mtime_ns) == (listed.st_ino, listed.st_mtime_ns)
    assert RELOAD_MARK not in ganesha_server.log_path.read_text()[log_start:]


def test_a_restarted_server_serves_every_export_from_the_files(env, ganesha_server):
    """The start reads the exports from one file that sets their common
    options once (EXPORT_DEFAULTS): each is served as its own file says -
    root not squashed, read-only clients refused writes, content changed
    under the server seen at once (no attribute caching)."""
    driver, server, shares, clients = env
    vols = [new_volume(shares) for _ in range(3)]
    for i, (sid, path) in enumerate(vols):
        driver.add_export(server, sid, path)
        driver.update_access(server, sid, [(ro if i == 1 else rw)(clients[i])])
    gone, gone_path = new_volume(shares)
    driver.add_export(server, gone, gone_path)
    driver.update_access(server, gone, [rw(clients[0])])
    driver.remove_export(server, gone)

    ganesha_server.stop()
    assert not ganesha_server.is_running() and not ganesha_server.bus.is_running()
    ganesha_server.start()
    assert ganesha_server.on_bus()
    assert "EXPORT_DEFAULTS" in ganesha_server.exports_path.read_text()
    for i, (sid, _) in enumerate(vols):
        for j, c in enumerate(clients):
            assert (c.ls(pseudo(sid)).returncode == 0) == (i == j), (sid, c)
    assert clients[0].ls(pseudo(gone)).returncode != 0
    assert served_ids(ganesha_server) == {read_export(ganesha_server, s).export_id for s, _ in vols}

    (sid, path), (ro_sid, ro_path) = vols[0], vols[1]
    assert clients[0].put(pseudo(sid, "by-root"), b"x").returncode == 0
    assert os.stat(Path(path, "by-root")).st_uid == 0  # No_Root_Squash
    denied = clients[1].put(pseudo(ro_sid, "nope"), b"no")
    assert denied.returncode != 0 and "NFS4ERR_ROFS" in denied.stdout + denied.stderr
    assert not Path(ro_path, "nope").exists()
    assert clients[0].cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"
    Path(path, "hello").write_text("changed under the server, and longer than before\n")
    assert clients[0].cat(pseudo(sid, "hello")).stdout == "changed under the server, and longer than before\n"


def test_a_dead_bus_takes_its_server_down_and_both_come_back(env, ganesha_server):
    """Ganesha exits when its bus goes; the server then reads as not
    running, a change waits for its supervisor, and start() brings the bus
    and Ganesha back with every export."""
    driver, server, shares, (c0, c1, _) = env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    driver.update_access(server, sid, [rw(c0)])
    ganesha_pid = ganesha_server.pid()
    os.kill(ganesha_server.bus.pid(), signal.SIGKILL)
    wait_until(lambda: not ganesha_server.is_running(), 20, "Ganesha to notice its bus is gone")

    ganesha_server.restart_wait = 0.2  # nobody restarts it yet
    with pytest.raises(ExportError, match="not running") as e:
        driver.update_access(server, sid, [rw(c1)])
    assert e.value.user_message == "the NFS server is not running"
    assert read_export(ganesha_server, sid).clients == (rw(c0),)  # the failed change put back

    ganesha_server.restart_wait = 20
    before = export_file(ganesha_server, sid).stat().st_ino

    def supervisor():
        # Restart once the change is written: the driver is waiting then.
        wait_until(lambda: export_file(ganesha_server, sid).stat().st_ino != before, 20, "the change")
        ganesha_server.start()

    restarter = threading.Thread(target=supervisor)
    restarter.start()
    try:
        driver.update_access(server, sid, [rw(c1)])
    finally:
        restarter.join(30)
    assert ganesha_server.pid() not in (None, ganesha_pid) and ganesha_server.on_bus()
    assert c1.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"
    assert c0.ls(pseudo(sid)).returncode != 0


def test_a_bus_that_does_not_answer_fails_the_change_clearly(env, ganesha_server):
    driver, server, shares, (c0, *_) = env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    bus_pid = ganesha_server.bus.pid()
    ganesha_server.restart_wait = 0.2
    ganesha_server.export_manager().timeout = 0.5
    os.kill(bus_pid, signal.SIGSTOP)
    try:
        with pytest.raises(ExportError, match="did not answer") as e:
            driver.update_access(server, sid, [rw(c0)])
        assert e.value.user_message == "the NFS server did not answer"
    finally:
        os.kill(bus_pid, signal.SIGCONT)
    assert read_export(ganesha_server, sid).clients == ()  # the failed change put back
    driver.update_access(server, sid, [rw(c0)])  # answering again: the change goes through
    assert c0.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"


def test_an_export_ganesha_refuses_over_dbus_leaves_no_file_and_no_id(env, ganesha_server):
    driver, server, shares, (c0, *_) = env
    bad = str(uuid.uuid4())
    with pytest.raises(ExportError) as e:
        driver.add_export(server, bad, "/dev")
    assert "resolve_posix_filesystem(/dev)" in str(e.value)
    assert not export_file(ganesha_server, bad).exists()
    assert os.listdir(ganesha_server.state_dir / "export-ids") == []
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)  # the server takes the next one, with the first id
    assert read_export(ganesha_server, sid).export_id == 100


def test_a_server_not_on_its_bus_takes_changes_by_sighup(env, ganesha_server, test_network):
    """An operator's Ganesha (or one from before the private bus): started
    without the bus address, it gets the include list rewritten and SIGHUP."""
    driver, server, shares, (c0, *_) = env
    sid, path = new_volume(shares)
    driver.add_export(server, sid, path)
    ganesha_server.stop()
    ganesha_server.write_config()
    argv = netns.exec_argv(test_network.server_ns, [
        BINARY, "-F", "-f", str(ganesha_server.config_path), "-L", str(ganesha_server.log_path),
        "-p", str(ganesha_server.pid_path)])
    env_without_bus = {k: v for k, v in os.environ.items() if k != "DBUS_SYSTEM_BUS_ADDRESS"}
    proc = subprocess.Popen(argv, env=env_without_bus, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_until(lambda: ganesha_server.pid() == proc.pid and _listening(proc.pid, ganesha_server.port), 20,
                   "Ganesha to listen")
        assert not ganesha_server.on_bus() and ganesha_server.is_running()
        log_start = ganesha_server.log_path.stat().st_size
        driver.update_access(server, sid, [rw(c0)])
        assert c0.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"
        assert RELOAD_MARK in ganesha_server.log_path.read_text()[log_start:]
        driver.remove_export(server, sid)
        assert c0.ls(pseudo(sid)).returncode != 0
        assert sid not in ganesha_server.exports_path.read_text()
    finally:
        ganesha_server.stop()
        proc.wait(20)


def test_exports_of_the_single_state_file_are_moved_to_export_files(env, ganesha_server):
    driver, server, shares, (c0, c1, _) = env
    sid, path = new_volume(shares)
    ganesha_server.stop()
    old = {"version": 1, "serial": 4, "exports": {sid: {
        "export_id": 321, "path": path, "pseudo": pseudo(sid),
        "clients": [{"access_to": c0.address, "access_level": "rw"}]}}}
    (ganesha_server.state_dir / "exports.json").write_text(json.dumps(old))
    ganesha_server.start()
    assert c0.cat(pseudo(sid, "hello")).stdout == f"hello from {sid}\n"
    assert driver.list_exports(server) == {sid: [rw(c0)]}
    assert read_export(ganesha_server, sid).export_id == 321
    assert (ganesha_server.state_dir / "exports.json.migrated").exists()
    driver.update_access(server, sid, [rw(c1)])
    assert c1.ls(pseudo(sid)).returncode == 0 and c0.ls(pseudo(sid)).returncode != 0


def test_only_root_may_own_ganeshas_name(tmp_path):
    """The bus's policy: another user cannot own org.ganesha.nfsd (nor talk
    to the bus at all); root can (here no Ganesha holds the name)."""
    # A directory others may traverse, so that only the bus policy decides.
    where = Path(tempfile.mkdtemp(prefix="sfbus", dir="/tmp"))
    where.chmod(0o755)
    bus = BusDaemon(where)
    bus.start()
    try:
        def claim(user: int | None) -> subprocess.CompletedProcess:
            return subprocess.run(
                ["dbus-send", f"--bus={bus.address}", "--print-reply", "--dest=org.freedesktop.DBus",
                 "/org/freedesktop/DBus", "org.freedesktop.DBus.RequestName", "string:org.ganesha.nfsd",
                 "uint32:4"], capture_output=True, text=True, timeout=20, user=user)

        nobody = claim(65534)
        assert nobody.returncode != 0, nobody.stdout
        root = claim(None)
        assert root.returncode == 0, root.stderr
        assert root.stdout.split()[-1] == "1"  # DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
    finally:
        bus.stop()
        for p in where.iterdir():
            p.unlink()
        where.rmdir()


@pytest.mark.parametrize("socket_length", [99, 100, 107, 140])
def test_a_bus_starts_in_a_state_dir_of_any_depth(tmp_path, socket_length):
    """dbus-daemon refuses a socket path over its own 99 bytes ("Socket name
    too long"), below the kernel's 107: a share server's state directory is
    often that deep, so the bus is reached through a short link then."""
    base = tmp_path / "s"
    pad = socket_length - len(os.fsencode(base / "dbus.sock"))
    assert pad > 0
    state_dir = tmp_path / ("d" * (pad - 1)) / "s" if pad > 1 else base
    state_dir.mkdir(parents=True)
    bus = BusDaemon(state_dir)
    assert len(os.fsencode(bus.socket_path)) == socket_length
    bus.start()
    try:
        assert bus.is_running()
        reply = subprocess.run(["dbus-send", f"--bus={bus.address}", "--print-reply", "--dest=org.freedesktop.DBus",
                                "/org/freedesktop/DBus", "org.freedesktop.DBus.GetId"],
                               capture_output=True, text=True, timeout=20)
        assert reply.returncode == 0, reply.stderr
    finally:
        bus.stop()
    assert not bus.is_running()
