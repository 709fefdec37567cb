"""Posting a job: record it (its logbook, with its factory and store, in the
same transaction: ``shareflow.engine.logbooks``), then post it.

The logbook and the factory details must be saved before the job is posted:
a conductor may claim it the moment it appears on the board.
"""

from __future__ import annotations

import collections
import contextlib
import importlib
import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session
from taskflow import exceptions as tf_exc

from shareflow.db import jobs as jobs_db
from shareflow.db.engine import Database
from shareflow.db.models import Job
from shareflow.engine import logbooks
from shareflow.engine.persistence import translate_errors as translate_storage_errors
from shareflow.exceptions import Conflict, DatabaseError, ServiceUnavailable

LOG = logging.getLogger(__name__)

#: Logbooks recorded by this process and not yet posted, kept for the post
#: (which then reads nothing back); beyond this many, the oldest (whose
#: record was rolled back, or that another process posts) are dropped.
RECORDED_BOOKS = 256


@dataclass(frozen=True)
class JobSpec:
    operation: str
    backend: str
    resource_type: str
    resource_id: str
    #: Module-level flow factory; addressed by import path in the logbook.
    factory: Callable
    factory_kwargs: dict = field(default_factory=dict)
    #: Small JSON values the flow's tasks require (ids, sizes).
    store: dict = field(default_factory=dict)
    project_id: str | None = None
    request_id: str | None = None
    user_id: str | None = None
    #: The job this one runs again (an operator's retry).
    retry_of: str | None = None


def factory_path(factory: Callable) -> str:
    """``module:function``: how a job record names its flow factory."""
    return f"{factory.__module__}:{factory.__qualname__}"


def import_factory(path: str) -> Callable:
    module, _, name = path.partition(":")
    try:
        target = importlib.import_module(module)
        for part in name.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise Conflict(f"flow factory {path} cannot be imported: {error}") from error
    return target


def spec_of(job: Job, factory: Callable | None = None) -> JobSpec:
    """The spec a recorded job was posted with (its record keeps its inputs)."""
    if factory is None:
        if not job.factory:
            raise Conflict(f"Job {job.id} predates recorded inputs and cannot be posted again.")
        factory = import_factory(job.factory)
    store = json.loads(job.store) if job.store else {}
    store.pop("job_id", None)
    store.pop("backend", None)
    return JobSpec(
        operation=job.operation, backend=job.backend, resource_type=job.resource_type,
        resource_id=job.resource_id, factory=factory,
        factory_kwargs=json.loads(job.factory_kwargs) if job.factory_kwargs else {},
        store=store, project_id=job.project_id, request_id=job.request_id, user_id=job.user_id,
        retry_of=job.retry_of,
    )


def job_details(job: Job, spec: JobSpec) -> dict:
    """What the board carries: only ids (DESIGN.md)."""
    return {
        "flow_uuid": job.flow_detail_id,
        "store": {**spec.store, "job_id": job.id, "backend": spec.backend},
        "shareflow": {
            "job_id": job.id,
            "operation": spec.operation,
            "resource_type": spec.resource_type,
            "resource_id": spec.resource_id,
            "project_id": spec.project_id,
            "request_id": spec.request_id,
            "backend": spec.backend,
        },
    }


_LOGBOOKS = sa.table("logbooks", sa.column("uuid"))


def book_saved(session: Session, logbook_id: str) -> bool:
    """Whether the job's logbook is saved (TaskFlow's table, in our database):
    it was posted before, by a step that is now resumed."""
    return session.scalar(sa.select(sa.literal(1)).select_from(_LOGBOOKS)
                          .where(_LOGBOOKS.c.uuid == logbook_id)) is not None


