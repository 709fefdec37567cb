"""TaskFlow persistence on the service's own database engine."""

from __future__ import annotations

import threading

from taskflow.persistence.backends.impl_sqlalchemy import SQLAlchemyBackend

from shareflow.db.engine import Database


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
