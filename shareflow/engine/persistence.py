"""TaskFlow persistence on the service's own database engine."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from taskflow import exceptions as tf_exc
from taskflow.persistence.backends.impl_sqlalchemy import SQLAlchemyBackend

from shareflow.db.engine import Database
from shareflow.exceptions import DatabaseError


@contextlib.contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """TaskFlow's persistence errors (its own wrapping of SQLAlchemy's)
    become ours here, as SQLAlchemy's do in ``shareflow.db.engine``."""
    try:
        yield
    except tf_exc.StorageFailure as e:
        raise DatabaseError(
            f"{action}: {e}", user_message="the database is unavailable, try again later"
        ) from e


class SharedConnectionBackend(SQLAlchemyBackend):
    """TaskFlow's backend builds a new MetaData and new Table objects on every
    ``get_connection()`` - and the engine's storage asks for one on every read
    and write - so every statement also misses SQLAlchemy's compiled cache.
    Its Connection keeps no state of its own (each call runs in its own
    ``engine.begin()``, ``close()`` is a no-op), so one is shared."""

    def __init__(self, conf, engine=None):
        super().__init__(conf, engine=engine)
        self._shared = None
        self._shared_lock = threading.Lock()

    def get_connection(self):
        with self._shared_lock:
            if self._shared is None:
                self._shared = super().get_connection()
            return self._shared


def make_persistence(db: Database) -> SQLAlchemyBackend:
    """TaskFlow's SQLAlchemy backend sharing our engine, so it gets the same
    SQLite pragmas (WAL, busy timeout, immediate write transactions)."""
    return SharedConnectionBackend({"connection": db.url}, engine=db.engine)
