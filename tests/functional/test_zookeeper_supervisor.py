"""``shareflow run`` keeps its embedded ZooKeeper alive through
:class:`ZooKeeperSupervisor`: a killed server is started again on its data,
and one that cannot start is retried with a growing backoff. On a real
ZooKeeper process of each test's own, killed by its pid."""

from __future__ import annotations

import logging
import os
import signal
import socket

from shareflow.system.ports import free_port
from shareflow.system.zookeeper import ZooKeeperServer, ZooKeeperSupervisor
from tests.fixtures.coordination import close_client, start_client
from tests.fixtures.stack import wait_until


def _killed(server: ZooKeeperServer) -> int:
    pid = server.pid
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not server.is_running(), 10, f"zookeeper pid {pid} to die")
    return pid


def test_a_killed_zookeeper_is_restarted_on_its_data(tmp_path, caplog):
    server = ZooKeeperServer(tmp_path / "zk", free_port(), tick_ms=500)
    server.start()
    try:
        client = start_client(server.hosts)
        client.create("/jobboard-node", b"kept")
        close_client(client)
        supervisor = ZooKeeperSupervisor(server)
        assert supervisor.check() and supervisor.restarts == 0

        victim = _killed(server)
        with caplog.at_level(logging.INFO, logger="shareflow.system.zookeeper"):
            assert supervisor.check()  # the first restart does not wait
        assert server.is_running() and server.pid != victim
        assert supervisor.restarts == 1
        messages = [r.getMessage() for r in caplog.records]
        assert any(f"pid {victim}) died" in m for m in messages), messages
        assert any("restarted" in m for m in messages), messages
        client = start_client(server.hosts)
        try:
            assert client.get("/jobboard-node")[0] == b"kept"
        finally:
            close_client(client)
    finally:
        server.stop()


def test_a_zookeeper_that_cannot_start_is_retried_with_backoff(tmp_path, caplog):
    port = free_port()
    server = ZooKeeperServer(tmp_path / "zk", port, tick_ms=500)
    server.start()
    now = [0.0]
    supervisor = ZooKeeperSupervisor(server, backoff=1.0, max_backoff=4.0, stable_after=60.0,
                                     clock=lambda: now[0])
    try:
        _killed(server)
        with socket.socket() as squatter:
            # Something else takes the port: every start fails.
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            squatter.bind(("127.0.0.1", port))
            squatter.listen()
            with caplog.at_level(logging.ERROR, logger="shareflow.system.zookeeper"):
                assert not supervisor.check()
            assert supervisor.attempts == 1
            assert any("could not restart" in r.getMessage() for r in caplog.records)
            waits = []
            for _ in range(4):
                delay = supervisor.delay()
                waits.append(delay)
                now[0] += delay / 2
                assert not supervisor.check()
                assert supervisor.attempts == len(waits), "retried before its backoff"
                now[0] += delay / 2
                assert not supervisor.check()
                assert supervisor.attempts == len(waits) + 1
            assert waits == [1.0, 2.0, 4.0, 4.0]
        # The port is free again: the next attempt brings it back.
        now[0] += supervisor.delay()
        assert supervisor.check() and server.is_running()
        assert supervisor.restarts == 1
        # Up long enough: the next death is restarted at once again.
        now[0] += 60.0
        assert supervisor.check() and supervisor.attempts == 0
        _killed(server)
        assert supervisor.check() and supervisor.restarts == 2
    finally:
        server.stop()


def test_shareflow_run_restarts_its_embedded_zookeeper(tmp_path, caplog):
    """The supervision loop of ``shareflow run`` itself (Launcher.wait) brings
    back the ZooKeeper it started."""
    import threading

    from shareflow.cli.run import Launcher
    from shareflow.config import parse

    port = free_port()
    config = parse({
        "state_dir": str(tmp_path / "var"),
        "zookeeper": {"hosts": f"127.0.0.1:{port}", "embedded": True, "data_dir": str(tmp_path / "zk")},
    }, tmp_path / "shareflow.toml")
    launcher = Launcher(config)
    launcher._start_zookeeper()
    server = launcher._zk
    outcome = []
    loop = threading.Thread(target=lambda: outcome.append(launcher.wait()))
    try:
        assert server is not None and server.is_running()
        with caplog.at_level(logging.INFO, logger="shareflow.system.zookeeper"):
            loop.start()
            victim = _killed(server)
            wait_until(lambda: any("restarted" in r.getMessage() for r in caplog.records), 90,
                       "shareflow run to restart its ZooKeeper")
        assert server.is_running() and server.pid != victim
        client = start_client(server.hosts)
        close_client(client)
    finally:
        launcher.request_stop()
        loop.join(timeout=90)
        launcher.stop()
    assert outcome == [0]
    assert not server.is_running()