class JobPoster:
    """Records and posts jobs. ``boards`` is anything with
    ``post(backend, name, *, book, details) -> board job uuid`` that raises
    CoordinationError within a bound (:class:`~shareflow.engine.boards.PostingBoards`,
    or a conductor's :class:`~shareflow.engine.boards.Boards`)."""

    def __init__(
        self, db: Database, persistence, boards, *,
        clock: Callable[[], datetime], new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ):
        self._db = db
        self._persistence = persistence
        self._boards = boards
        self._clock = clock
        self._new_id = new_id
        #: job id -> its logbook as :meth:`record` wrote it, until posted.
        self._books: collections.OrderedDict = collections.OrderedDict()
        self._books_lock = threading.Lock()

    def record(self, session: Session, spec: JobSpec) -> Job:
        """Insert the job row inside the caller's transaction, so the resource's
        status change and the record of the job that will finish it commit together;
        its logbook (factory and store) with it (``shareflow.engine.logbooks``)."""
        job = jobs_db.create(
            session, now=self._clock(), id=self._new_id(), backend=spec.backend,
            operation=spec.operation, resource_type=spec.resource_type,
            resource_id=spec.resource_id, project_id=spec.project_id,
            request_id=spec.request_id, logbook_id=self._new_id(), flow_detail_id=self._new_id(),
            user_id=spec.user_id, retry_of=spec.retry_of, attempt=1,
            factory=factory_path(spec.factory), factory_kwargs=json.dumps(spec.factory_kwargs),
            store=json.dumps(spec.store),
        )
        book = self._new_book(job, spec)
        logbooks.insert(session.connection(), book)
        with self._books_lock:
            self._books[job.id] = book
            while len(self._books) > RECORDED_BOOKS:
                self._books.popitem(last=False)
        return job

    @staticmethod
    def _new_book(job: Job, spec: JobSpec):
        return logbooks.new_book(
            operation=spec.operation, resource_id=spec.resource_id, logbook_id=job.logbook_id,
            flow_detail_id=job.flow_detail_id, factory=spec.factory, factory_kwargs=spec.factory_kwargs,
            store=job_details(job, spec)["store"],
        )

    def _book(self, job: Job, spec: JobSpec):
        """The recorded job's logbook: as this process recorded it, or read
        (recorded by another process or before a restart: a resumed
        scheduling step). A job recorded by an older version has none yet:
        it is saved here, in a transaction of its own, as it was then."""
        with self._books_lock:
            book = self._books.pop(job.id, None)
        if book is not None:
            return book
        with translate_storage_errors(f"saving the logbook of a {spec.operation} job"):
            with contextlib.closing(self._persistence.get_connection()) as conn:
                try:
                    return conn.get_logbook(job.logbook_id)
                except tf_exc.NotFound:
                    book = self._new_book(job, spec)
                    conn.save_logbook(book)
                    return book

    def post_or_undo(self, job: Job, spec: JobSpec, *, undo: Callable[[Session], object]) -> None:
        """Post the recorded job; if the board cannot take it within the bound,
        withdraw the job and undo (in one transaction) the status change the
        caller committed with it, and answer 503: nothing was changed.

        A post that timed out may still have reached the board (the answer was
        lost, or kazoo sends the create later). Whoever moves the job row first
        decides: the conductor that claims it marks it running, this request
        withdraws it (deletes it while still ``posted``). If the conductor won,
        the job runs and the request succeeded after all; if the request won,
        a conductor that finds the job later sees no row and drops it without
        acting (:meth:`ShareflowConductor._dispatch_job`). Never both."""
        try:
            self.post(job, spec)
        except ServiceUnavailable as error:
            with self._db.write() as s:
                withdrawn = jobs_db.withdraw(s, job.id)
                if withdrawn:
                    undo(s)
            if not withdrawn:
                LOG.warning("posting %s for %s reported %s, but a conductor already runs job %s: "
                            "the request stands", spec.operation, spec.resource_id, error, job.id)
                return
            LOG.error("posting %s for %s failed, request undone: %s", spec.operation, spec.resource_id, error)
            with contextlib.suppress(Exception), contextlib.closing(self._persistence.get_connection()) as conn:
                conn.destroy_logbook(job.logbook_id)
            raise ServiceUnavailable(
                str(error), user_message=f"Could not schedule the {spec.operation.replace('_', ' ')}: "
                f"{error.user_message}. Nothing was changed."
            ) from error

    def repost(self, job: Job) -> str:
        """Post a recorded job again, with its persisted flow: the board job
        names the same logbook and flow detail, so the conductor that claims
        it continues from the atom states it finds there. A job whose logbook
        was never saved (its first post never happened) gets one made from
        its record. Raises CoordinationError when the board cannot be reached."""
        with translate_storage_errors(f"loading the logbook of job {job.id}"):
            with contextlib.closing(self._persistence.get_connection()) as conn:
                try:
                    book = conn.get_logbook(job.logbook_id)
                except Exception as error:  # never saved: TaskFlow's NotFound
                    if type(error).__name__ != "NotFound":
                        raise
                    book = None
        spec = spec_of(job)
        if book is None:
            return self.post(job, spec)
        board_job_uuid = self._boards.post(
            spec.backend, f"{spec.operation}:{spec.resource_id}", book=book, details=job_details(job, spec),
            once_key=job.id,
        )
        with self._db.write_each() as session:
            jobs_db.set_posted(session, job.id, board_job_uuid, now=self._clock())
        return board_job_uuid

    def post(self, job: Job, spec: JobSpec, *, hand_off: bool = False, book_saved: bool = False,
             posted: Callable[[str], object] | None = None) -> str:
        """Make the recorded job runnable. Raises CoordinationError when the
        board did not take it within ``[zookeeper] request_timeout``; the job
        may still reach the board, so its logbook stays until the caller has
        withdrawn the job (:meth:`post_or_undo`).

        At most one board job per recorded job, whatever dies between the
        board's post and the record's ``board_job_id``: the post carries the
        job's id (:mod:`shareflow.engine.once`), and a job posted already and
        still on the board is not posted again - its board uuid is the
        answer, and recorded. ``book_saved``: the logbook was saved by an
        earlier post (a step posting it was resumed): it is left as it is,
        since a conductor may be running the flow it holds - as is any that
        exists (a post never writes one over: it was written with the record,
        ``shareflow.engine.logbooks``). ``posted`` is
        called with the board uuid between the post and its record (a test's
        checkpoint).

        ``hand_off``: when this process's conductor of the job's board is
        idle, the job is posted already claimed for it, in one transaction
        (``Boards.hand_off``), and it runs there next; otherwise, or on
        boards that cannot (an API's), posted plainly."""
        book = self._book(job, spec)
        name, details = f"{spec.operation}:{spec.resource_id}", job_details(job, spec)
        board_job_uuid = None
        marked: list[str] = []

        def mark(uuid_on_board: str) -> None:
            if posted is not None:
                posted(uuid_on_board)
            self._mark_posted(job, uuid_on_board)
            marked.append(uuid_on_board)

        def handed(uuid_on_board: str, held: bool) -> None:
            # A job handed to our conductor (held for it) is not marked here:
            # the conductor, woken next, records the board job it runs with
            # the job running (jobs_db.set_running) - one write transaction
            # less on the way to the job's first step. A worker that dies
            # before that leaves the job as one whose poster died between
            # the post and its record: found on its board by the next post of
            # it or by the housekeeping of unposted jobs (shareflow.engine.once).
            # One found on the board already (posted before) is marked.
            if not held:
                mark(uuid_on_board)
                return
            if posted is not None:
                posted(uuid_on_board)
            marked.append(uuid_on_board)

        if hand_off and hasattr(self._boards, "hand_off"):
            board_job_uuid = self._boards.hand_off(spec.backend, name, book=book, details=details,
                                                   once_key=job.id, before_wake=handed)
        if board_job_uuid is None:
            board_job_uuid = self._boards.post(spec.backend, name, book=book, details=details, once_key=job.id)
        if board_job_uuid not in marked:
            mark(board_job_uuid)
        return board_job_uuid

    def _mark_posted(self, job: Job, board_job_uuid: str) -> None:
        # One conditional UPDATE (Database.write_each): on PostgreSQL no
        # BEGIN and COMMIT round trips between the post and the answer.
        try:
            with self._db.write_each() as session:
                jobs_db.set_posted(session, job.id, board_job_uuid, now=self._clock())
        except DatabaseError:
            # The job is on the board and will run: the request succeeded. Only
            # the cross-reference for operators is missing.
            LOG.warning("job %s is posted as %s but could not be marked so", job.id, board_job_uuid,
                        exc_info=True)
