"""TaskFlow persistence on the service's own database engine."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
from collections.abc import Iterator

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from oslo_utils import timeutils
from psycopg.types.json import Json
from taskflow import exceptions as tf_exc
from taskflow.persistence import models as tf_models
from taskflow.persistence.backends.impl_sqlalchemy import Connection, SQLAlchemyBackend

from shareflow.db.engine import Database
from shareflow.db.models import ATOMDETAILS_UNIQUE_NAME, Job
from shareflow.exceptions import DatabaseError, FlowTakenOver


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


#: How each database names the unique index's violation: PostgreSQL by the
#: index, SQLite by its columns.
_TAKEN_OVER_MARKS = (ATOMDETAILS_UNIQUE_NAME, "atomdetails.parent_uuid, atomdetails.name")


@contextlib.contextmanager
def _writing(action: str, flow_uuid: str | None) -> Iterator[None]:
    """SQLAlchemy's errors of a write, as TaskFlow's storage expects them
    (``StorageFailure``, which it retries) - except an atom detail whose
    flow already has one of that name: no retry can succeed (another engine
    recorded the flow first), so ours (:class:`FlowTakenOver`) at once."""
    try:
        yield
    except sa_exc.IntegrityError as error:
        text = str(error.orig)
        if any(mark in text for mark in _TAKEN_OVER_MARKS):
            raise FlowTakenOver(flow_uuid, text.splitlines()[0]) from error
        tf_exc.raise_with_cause(tf_exc.StorageFailure, action)
    except sa_exc.SQLAlchemyError:
        tf_exc.raise_with_cause(tf_exc.StorageFailure, action)


@dataclasses.dataclass(frozen=True)
class JobFence:
    """The job record an engine's writes are fenced on: each write
    transaction of the engine's storage also checks, holding the job's row
    (``FOR SHARE`` on PostgreSQL; SQLite's write lock, taken by ``BEGIN
    IMMEDIATE``, on SQLite), that the record still names ``owner`` - and
    ``board_job_id``, when given - as the conductor that claimed it recorded
    them (``shareflow.db.jobs.set_running``, right after each claim and
    before the flow is loaded). A conductor that took the job over records
    itself the same way, so of the two, either its record comes first (and
    this engine's write is refused: :class:`FlowTakenOver`) or this
    engine's write does (and the other conductor's ``set_running`` waits
    for it to commit, then loads the flow with it)."""

    job_id: str
    owner: str
    board_job_id: str | None = None
    #: The job's flow (named by a refusal: a write of atoms alone does not
    #: know it).
    flow_uuid: str | None = None

    def params(self) -> dict:
        values = {"f_job": self.job_id, "f_owner": self.owner}
        if self.board_job_id is not None:
            values["f_board"] = self.board_job_id
        return values

    def refused(self) -> FlowTakenOver:
        board = f", board job {self.board_job_id}" if self.board_job_id is not None else ""
        return FlowTakenOver(self.flow_uuid,
                             f"job {self.job_id} is no longer recorded as run by {self.owner}{board}")


class BatchConnection(Connection):
    """TaskFlow's connection, plus writes of several details in one
    transaction for :class:`shareflow.engine.storage.DeferringStorage`, and
    no UPDATE of an atom row that a save leaves unchanged (TaskFlow's flow
    save rewrites every atom of the flow).

    The engine's writes are *blind*: TaskFlow reads each row before writing
    it (a SELECT, the row converted to a detail, the change merged into it,
    the whole row written back), to merge in what another writer might have
    changed. A job's engine is the only writer of its flow while it holds the
    job's claim (``shareflow.engine.storage``), and ``merge`` takes every
    field from the detail being saved, so the row read back would be the
    row written; the write is an UPDATE of the detail's fields by uuid (one
    statement, prepared once: TaskFlow builds each statement with its values
    as literals, which SQLAlchemy must then coerce and key for its cache on
    every call), and a row that is not there is found by the UPDATE's row
    count instead of by the read.

    The writes for the engine's storage take a :class:`JobFence`: each then
    reads the job's record as part of the write (in its transaction, or in
    its one statement) and writes nothing - :class:`FlowTakenOver` - if the
    job is no longer this engine's conductor's. The job's state read there
    is given to ``also`` (the conductor asks it before each step whether an
    operator cancelled the job: no read of its own)."""

    #: The columns an atom detail's ``to_dict`` gives, as TaskFlow writes them.
    _ATOM_FIELDS = ("failure", "revert_failure", "meta", "name", "results", "revert_results",
                    "state", "version", "intention")

    @functools.cached_property
    def _reader(self):
        """Where a logbook is read. SQLite: a read transaction (one
        consistent snapshot for the logbook's three statements), not
        TaskFlow's write transaction. PostgreSQL: autocommit. At READ
        COMMITTED each statement sees what was committed when it started,
        inside a transaction or not, so one adds nothing there but its
        BEGIN and its end - and that end was a ROLLBACK (the connection
        closed uncommitted), after which psycopg deallocates every prepared
        statement of the connection (``DEALLOCATE ALL``: one more round
        trip, and each hot statement prepared again on its next uses)."""
        if self._engine.dialect.name == "sqlite":
            return self._engine.execution_options(shareflow_write=False)
        return self._engine.execution_options(isolation_level="AUTOCOMMIT")

    def get_logbook(self, book_uuid, lazy=False):
        """TaskFlow's, in a read transaction (see :attr:`_reader`): its own
        takes SQLite's write lock (``BEGIN IMMEDIATE``,
        ``shareflow.db.engine``) to read, so a conductor loading a job
        waited for, and held up, every writer - the API's request that
        posted the job among them."""
        logbooks = self._tables.logbooks
        try:
            with self._reader.connect() as conn:
                row = conn.execute(sa.select(logbooks).where(logbooks.c.uuid == book_uuid)).first()
                if row is None:
                    raise tf_exc.NotFound(f"No logbook found with uuid '{book_uuid}'")
                book = self._converter.convert_book(row._mapping)
                if not lazy:
                    self._converter.populate_book(conn, book)
                return book
        except sa_exc.DBAPIError:
            tf_exc.raise_with_cause(tf_exc.StorageFailure, f"Failed getting logbook '{book_uuid}'")

    @functools.cached_property
    def _atom_update(self):
        table = self._tables.atomdetails
        # No values(): the SET clause is the parameters' keys (all but b_uuid).
        return sa.update(table).where(table.c.uuid == sa.bindparam("b_uuid"))

    @functools.cached_property
    def _atom_insert(self):
        return sa.insert(self._tables.atomdetails)

    @functools.cached_property
    def _flow_update(self):
        table = self._tables.flowdetails
        return sa.update(table).where(table.c.uuid == sa.bindparam("b_uuid"))

    def update_atom_details_many(self, atom_details: list, *, also=None, flow_detail=None,
                                 new_atoms: list = (), fence: JobFence | None = None) -> list:
        """``update_atom_details`` for each of ``atom_details``, in order, in
        one transaction: all are written or none. With ``flow_detail``, its
        own row is written first and ``new_atoms`` are inserted under it (a
        flow state and the atoms a prepared engine ensured, which waited).
        With ``fence``, nothing is written unless the job's record is still
        the fence's (:class:`JobFence`; else :class:`FlowTakenOver`).
        ``also(connection, job_state)`` runs in that transaction after the
        writes (a read or write that belongs with them), with the job's
        state as the fence read it (None without one). Returns
        ``atom_details`` (each is written as it is: nothing of the row is
        merged in)."""
        if (flow_detail is None and not new_atoms and not self._is_sqlite
                and len(atom_details) > (0 if fence is not None else 1)):
            # PostgreSQL: the atoms in one statement of their own, with the
            # fence (see _update_atoms_at_once); ``also`` then on the same
            # connection.
            try:
                with self._autocommit.connect() as conn:
                    job_state = self._update_atoms_at_once(conn, atom_details, fence)
                    if also is not None:
                        also(conn, job_state)
                return list(atom_details)
            except sa_exc.SQLAlchemyError:
                tf_exc.raise_with_cause(tf_exc.StorageFailure, "Failed updating atom details")
        flow_uuid = flow_detail.uuid if flow_detail is not None else None
        with _writing("Failed updating atom details", flow_uuid):
            with self._engine.begin() as conn:
                job_state = self._check_fence(conn, fence)
                if flow_detail is not None:
                    self._write_flow_row(conn, flow_detail)
                    self._insert_atom_rows(conn, new_atoms, flow_detail.uuid)
                self._write_atoms(conn, atom_details, parent_uuid=flow_uuid)
                if also is not None:
                    also(conn, job_state)
            return list(atom_details)

    def update_flow_detail_and(self, flow_detail, atom_details: list, *, new_atoms: list = (),
                               also=None, fence: JobFence | None = None):
        """Save ``flow_detail``'s own row and, of its atom details, only
        ``atom_details`` (updated) and ``new_atoms`` (inserted), in one
        transaction - where TaskFlow's ``update_flow_details`` reads,
        converts and merges every atom of the flow. For a caller that knows
        which atoms changed. ``fence`` and ``also(connection, job_state)``
        as for :meth:`update_atom_details_many`. Returns the flow detail and
        the atom details written (``atom_details`` then ``new_atoms``)."""
        with _writing(f"Failed updating flow details with uuid '{flow_detail.uuid}'", flow_detail.uuid):
            with self._engine.begin() as conn:
                job_state = self._check_fence(conn, fence)
                self._write_flow_row(conn, flow_detail)
                self._insert_atom_rows(conn, new_atoms, flow_detail.uuid)
                self._write_atoms(conn, atom_details, parent_uuid=flow_detail.uuid)
                if also is not None:
                    also(conn, job_state)
            return flow_detail, [*atom_details, *new_atoms]

    @functools.lru_cache(maxsize=2)  # noqa: B019 - two statements, for the process's life
    def _fence_select(self, with_board: bool):
        """The fence's read of the job's record, holding its row to the end
        of the transaction: ``FOR SHARE`` on PostgreSQL (a conductor's
        ``set_running``, an UPDATE of the row, waits for it; two fences do
        not wait for each other); nothing on SQLite, whose write transaction
        holds the database's write lock from its ``BEGIN IMMEDIATE``
        (``shareflow.db.engine``), before this read."""
        jobs = Job.__table__
        stmt = sa.select(jobs.c.state).where(jobs.c.id == sa.bindparam("f_job"),
                                             jobs.c.owner == sa.bindparam("f_owner"))
        if with_board:
            stmt = stmt.where(jobs.c.board_job_id == sa.bindparam("f_board"))
        return stmt.with_for_update(read=True)

    def _check_fence(self, conn, fence: JobFence | None) -> str | None:
        """In a write transaction, first: the job's state if its record is
        still ``fence``'s, held so until the transaction ends; else
        :class:`FlowTakenOver` (the transaction is rolled back)."""
        if fence is None:
            return None
        state = conn.execute(self._fence_select(fence.board_job_id is not None), fence.params()).scalar()
        if state is None:
            raise fence.refused()
        return state

    @functools.cached_property
    def _is_sqlite(self) -> bool:
        return self._engine.dialect.name == "sqlite"

    @functools.cached_property
    def _autocommit(self):
        return self._engine.execution_options(isolation_level="AUTOCOMMIT")

    #: In the error the statement of :meth:`_update_atoms_at_once` fails
    #: with when one of its rows is missing.
    _MISSING = "shareflow: atom rows missing, written "

    @functools.lru_cache(maxsize=32)  # noqa: B019 - one per row count and fence shape, for the process's life
    def _atoms_at_once_sql(self, rows: int, fence: str = "") -> str:
        """PostgreSQL's text of :meth:`_update_atoms_at_once` for ``rows``
        rows, written once: SQLAlchemy neither caches a statement with a
        VALUES list nor builds one cheaply (3 ms of CPU a write, measured),
        where this text is formatted once and psycopg prepares it on the
        server after a few uses. ``intention_type`` is the column's type as
        TaskFlow's migrations create it (``14b227d79a87``).

        ``fence`` ("", "owner" or "board": what :class:`JobFence` checks):
        the statement also reads the job's record ``FOR SHARE`` (a CTE read
        once, before any row is updated: the UPDATE joins it), updates the
        rows only if the record is the fence's, and gives the job's state -
        NULL when the record is not the fence's (nothing was written)."""
        values = ", ".join(
            f"(%(u{i})s::varchar, %(failure{i})s::json, %(revert_failure{i})s::json, %(meta{i})s::json, "
            f"%(name{i})s::varchar, %(results{i})s::json, %(revert_results{i})s::json, %(state{i})s::varchar, "
            f"%(version{i})s::varchar, %(intention{i})s::text)" for i in range(rows))
        missing = f"CAST('{self._MISSING}' || count(*) AS integer)"
        if fence:
            board = " AND board_job_id = %(f_board)s" if fence == "board" else ""
            fenced = ("fence AS MATERIALIZED (SELECT state FROM jobs WHERE id = %(f_job)s "
                      f"AND owner = %(f_owner)s{board} FOR SHARE), ")
            joined = ", fence"
            result = (f"CASE WHEN NOT EXISTS (SELECT 1 FROM fence) THEN NULL "
                      f"WHEN count(*) = {rows} THEN (SELECT state FROM fence) "
                      f"ELSE CAST({missing} AS varchar) END")
        else:
            fenced = joined = ""
            result = f"CASE WHEN count(*) = {rows} THEN 1 ELSE {missing} END"
        return (
            f"WITH {fenced}given (uuid, failure, revert_failure, meta, name, results, revert_results, state, "
            f"version, intention) AS (VALUES {values}), "
            "written AS (UPDATE atomdetails SET updated_at = %(now)s, failure = given.failure, "
            "revert_failure = given.revert_failure, meta = given.meta, name = given.name, "
            "results = given.results, revert_results = given.revert_results, state = given.state, "
            "version = given.version, intention = given.intention::intention_type "
            f"FROM given{joined} WHERE atomdetails.uuid = given.uuid RETURNING atomdetails.uuid) "
            f"SELECT {result} FROM written"
        )

    def _update_atoms_at_once(self, conn, atom_details: list, fence: JobFence | None = None) -> str | None:
        """Several atom details written over their rows in ONE statement, its
        own transaction (autocommit): one round trip where a transaction
        takes three (BEGIN, the rows in one executemany, COMMIT) - a step's
        RUNNING with the step before's SUCCESS, most of a job's writes. All
        or none as the transaction was: its SELECT counts the rows written
        and, if one is missing, fails the statement (a cast of a text that
        is no number, evaluated only then), so nothing of it is kept:
        TaskFlow's NotFound. With ``fence``, the fence's read is in the
        statement too (no round trip of its own): returns the job's state,
        or raises :class:`FlowTakenOver` with nothing written."""
        params: dict = {"now": timeutils.utcnow()}
        for i, ad in enumerate(atom_details):
            row = ad.to_dict()
            params[f"u{i}"] = row["uuid"]
            for name in ("failure", "revert_failure", "meta", "results", "revert_results"):
                params[f"{name}{i}"] = None if row[name] is None else Json(row[name])
            for name in ("name", "state", "version", "intention"):
                params[f"{name}{i}"] = row[name]
        shape = ""
        if fence is not None:
            params.update(fence.params())
            shape = "board" if fence.board_job_id is not None else "owner"
        try:
            result = conn.exec_driver_sql(self._atoms_at_once_sql(len(atom_details), shape), params).scalar()
        except sa_exc.DataError as error:
            if self._MISSING not in str(error.orig):
                raise
            raise tf_exc.NotFound(f"No atom details found for some of {[ad.uuid for ad in atom_details]} "
                                  f"({str(error.orig).splitlines()[0]}): nothing written") from error
        if fence is None:
            return None
        if result is None:
            raise fence.refused()
        return result

    def _write_flow_row(self, conn, flow_detail) -> None:
        values = flow_detail.to_dict()
        values["b_uuid"] = values.pop("uuid")
        if conn.execute(self._flow_update, values).rowcount != 1:
            raise tf_exc.NotFound(f"No flow details found with uuid '{flow_detail.uuid}'")

    def _write_atoms(self, conn, atom_details: list, parent_uuid: str | None = None) -> None:
        """Write each of ``atom_details`` over its row; with ``parent_uuid``,
        a missing row is inserted under that flow. Several are one
        ``executemany`` (a step's RUNNING with the step before's SUCCESS),
        when the driver counts the rows of one (SQLite's and psycopg's do);
        if that count falls short, each is written again on its own to find
        the missing one (writing a row twice with the same values is
        harmless)."""
        rows = []
        for ad in atom_details:
            values = ad.to_dict()
            values["b_uuid"] = values.pop("uuid")
            rows.append(values)
        if len(rows) > 1 and conn.dialect.supports_sane_multi_rowcount:
            if conn.execute(self._atom_update, rows).rowcount == len(rows):
                return
        for ad, values in zip(atom_details, rows):
            if conn.execute(self._atom_update, values).rowcount == 1:
                continue
            if parent_uuid is None:
                raise tf_exc.NotFound(f"No atom details found with uuid '{ad.uuid}'")
            self._insert_atom_rows(conn, [ad], parent_uuid)

    def _insert_atom_rows(self, conn, atom_details, parent_uuid: str) -> None:
        """One INSERT for all of ``atom_details`` (the atoms a fresh flow's
        first write carries: seven or eight rows)."""
        rows = []
        for ad in atom_details:
            values = ad.to_dict()
            values["parent_uuid"] = parent_uuid
            values["atom_type"] = tf_models.atom_detail_type(ad)
            rows.append(values)
        if rows:
            conn.execute(self._atom_insert, rows if len(rows) > 1 else rows[0])

    def _update_atom_details(self, conn, ad, e_ad):
        # TaskFlow's own flow save (a store, a foreign storage): merged into
        # the row read, and written only if that changed it.
        before = e_ad.to_dict()
        e_ad.merge(ad)
        after = e_ad.to_dict()
        if after != before:
            after["b_uuid"] = after.pop("uuid")
            conn.execute(self._atom_update, after)


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
