"""Posting a job: record it, save its logbook with its factory, then post it.

The logbook and the factory details must be saved before the job is posted:
a conductor may claim it the moment it appears on the board.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session
from taskflow import engines
from taskflow.persistence import models as tf_models

from shareflow.db import jobs as jobs_db
from shareflow.db.engine import Database
from shareflow.db.models import Job
from shareflow.engine.persistence import translate_errors as translate_storage_errors
from shareflow.exceptions import DatabaseError, ServiceUnavailable

LOG = logging.getLogger(__name__)


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

    def record(self, session: Session, spec: JobSpec) -> Job:
        """Insert the job row inside the caller's transaction, so the resource's
        status change and the record of the job that will finish it commit together."""
        return jobs_db.create(
            session, now=self._clock(), id=self._new_id(), backend=spec.backend,
            operation=spec.operation, resource_type=spec.resource_type,
            resource_id=spec.resource_id, project_id=spec.project_id,
            request_id=spec.request_id, logbook_id=self._new_id(), flow_detail_id=self._new_id(),
        )

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

    def post(self, job: Job, spec: JobSpec) -> str:
        """Make the recorded job runnable. Raises CoordinationError when the
        board did not take it within ``[zookeeper] request_timeout``; the job
        may still reach the board, so its logbook stays until the caller has
        withdrawn the job (:meth:`post_or_undo`)."""
        book = tf_models.LogBook(f"{spec.operation}-{spec.resource_id}", uuid=job.logbook_id)
        flow_detail = tf_models.FlowDetail(spec.operation, uuid=job.flow_detail_id)
        book.add(flow_detail)
        # The factory goes into the flow detail before the logbook is saved,
        # so both are written in one transaction (saving factory details
        # through the backend before the logbook exists would fail).
        engines.save_factory_details(flow_detail, spec.factory, [], spec.factory_kwargs)
        with translate_storage_errors(f"saving the logbook of a {spec.operation} job"):
            with contextlib.closing(self._persistence.get_connection()) as conn:
                conn.save_logbook(book)
        board_job_uuid = self._boards.post(
            spec.backend, f"{spec.operation}:{spec.resource_id}", book=book, details=job_details(job, spec)
        )
        try:
            with self._db.write() as session:
                jobs_db.set_posted(session, job.id, board_job_uuid, now=self._clock())
        except DatabaseError:
            # The job is on the board and will run: the request succeeded. Only
            # the cross-reference for operators is missing.
            LOG.warning("job %s is posted as %s but could not be marked so", job.id, board_job_uuid,
                        exc_info=True)
        return board_job_uuid
