"""A TaskFlow conductor with shareflow's listeners, wake-up and outcome records."""

from __future__ import annotations

import logging
import threading

from kazoo.client import KazooClient
from taskflow.conductors.backends.impl_blocking import BlockingConductor
from taskflow.jobs import base as jobs_base
from taskflow.types import timing

from shareflow.engine.listeners import (
    ClaimWatchListener,
    DeferredDurationListener,
    JobRecordListener,
)
from shareflow.engine.runtime import RUNTIME, Runtime
from shareflow.exceptions import ShareflowError

LOG = logging.getLogger(__name__)

ENGINE = "serial"
ENGINE_OPTIONS = {"defer_reverts": True}


class WakeableTimeout(timing.Timeout):
    """The conductor idles on this between polls of its board.

    TaskFlow's conductor uses one Timeout both to idle and as its "stopped"
    flag, so interrupting it to wake the conductor would stop it. This keeps a
    separate wake-up event: a POSTED notification ends the idle wait at once
    instead of after the poll interval.
    """

    def __init__(self, value: float):
        super().__init__(value)
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def interrupt(self) -> None:
        super().interrupt()
        self._wake.set()

    def wait(self) -> None:
        self._wake.wait(self.value)
        # A wake-up that lands after this clear is not lost: the conductor
        # lists the board right after returning from here.
        self._wake.clear()


def _job_id(job) -> str | None:
    return ((job.details or {}).get("shareflow") or {}).get("job_id")


class ShareflowConductor(BlockingConductor):
    def __init__(self, name: str, board, persistence, runtime: Runtime, *, poll_interval: float,
                 client: KazooClient):
        self._timeout = WakeableTimeout(poll_interval)
        self._client = client
        super().__init__(
            name, board, persistence=persistence, engine=ENGINE,
            engine_options=ENGINE_OPTIONS, wait_timeout=self._timeout,
        )
        self._runtime = runtime
        board.notifier.register(jobs_base.POSTED, self._on_posted)

    @property
    def name(self) -> str:
        return self._name

    def _on_posted(self, state, details):
        self._timeout.wake()

    def _engine_from_job(self, job):
        engine = super()._engine_from_job(job)
        engine.storage.inject({RUNTIME: self._runtime}, transient=True)
        return engine

    def _listeners_from_job(self, job, engine):
        listeners = super()._listeners_from_job(job, engine)
        # Stops this engine at the next atom boundary if our claim was lost
        # (session expiry) and another conductor took the job over.
        listeners.append(ClaimWatchListener(engine, job, self._jobboard, self._client, self._name))
        listeners.append(DeferredDurationListener(engine))
        job_id = _job_id(job)
        if job_id:
            listeners.append(JobRecordListener(engine, job_id, self._runtime.recorder))
        return listeners

    def _dispatch_job(self, job):
        job_id = _job_id(job)
        if job_id:
            # Recorded here rather than on the flow's RUNNING notification: a
            # resumed flow is already RUNNING and would not notify again.
            try:
                self._runtime.recorder.job_running(job_id, self._name)
            except ShareflowError:
                LOG.exception("could not record that job %s runs", job_id)
        try:
            return super()._dispatch_job(job)
        except Exception as error:
            # Raised before the engine ran (the flow could not be loaded): the
            # board will trash the job and nothing would ever revert it, so the
            # resource is failed here.
            self._record_unloadable(job, error)
            raise

    def _record_unloadable(self, job, error: Exception) -> None:
        job_id = _job_id(job)
        LOG.error("job %s (%s) could not be loaded and is trashed: %s", job, job_id, error)
        if not job_id:
            return
        try:
            self._runtime.recorder.job_failed(job_id, None, f"could not load the flow: {error!r}", trashed=True)
            self._runtime.recorder.resource_failed(job_id, None, "an internal error occurred")
        except ShareflowError:
            LOG.exception("could not record the failure of job %s", job_id)
