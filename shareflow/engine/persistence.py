"""TaskFlow persistence on the service's own database engine."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from taskflow import exceptions as tf_exc
from taskflow.persistence.backends.impl_sqlalchemy import Connection, SQLAlchemyBackend

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


class BatchConnection(Connection):
    """TaskFlow's connection, plus writing several atom details in one
    transaction (:meth:`update_atom_details_many`), and no UPDATE of an atom
    row that a flow detail's save leaves unchanged: TaskFlow rewrites every
    atom of the flow at each flow state change."""

    def update_atom_details_many(self, atom_details: list, *, also=None) -> list:
        """``update_atom_details`` for each of ``atom_details``, in order, in
        one transaction: all are written or none. ``also(connection)`` runs
        in that transaction after the writes (a read that belongs with them)."""
        if not atom_details:
            return []
        table = self._tables.atomdetails
        try:
            with self._engine.begin() as conn:
                rows = {
                    row.uuid: row._mapping
                    for row in conn.execute(sa.select(table).where(
                        table.c.uuid.in_([ad.uuid for ad in atom_details])))
                }
                merged = []
                for ad in atom_details:
                    row = rows.get(ad.uuid)
                    if row is None:
                        raise tf_exc.NotFound(f"No atom details found with uuid '{ad.uuid}'")
                    e_ad = self._converter.convert_atom_detail(row)
                    self._update_atom_details(conn, ad, e_ad)
                    merged.append(e_ad)
                if also is not None:
                    also(conn)
            return merged
        except sa_exc.SQLAlchemyError:
            tf_exc.raise_with_cause(tf_exc.StorageFailure, "Failed updating atom details")

    def _update_atom_details(self, conn, ad, e_ad):
        before = e_ad.to_dict()
        e_ad.merge(ad)
        if e_ad.to_dict() != before:
            conn.execute(
                sa.update(self._tables.atomdetails)
                .where(self._tables.atomdetails.c.uuid == e_ad.uuid)
                .values(e_ad.to_dict())
            )


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
                conn = BatchConnection(self, upgrade_lock=self._upgrade_lock)
                if not self._validated:
                    conn.validate(max_retries=self._max_retries)
                    self._validated = True
                self._shared = conn
            return self._shared


def make_persistence(db: Database) -> SQLAlchemyBackend:
    """TaskFlow's SQLAlchemy backend sharing our engine, so it gets the same
    SQLite pragmas (WAL, busy timeout, immediate write transactions)."""
    return SharedConnectionBackend({"connection": db.url}, engine=db.engine)
