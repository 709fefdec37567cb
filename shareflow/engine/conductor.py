"""A TaskFlow conductor with shareflow's listeners, wake-up and outcome records."""

from __future__ import annotations

import logging
import threading

from taskflow import states as tf_states
from taskflow.conductors.backends.impl_blocking import BlockingConductor
from taskflow.jobs import base as jobs_base
from taskflow.listeners import base as listeners_base
from taskflow.listeners.claims import CheckingClaimListener
from taskflow.listeners.timing import DurationListener
from taskflow.types import timing

from shareflow.engine.outcomes import OutcomeRecorder, first_failure, operator_text, user_reason
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


class JobRecordListener(listeners_base.Listener):
    """Mirrors the flow's state into our job record; on a FAILURE (a revert
    that itself failed) also fails the resource, which the flow could not do."""

    def __init__(self, engine, job_id: str, recorder: OutcomeRecorder):
        super().__init__(
            engine,
            task_listen_for=(),
            retry_listen_for=(),
            flow_listen_for=(tf_states.SUCCESS, tf_states.REVERTED, tf_states.FAILURE),
        )
        self._job_id = job_id
        self._recorder = recorder

    def _flow_receiver(self, state, details):
        try:
            if state == tf_states.SUCCESS:
                self._recorder.job_succeeded(self._job_id)
            else:
                failed = first_failure(self._engine.storage.get_execute_failures(), ignore=None)
                step, failure = failed if failed else (None, None)
                text = operator_text(failure) if failure else f"flow ended {state}"
                self._recorder.job_failed(self._job_id, step, text)
                if state == tf_states.FAILURE:
                    reason = user_reason(failure) if failure else "the job failed and could not be undone"
                    self._recorder.resource_failed(self._job_id, step, reason)
        except ShareflowError:
            # A listener must never break the engine; the record is best effort
            # and the resource's own status is written by the flow.
            LOG.exception("could not record state %s of job %s", state, self._job_id)


class ShareflowConductor(BlockingConductor):
    def __init__(self, name: str, board, persistence, runtime: Runtime, *, poll_interval: float):
        self._timeout = WakeableTimeout(poll_interval)
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
        listeners.append(CheckingClaimListener(engine, job, self._jobboard, self._name))
        listeners.append(DurationListener(engine))
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
