"""Database engine and sessions; the SQLAlchemy error boundary.

SQLite (the default) runs in WAL mode with a busy timeout, and write
transactions start with ``BEGIN IMMEDIATE``: several processes (API workers,
conductors) write to one file, and a deferred transaction that reads and then
writes can fail at once with "database is locked" instead of waiting its turn.
PostgreSQL URLs use psycopg 3.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.orm import Session, sessionmaker

from shareflow.exceptions import Conflict, DatabaseError

SQLITE_BUSY_TIMEOUT_MS = 30_000


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
            write = conn.get_execution_options().get("shareflow_write", True)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


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

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        with translate_errors(), self._write.begin() as session:
            yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with translate_errors(), self._read.begin() as session:
            yield session

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def dispose(self) -> None:
        self.engine.dispose()
