"""The conductor pool's start-up ensure on the real stack: after a restart in
which every share's mount went away (as after a reboot), every share is
mounted again and served over NFS to the clients allowed, and ``shareflow
backend show`` says when the ensure finished, how long it took and how many
volumes it found.

The stack has a pool of its own, a sparse image large enough for 50 live
1 GiB shares (the scheduler never overcommits), made through the API.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from shareflow.cli.main import main
from shareflow.system import btrfs_pool, mounts
from tests.fixtures.stack import BACKEND, ServiceStack, wait_until
from tests.functional.lifecycle_helpers import Tenant

SHARES = 50
POOL_GB = SHARES + 8
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def roomy_pool(tmp_path_factory):
    base = tmp_path_factory.mktemp("startup-pool")
    pool = btrfs_pool.ensure_pool(base / "mnt", base / "pool.img", POOL_GB, timeout=TIMEOUT)
    try:
        yield pool
    finally:
        btrfs_pool.destroy_pool(pool, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def startup_stack(zookeeper_server, roomy_pool, tmp_path_factory):
    with ServiceStack(tmp_path_factory.mktemp("startup"), zk_hosts=zookeeper_server.hosts,
                      btrfs_pool=roomy_pool) as s:
        yield s


def backend_show(stack: ServiceStack, capsys) -> dict:
    rc = main(["--config", str(stack.config_path), "backend", "show", BACKEND, "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


def share_mounts(stack: ServiceStack) -> list[str]:
    return [os.path.basename(m.mount_point) for m in mounts.mounts_under(stack.btrfs.exports_dir)]


def test_restart_mounts_and_serves_every_share(startup_stack, capsys):
    stack = startup_stack
    tenant = Tenant(stack, "startup")
    client = stack.nfs(0)
    try:
        first = backend_show(stack, capsys)
        assert first["ensure_finished_at"] is not None and first["ensure_volumes"] == 0

        def make(i: int):
            share = tenant.create(1, name=f"s{i}")
            tenant.allow(share, client)
            marker = f"marker-{uuid.uuid4().hex[:8]}"
            Path(stack.btrfs.exports_dir, share.id, marker).write_text(str(i))
            return share.id, tenant.export_path(share), marker

        with ThreadPoolExecutor(4) as pool:
            shares = list(pool.map(make, range(SHARES)))
        assert sorted(share_mounts(stack)) == sorted(sid for sid, _, _ in shares)

        def unmount_all():
            # The pool has stopped (its NFS-Ganesha with it): take every
            # share's mount away, as a reboot would.
            for m in mounts.mounts_under(stack.btrfs.exports_dir):
                mounts.unmount(m.mount_point, timeout=TIMEOUT)
            assert share_mounts(stack) == []

        restarted = datetime.utcnow().replace(microsecond=0)
        stack.restart_pool(unmount_all)

        def ensured():
            shown = backend_show(stack, capsys)
            finished = shown["ensure_finished_at"]
            return shown if finished and datetime.fromisoformat(finished) >= restarted else None

        shown = wait_until(ensured, TIMEOUT, "the restarted pool to finish its ensure")
        assert shown["ensure_volumes"] == SHARES and shown["ensure_failures"] == 0
        assert datetime.fromisoformat(shown["ensure_started_at"]) >= restarted
        assert 0 < shown["ensure_seconds"] < TIMEOUT
        assert shown["ensure"].startswith("finished ") and f"({SHARES} volumes)" in shown["ensure"]
        assert sorted(share_mounts(stack)) == sorted(sid for sid, _, _ in shares)
        log = stack.log("pool")
        assert f"{SHARES}/{SHARES} volumes mounted" in log

        # Served again: every export answers the allowed client with its
        # content; another client is still refused.
        for sid, path, marker in shares:
            done = client.ls(path)
            assert done.returncode == 0 and marker in done.stdout, (sid, done.stderr)
        assert stack.nfs(1).ls(shares[0][1]).returncode != 0
    finally:
        tenant.cleanup()


def test_backend_show_names_an_unknown_backend(startup_stack, capsys):
    rc = main(["--config", str(startup_stack.config_path), "backend", "show", "nope"])
    _, err = capsys.readouterr()
    assert rc == 1 and "no backend 'nope'" in err


def test_a_pool_restart_keeps_every_export_served(zookeeper_server, tmp_path_factory, capsys):
    """``conductor.export_servers_at_exit = keep`` (the default outside
    ``shareflow run``): restarting the conductors never cuts NFS clients off.
    The pool's NFS-Ganesha keeps serving while no pool runs, the next pool
    adopts that same process (no restart, which takes minutes with thousands
    of exports) and changes its exports as before."""
    from shareflow.drivers.export.ganesha_server import GaneshaServer

    pool = btrfs_pool.ensure_pool(*_small_pool(tmp_path_factory), 8, timeout=TIMEOUT)
    try:
        with ServiceStack(tmp_path_factory.mktemp("keep"), zk_hosts=zookeeper_server.hosts,
                          btrfs_pool=pool, export_servers_at_exit="keep") as stack:
            tenant = Tenant(stack, "keep")
            client = stack.nfs(0)
            ganesha = GaneshaServer(stack.config.backend(BACKEND).ganesha)
            try:
                share = tenant.create(1, name="kept")
                tenant.allow(share, client)
                path = tenant.export_path(share)
                assert client.ls(path).returncode == 0
                before = ganesha.pid()
                assert before is not None
                restarted = datetime.utcnow().replace(microsecond=0)
                served_meanwhile = []

                def while_no_pool_runs():
                    served_meanwhile.append(client.ls(path))

                stack.restart_pool(while_no_pool_runs)
                assert served_meanwhile[0].returncode == 0, served_meanwhile[0].stderr
                assert "leaving the export servers serving" in stack.log("pool")

                def ensured():
                    finished = backend_show(stack, capsys)["ensure_finished_at"]
                    return finished and datetime.fromisoformat(finished) >= restarted

                wait_until(ensured, TIMEOUT, "the restarted pool to finish its ensure")
                assert ganesha.pid() == before, "the new pool restarted NFS-Ganesha instead of adopting it"
                # The adopted server still takes export changes from the new pool.
                second = tenant.create(1, name="after")
                tenant.allow(second, client)
                assert client.ls(tenant.export_path(second)).returncode == 0
                assert client.ls(path).returncode == 0
                assert ganesha.pid() == before
            finally:
                tenant.cleanup()
        assert ganesha.pid() is None, "the stack's teardown left NFS-Ganesha running"
    finally:
        btrfs_pool.destroy_pool(pool, timeout=TIMEOUT)


def _small_pool(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("keep-pool")
    return base / "mnt", base / "pool.img"


def test_a_pool_stopped_during_its_ensure_leaves_nothing_running(startup_stack, caplog):
    """A stop that comes while the ensure starts NFS-Ganesha (seconds with
    thousands of exports): the start is abandoned and that Ganesha stopped,
    no conductor worker is started, and the pool ends cleanly (before, the
    pool went on to start its workers, and a pool killed meanwhile left a
    Ganesha holding its port)."""
    from shareflow.drivers.export.ganesha_server import GaneshaServer
    from shareflow.engine.pool import ConductorPool
    from tests.fixtures.storage import live_pids_with_argument

    stack = startup_stack
    stack._terminate(stack.pool)  # its Ganesha goes with it (the stack's default)
    ganesha_config = GaneshaServer(stack.config.backends[0].ganesha).config_path
    assert live_pids_with_argument(ganesha_config) == []
    pool = ConductorPool(stack.config, 1)
    pool.stop()  # as SIGTERM would, before the ensure reaches the server's start
    caplog.set_level(logging.INFO)
    try:
        assert pool.run() == 0
        assert pool.worker_pids == []
        assert live_pids_with_argument(ganesha_config) == []
        said = [r.getMessage() for r in caplog.records]
        assert any(m.startswith("starting ") and str(ganesha_config) in m for m in said), said  # it was spawned
        assert "stopped during the start-up ensure" in said
    finally:
        ensured = stack.log("pool").count("ensure: ")
        stack.restart_pool()
        # Its ensure over (Ganesha serving) before the module's teardown stops it.
        wait_until(lambda: stack.log("pool").count("ensure: ") > ensured, TIMEOUT, "the next pool's ensure")
