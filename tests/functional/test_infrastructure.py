"""The private infrastructure the other tests stand on: ZooKeeper and PostgreSQL are real."""

from __future__ import annotations

import os
import socket

import pytest
import sqlalchemy as sa
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from shareflow.exceptions import CoordinationError
from shareflow.system.ports import free_port, port_in_use
from shareflow.system.zookeeper import ZooKeeperServer, four_letter_word
from tests.fixtures.coordination import chroot, close_client, start_client


def test_zookeeper_answers_ruok_on_loopback(zookeeper_server):
    assert zookeeper_server.is_running()
    host, port = zookeeper_server.host, zookeeper_server.port
    assert host == "127.0.0.1"
    assert four_letter_word(host, port, "ruok") == "imok"
    # kazoo's server_version() (called by TaskFlow's board on connect) needs `envi`.
    assert "zookeeper.version=" in four_letter_word(host, port, "envi")
    assert "Mode: standalone" in four_letter_word(host, port, "srvr")
    config = zookeeper_server.config_path.read_text()
    assert "admin.enableServer=false" in config
    assert "minSessionTimeout=1000" in config


def test_kazoo_creates_and_deletes_under_chroot(kazoo_client, zk_chroot):
    assert kazoo_client.exists(zk_chroot) is not None
    kazoo_client.create(f"{zk_chroot}/jobs/job-1", b"payload", makepath=True)
    data, _ = kazoo_client.get(f"{zk_chroot}/jobs/job-1")
    assert data == b"payload"
    assert kazoo_client.get_children(f"{zk_chroot}/jobs") == ["job-1"]
    kazoo_client.delete(f"{zk_chroot}/jobs/job-1")
    assert kazoo_client.get_children(f"{zk_chroot}/jobs") == []


def test_zk_hosts_is_confined_to_the_chroot(zk_hosts, zk_chroot, kazoo_client):
    confined = start_client(zk_hosts)
    try:
        confined.create("/board/x", b"1", makepath=True)
    finally:
        close_client(confined)
    assert kazoo_client.exists(f"{zk_chroot}/board/x") is not None


def test_short_sessions_are_granted(zookeeper_server):
    client = KazooClient(hosts=zookeeper_server.hosts, timeout=1.0)
    client.start(timeout=15)
    try:
        session_id = f"sid=0x{client.client_id[0]:x},"
        cons = four_letter_word(zookeeper_server.host, zookeeper_server.port, "cons")
        line = next(line for line in cons.splitlines() if session_id in line)
        assert ",to=1000," in line  # the timeout the server granted, in ms
    finally:
        close_client(client)


def test_chroot_tree_is_removed_afterwards(zookeeper_server, kazoo_client):
    # The zk_chroot fixture is this context manager; check its clean-up directly.
    with chroot(zookeeper_server.hosts) as path:
        kazoo_client.create(f"{path}/a/b/c", makepath=True)
        kazoo_client.create(f"{path}/a/eph", ephemeral=True)
    assert kazoo_client.exists(path) is None
    with pytest.raises(NoNodeError):
        kazoo_client.get_children(path)


def test_zookeeper_server_life_cycle(tmp_path):
    port = free_port()
    server = ZooKeeperServer(tmp_path / "zk", port, tick_ms=500)
    with server:
        assert server.is_running()
        assert server.hosts == f"127.0.0.1:{port}"
        assert server.startup_seconds is not None
        pid = server.pid
        client = start_client(server.hosts)
        client.create("/survives-restart", b"yes")
        close_client(client)
    assert not server.is_running()
    assert server.pid is None
    assert not port_in_use("127.0.0.1", port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    # Restart on the same data dir keeps the tree.
    with server:
        client = start_client(server.hosts)
        try:
            assert client.get("/survives-restart")[0] == b"yes"
        finally:
            close_client(client)
    assert server.stop() is None  # idempotent


def test_zookeeper_refuses_a_taken_port(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ZooKeeperServer(tmp_path / "zk", taken.getsockname()[1])
        with pytest.raises(CoordinationError, match="already in use"):
            server.start()
        assert not server.is_running()


def test_postgres_accepts_sqlalchemy_psycopg3(postgres_url):
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.dialect.driver == "psycopg"
            assert conn.execute(sa.text("select 1")).scalar_one() == 1
            assert conn.execute(sa.text("select current_database()")).scalar_one() == "shareflow"
            assert conn.execute(sa.text("show listen_addresses")).scalar_one() == "127.0.0.1"
            version = conn.execute(sa.text("show server_version_num")).scalar_one()
            assert int(version) >= 150000
    finally:
        engine.dispose()
