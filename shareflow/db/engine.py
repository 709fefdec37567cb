"""Database engine and sessions; the SQLAlchemy error boundary.

SQLite (the default) runs in WAL mode with a busy timeout, and write
transactions start with ``BEGIN IMMEDIATE``: several processes (API workers,
conductors) write to one file, and a deferred transaction that reads and then
writes can fail at once with "database is locked" instead of waiting its turn.
PostgreSQL URLs use psycopg 3, with a liveness check on checkout that costs
no round trip (see :func:`check_on_checkout`).
"""

from __future__ import annotations

import contextlib
import select
import time
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.orm import Session, sessionmaker

from shareflow.exceptions import Conflict, DatabaseError

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: A pooled PostgreSQL connection unused for longer than this is pinged
#: before it is handed out (see :func:`check_on_checkout`).
IDLE_PING_AFTER = 30.0


def normalise_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (psycopg2 is not a dependency)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> sa.Engine:
    url = normalise_url(url)
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            # Take transaction control away from pysqlite so "begin" below decides.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            options = conn.get_execution_options()
            if options.get("shareflow_snapshot"):
                return  # one statement in SQLite's autocommit mode: see Database.snapshot
            write = options.get("shareflow_write", True)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")

        return engine
    engine = sa.create_engine(url, pool_size=5, max_overflow=10)
    check_on_checkout(engine)
    return engine


def _server_spoke(dbapi_conn) -> bool:
    """Whether the server sent anything to an idle connection, or it is
    closed: nothing else is expected between two transactions, and a server
    that goes (restart, shutdown, ``pg_terminate_backend``) sends its FATAL
    notice and closes the socket. One non-blocking poll, no round trip."""
    if dbapi_conn.closed:
        return True
    try:
        fd = dbapi_conn.pgconn.socket
        readable, _, _ = select.select([fd], [], [], 0)
    except Exception:  # noqa: BLE001 - psycopg's own when its socket is gone: ask the server
        return True
    return bool(readable)


def check_on_checkout(engine: sa.Engine) -> None:
    """Protection against a dropped connection without SQLAlchemy's
    ``pool_pre_ping``, which sends ``SELECT 1`` (a round trip, ~0.1-1 ms) at
    every checkout - once per transaction, about twenty per create_share job.

    A connection is pinged only when there is a reason: the server sent it
    something while it sat in the pool (what a restart or a killed backend
    does), or it sat unused longer than ``idle_ping_after`` (a peer or
    firewall that dropped it silently). A ping that fails discards it and,
    as pre-ping does, every connection opened before it; the checkout then
    gets a fresh one, so the caller's transaction does not fail. A connection
    dropped silently while in use within the idle period is left to
    SQLAlchemy's disconnect handling: that transaction fails (503), the pool
    is invalidated, the next one reconnects."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn, record):
        record.info["shareflow_checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn, record, _proxy):
        checked_in = record.info.pop("shareflow_checked_in", None)
        if checked_in is None:
            return  # fresh from connect()
        if not _server_spoke(dbapi_conn) and time.monotonic() - checked_in <= IDLE_PING_AFTER:
            return
        try:
            dialect.do_ping(dbapi_conn)
            dbapi_conn.rollback()
        except Exception as error:  # noqa: BLE001 - any failure: this connection is not usable
            raise exc.InvalidatePoolError(f"connection found dead on checkout: {error!r}") from error


@contextlib.contextmanager
def translate_errors() -> Iterator[None]:
    """Turn SQLAlchemy errors into the project's own, once, here."""
    try:
        yield
    except exc.IntegrityError as e:
        raise Conflict(f"database constraint violated: {e.orig}", user_message="the resource already exists or is in use") from e
    except exc.SQLAlchemyError as e:
        raise DatabaseError(f"database error: {e}", user_message="the database is unavailable, try again later") from e


class Database:
    """Owns the engine; hands out transactions.

    ``write()`` and ``read()`` are each one transaction, committed on a clean
    exit and rolled back on an error.
    """

    def __init__(self, url: str):
        self.url = normalise_url(url)
        self.engine = make_engine(self.url)
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._read = sessionmaker(
            self.engine.execution_options(shareflow_write=False), expire_on_commit=False
        )
        # SQLite: no BEGIN is sent (the hook above), pysqlite stays in
        # autocommit mode and its rollback at release is a no-op. PostgreSQL:
        # psycopg's autocommit, so no BEGIN and no ROLLBACK round trips.
        self._snapshot = (self.engine.execution_options(shareflow_snapshot=True)
                          if self.engine.dialect.name == "sqlite"
                          else self.engine.execution_options(isolation_level="AUTOCOMMIT"))
        self._read_one = sessionmaker(self._snapshot, expire_on_commit=False)
        # SQLite keeps its write transaction (BEGIN IMMEDIATE waits its turn
        # for the lock; a statement in autocommit mode can fail "database is
        # locked" at once) and has no round trips to save.
        self._write_each = (self._write if self.engine.dialect.name == "sqlite"
                            else sessionmaker(self._snapshot, expire_on_commit=False))

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        with translate_errors(), self._write.begin() as session:
            yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with translate_errors(), self._read.begin() as session:
            yield session

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sa.Connection]:
        """A connection outside any transaction, for a read that is ONE
        statement (a statement is its own consistent snapshot on both
        databases). What polling clients ask for most (a share, its rules,
        its export locations) is read so: the statement is the only round
        trip, with no BEGIN/COMMIT around it and no ORM session to set up.
        Never for writes, nor for two statements that must agree."""
        with translate_errors(), self._snapshot.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def read_one(self) -> Iterator[Session]:
        """:meth:`snapshot` as an ORM session: for a read that is ONE
        statement (a job's row, its state), with no BEGIN and COMMIT around
        it - on PostgreSQL two round trips of three."""
        with translate_errors(), self._read_one.begin() as session:
            yield session

    @contextlib.contextmanager
    def write_each(self) -> Iterator[Session]:
        """A session whose every statement is its own transaction on
        PostgreSQL (autocommit: each commits as it completes, with no BEGIN
        and COMMIT round trips around it); on SQLite, :meth:`write`. Only for
        a write that is ONE statement (a conditional ``UPDATE ... WHERE``
        decides on its own), or statements each of which stands alone: at
        READ COMMITTED every statement sees what was committed when it
        started whether or not a transaction holds it, so only what a
        transaction adds - all or none, locks held to its end - is given
        up, and nothing else may rely on it."""
        with translate_errors(), self._write_each.begin() as session:
            yield session

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.engine.dispose()
