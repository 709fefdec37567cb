"""A pooled PostgreSQL connection is checked without a round trip per
transaction (no ``pool_pre_ping``), and a connection the server dropped -
a killed backend, a restarted server - still never fails the caller's next
transaction: the checkout sees that the server spoke to the idle connection,
pings it, and hands out a fresh one instead. Real PostgreSQL; the pings are
counted by wrapping the dialect's ``do_ping`` (it still runs)."""

from __future__ import annotations

import contextlib
import time

import psycopg
import pytest
import sqlalchemy as sa

from shareflow.db import engine as db_engine
from shareflow.db.engine import Database


@pytest.fixture
def db(postgres_db_url):
    database = Database(postgres_db_url)
    pings: list[float] = []
    ping = database.engine.dialect.do_ping

    def counted(dbapi_conn):
        pings.append(time.monotonic())
        return ping(dbapi_conn)

    database.engine.dialect.do_ping = counted
    database.pings = pings
    try:
        yield database
    finally:
        database.dispose()


def pooled_backends(db, n: int) -> set[int]:
    """Open ``n`` pooled connections at once; their server pids."""
    with contextlib.ExitStack() as stack:
        sessions = [stack.enter_context(db.read()) for _ in range(n)]
        return {s.execute(sa.text("select pg_backend_pid()")).scalar_one() for s in sessions}


def one_transaction(db) -> int:
    with db.write() as s:
        return s.execute(sa.text("select 1")).scalar_one()


def test_no_ping_per_transaction(db):
    pooled_backends(db, 3)
    for _ in range(20):
        assert one_transaction(db) == 1
    assert db.pings == []


def test_killed_backends_do_not_fail_the_next_transactions(db, postgres_cluster):
    pids = pooled_backends(db, 3)
    admin_url = postgres_cluster.url("postgres").replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(admin_url, autocommit=True) as admin:
        for pid in pids:
            admin.execute("select pg_terminate_backend(%s)", (pid,))
        # Synchronise on the server: the backends are gone.
        deadline = time.monotonic() + 10
        while admin.execute("select count(*) from pg_stat_activity where pid = any(%s)",
                            (list(pids),)).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed backends did not go"
            time.sleep(0.05)
    for _ in range(5):
        assert one_transaction(db) == 1
    assert db.pings, "a connection the server closed was handed out unchecked"
    assert pooled_backends(db, 3).isdisjoint(pids)


def test_a_restarted_server_does_not_fail_the_next_transactions(db, postgres_cluster):
    pids = pooled_backends(db, 3)
    postgres_cluster.restart()
    for _ in range(5):
        assert one_transaction(db) == 1
    assert db.pings
    assert pooled_backends(db, 3).isdisjoint(pids)


def test_an_idle_connection_is_pinged(db, monkeypatch):
    pooled_backends(db, 1)
    monkeypatch.setattr(db_engine, "IDLE_PING_AFTER", 0.0)
    time.sleep(0.01)  # idle for longer than the (patched) limit: the state under test, not a wait
    assert one_transaction(db) == 1
    assert len(db.pings) == 1
