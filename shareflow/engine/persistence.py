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
    """TaskFlow's connection, plus writes of several details in one
    transaction for :class:`shareflow.engine.storage.DeferringStorage`, and
    no UPDATE of an atom row that a save leaves unchanged (TaskFlow's flow
    save rewrites every atom of the flow)."""

    def update_atom_details_many(self, atom_details: list, *, also=None) -> list:
        """``update_atom_details`` for each of ``atom_details``, in order, in
        one transaction: all are written or none. ``also(connection)`` runs
        in that transaction after the writes (a read that belongs with them).
        Returns the merged atom details, in order."""
        try:
            with self._engine.begin() as conn:
                merged = self._write_atoms(conn, atom_details)
                if also is not None:
                    also(conn)
            return merged
        except sa_exc.SQLAlchemyError:
            tf_exc.raise_with_cause(tf_exc.StorageFailure, "Failed updating atom details")

    def update_flow_detail_and(self, flow_detail, atom_details: list):
        """Save ``flow_detail``'s own row and, of its atom details, only
        ``atom_details`` (inserted when new), in one transaction - where
        TaskFlow's ``update_flow_details`` reads, converts and merges every
        atom of the flow. For a caller that knows which atoms changed.
        Returns the merged flow detail (without atoms) and atom details."""
        table = self._tables.flowdetails
        try:
            with self._engine.begin() as conn:
                row = conn.execute(sa.select(table).where(table.c.uuid == flow_detail.uuid)).first()
                if row is None:
                    raise tf_exc.NotFound(f"No flow details found with uuid '{flow_detail.uuid}'")
                e_fd = self._converter.convert_flow_detail(row._mapping)
                before = e_fd.to_dict()
                e_fd.merge(flow_detail)
                if e_fd.to_dict() != before:
                    conn.execute(sa.update(table).where(table.c.uuid == e_fd.uuid).values(e_fd.to_dict()))
                merged = self._write_atoms(conn, atom_details, parent_uuid=flow_detail.uuid)
            return e_fd, merged
        except sa_exc.SQLAlchemyError:
            tf_exc.raise_with_cause(tf_exc.StorageFailure,
                                    f"Failed updating flow details with uuid '{flow_detail.uuid}'")

    def _write_atoms(self, conn, atom_details: list, parent_uuid: str | None = None) -> list:
        """Merge each of ``atom_details`` into its row and write what changed;
        with ``parent_uuid``, a missing row is inserted under that flow."""
        if not atom_details:
            return []
        table = self._tables.atomdetails
        rows = {
            row.uuid: row._mapping
            for row in conn.execute(sa.select(table).where(table.c.uuid.in_([ad.uuid for ad in atom_details])))
        }
        merged = []
        for ad in atom_details:
            row = rows.get(ad.uuid)
            if row is None:
                if parent_uuid is None:
                    raise tf_exc.NotFound(f"No atom details found with uuid '{ad.uuid}'")
                self._insert_atom_details(conn, ad, parent_uuid)
                merged.append(ad)
                continue
            e_ad = self._converter.convert_atom_detail(row)
            self._update_atom_details(conn, ad, e_ad)
            merged.append(e_ad)
        return merged

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
