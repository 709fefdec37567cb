"""TaskFlow persistence on the service's own database engine."""

from __future__ import annotations

from taskflow.persistence.backends.impl_sqlalchemy import SQLAlchemyBackend

from shareflow.db.engine import Database


def make_persistence(db: Database) -> SQLAlchemyBackend:
    """TaskFlow's SQLAlchemy backend sharing our engine, so it gets the same
    SQLite pragmas (WAL, busy timeout, immediate write transactions)."""
    return SQLAlchemyBackend({"connection": db.url}, engine=db.engine)
