"""A TaskFlow conductor with shareflow's listeners, wake-up and outcome records."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import traceback

from kazoo.client import KazooClient
from taskflow import exceptions as tf_exc
from taskflow import states as tf_states
from taskflow import task as tf_task
from taskflow.conductors.backends.impl_blocking import BlockingConductor
from taskflow.jobs import base as jobs_base
from taskflow.types import timing

from shareflow.domain import states as job_states
from shareflow.engine import checkpoints
from shareflow.engine.checkpoints import Checkpoints
from shareflow.engine.listeners import (
    ClaimWatch,
    ClaimWatchListener,
    DeferredDurationListener,
    JobRecordListener,
)
from shareflow.engine.loading import BuiltFlows, is_transient, job_store, new_store, save_store
from shareflow.engine.persistence import JobFence
from shareflow.engine.runtime import RUNTIME, Runtime
from shareflow.engine.storage import DeferringStorage, ShareflowEngine
from shareflow.exceptions import FlowTakenOver, FlowUnwritable, JobCancelled, ShareflowError

LOG = logging.getLogger(__name__)

ENGINE = "serial"
ENGINE_OPTIONS = {"defer_reverts": True}
#: How long a job that met a passing outage while loading is held before it
#: goes back to the board.
RETRY_LOAD_DELAY = 1.0
#: Attempts to consume or abandon a job whose run ended while it is still
#: ours; TaskFlow makes one.
FINISH_ATTEMPTS = 5


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

    def pause(self, seconds: float) -> None:
        """Wait ``seconds``, less if the conductor is stopped meanwhile."""
        self._event.wait(seconds)

    def wait(self) -> None:
        self._wake.wait(self.value)
        # A wake-up that lands after this clear is not lost: the conductor
        # lists the board right after returning from here.
        self._wake.clear()


class _StoppedEngineFilter(logging.Filter):
    """TaskFlow logs an engine that stopped on :class:`FlowTakenOver` or
    :class:`FlowUnwritable` as a failure, with its traceback, twice (the
    engine: "something bad must have happened"; the conductor: "Job
    execution failed"). The job did not fail - another conductor runs it,
    or it goes back to the board to be resumed - and the conductor says so
    once itself (``ShareflowConductor._left_to_another``,
    ``ShareflowConductor._back_after_outage``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], (FlowTakenOver, FlowUnwritable)))


for _name in ("taskflow.engines.action_engine.engine", "taskflow.conductors.backends.impl_executor"):
    logging.getLogger(_name).addFilter(_StoppedEngineFilter())


#: Per conductor thread: while it runs a job, the wake-ups of other
#: conductors that job asked for (:meth:`ShareflowConductor.wake`), and the
#: jobs it handed to them (:meth:`ShareflowConductor.handed`).
_RUN = threading.local()


@dataclasses.dataclass
class _Handed:
    """A job handed by the job running in this thread to a conductor of
    this process (``Boards.hand_off``), to be marked running for it in the
    running job's last write."""

    board: object
    owner: str
    job_uuid: str
    job_id: str
    #: What ``set_running`` answered in that write (its last try).
    runnable: bool | None = None


@contextlib.contextmanager
def deferring_wakes():
    """While this thread runs a job: a conductor of this process woken by
    it (a job handed over) is woken when the run has ended - its flow's end
    recorded - instead of at once."""
    _RUN.wakes = []
    _RUN.handed = []
    try:
        yield
    finally:
        wakes, _RUN.wakes, _RUN.handed = _RUN.wakes, None, None
        for wake in wakes:
            wake()


def _handed_in_run() -> list[_Handed]:
    return getattr(_RUN, "handed", None) or []


def _forget_book(job) -> None:
    """Have ``job``'s logbook read afresh from the database by its next
    claim. TaskFlow's job keeps the logbook it read (``Job.book`` caches it
    in ``_book``), the ZooKeeper board keeps the same job object across
    claims, and a handed job carries its book in memory from the start;
    loading an engine changes that flow detail in memory (the atom details
    ``prepare`` adds, which only the engine's first write inserts). A job
    that goes back to the board with those unwritten would be loaded over
    them again by this conductor, which would take them for written: the
    next step's write fails on a missing row (NotFound)."""
    if getattr(job, "_book", None) is not None:
        job._book = None


def _job_id(job) -> str | None:
    return ((job.details or {}).get("shareflow") or {}).get("job_id")


class ShareflowConductor(BlockingConductor):
    #: TaskFlow's, plus a flow another conductor recorded first and one the
    #: database failed to write (``shareflow.engine.storage``): whatever the
    #: run did is not consumed.
    NO_CONSUME_EXCEPTIONS = (*BlockingConductor.NO_CONSUME_EXCEPTIONS, FlowTakenOver, FlowUnwritable)

    def __init__(self, name: str, board, persistence, runtime: Runtime, *, poll_interval: float,
                 client: KazooClient, checkpoints: Checkpoints | None = None):
        self._timeout = WakeableTimeout(poll_interval)
        self._client = client
        super().__init__(
            name, board, persistence=persistence, engine=ENGINE,
            engine_options=ENGINE_OPTIONS, wait_timeout=self._timeout,
        )
        self._runtime = runtime
        #: The engines' wait between the tries of a write the database
        #: failed (``[conductor] write_retry_wait``; TaskFlow's own without
        #: a configured runtime, as some tests build their conductors).
        config = getattr(runtime, "config", None)
        self._write_retries = {"retry_wait": config.conductor.write_retry_wait} if config is not None else {}
        self._checkpoints = checkpoints or Checkpoints()
        if self._checkpoints.active:
            self._checkpoints.watch(persistence.engine)
        #: board job uuid -> its engine, loaded by _dispatch_job for TaskFlow's.
        self._loaded: dict = {}
        #: board job uuid -> the watch on our claim, started by _dispatch_job.
        self._watches: dict = {}
        #: Whether a job is being run here (from its dispatch to its end).
        self._busy = False
        #: Board job uuids whose flow another conductor recorded first
        #: (FlowTakenOver), between their dispatch and _try_finish_job.
        self._taken_over: set[str] = set()
        #: The flows of this conductor's jobs, built and compiled once per
        #: factory call (it runs one job at a time).
        self._flows = BuiltFlows()
        board.notifier.register(jobs_base.POSTED, self._on_posted)
        if hasattr(board, "on_new_job"):
            # Woken by the read that made a new job known (the POSTED
            # notification, a thread hop later, then finds it awake).
            board.on_new_job = self._timeout.wake

    @property
    def name(self) -> str:
        return self._name

    @property
    def idle(self) -> bool:
        """Running nothing and holding no job handed to it: a job handed
        now (``Boards.hand_off``) starts at once. A moment's answer: the
        conductor may claim a job from its board right after."""
        holds = getattr(self._jobboard, "holds_handed", False)
        return not self._busy and not holds and not self._wait_timeout.is_stopped()

    def _on_posted(self, state, details):
        self._timeout.wake()

    def wake(self) -> None:
        """End the idle wait: a job was handed to this conductor
        (``Boards.hand_off``) by a thread of this process. Asked by a job
        running in another conductor's thread (a scheduling job handing
        over its share's create job), at the end of that job's run, once
        its last write is committed (:func:`deferring_wakes`): the two jobs'
        writes then never meet on SQLite's lock (a writer that finds it
        taken sleeps a millisecond or more), nor share the CPU; the handed
        job's first write would have queued behind that last one anyway."""
        pending = getattr(_RUN, "wakes", None)
        if pending is not None:
            pending.append(self._timeout.wake)
        else:
            self._timeout.wake()

    def handed(self, job_uuid: str, job_id: str) -> None:
        """A job (database job ``job_id``, board job ``job_uuid``) was handed
        to this conductor (``Boards.hand_off``): posted claimed for it, the
        claim confirmed. Asked by a job running in another conductor's
        thread (the scheduling job handing over its share's create job), the
        handed job's record is marked running for this conductor in that
        job's last write - the transaction that records its flow's SUCCESS
        (:meth:`_on_flow_success`) - instead of in a write of its own when
        this conductor takes the job up (``job_running``): one write
        transaction less between the two jobs. As if this conductor had
        marked it at once: the claim is its own already, and one whose
        worker dies after the mark is claimed by another conductor and
        marked again from the same board job, as any job whose owner died
        (``jobs_db.set_running``). Should that write not happen (the
        running job fails, its write fails), this conductor marks it itself.
        Woken as :meth:`wake` says."""
        pending = getattr(_RUN, "handed", None)
        if pending is not None:
            pending.append(_Handed(self._jobboard, self._name, job_uuid, job_id))
        self.wake()

    def _on_flow_success(self, record, connection) -> None:
        """In the transaction that records the running job's flow SUCCESS:
        the job's own record, and the jobs it handed marked running
        (:meth:`handed`)."""
        if record is not None:
            record.record_success_in(connection)
        for handed in _handed_in_run():
            handed.runnable = self._runtime.recorder.job_running(
                handed.job_id, handed.owner, handed.job_uuid, connection=connection)

    def _after_flow_success(self) -> None:
        """That transaction committed: each handed job's conductor is told
        its record is marked (unless it took the job up meanwhile: then it
        marks it itself, again from the same board job)."""
        for handed in _handed_in_run():
            if handed.runnable is not None and hasattr(handed.board, "mark_handed_running"):
                handed.board.mark_handed_running(handed.job_uuid, handed.runnable)

    def _listeners_from_job(self, job, engine):
        listeners = super()._listeners_from_job(job, engine)
        # Stops this engine at the next atom boundary if our claim was lost
        # (session expiry) and another conductor took the job over.
        listeners.append(ClaimWatchListener(engine, job, self._jobboard, self._client, self._name,
                                            self._watches.get(job.uuid)))
        listeners.append(DeferredDurationListener(engine))
        job_id = _job_id(job)
        record = None
        if job_id:
            record = JobRecordListener(engine, job_id, self._runtime.recorder)
            listeners.append(record)
        if isinstance(engine.storage, DeferringStorage):
            engine.storage.on_flow_success = functools.partial(self._on_flow_success, record)
            engine.storage.after_flow_success = self._after_flow_success
        return listeners

    def _dispatch_job(self, job):
        """Load the job's engine ourselves (see ``shareflow.engine.loading``),
        then let TaskFlow run it. Returns whether the job is done (consumed)
        or goes back to the board (abandoned); raises once the job has been
        set aside, which takes it off the board."""
        self._busy = True
        try:
            with deferring_wakes():
                consumed = None
                try:
                    consumed = self._dispatch_claimed(job)
                    return consumed
                finally:
                    # Back to the board (or set aside): its next claim reads
                    # the logbook again. A consumed job keeps it (a handed
                    # job's book, never read: one read saved).
                    if consumed is not True:
                        _forget_book(job)
        finally:
            self._busy = False

    def _dispatch_claimed(self, job):
        job_id = _job_id(job)
        # Its first read travels while the job is recorded and loaded.
        self._watches[job.uuid] = ClaimWatch(self._client, job.lock_path, self._name).start()
        try:
            self._checkpoints.reach(checkpoints.CLAIMED, job.uuid)
            if job_id:
                # Recorded here rather than on the flow's RUNNING notification: a
                # resumed flow is already RUNNING and would not notify again.
                # Only a job this marks running (from posted, or running when
                # resumed) may run: see JobPoster.post_or_undo.
                # Marked already by the job that handed it here, in its last
                # write (see handed): None when not.
                runnable = self._marked_running(job)
                try:
                    if runnable is None:
                        runnable = self._runtime.recorder.job_running(job_id, self._name, job.uuid)
                except ShareflowError:
                    # Unmarked, its request could still withdraw and undo it
                    # while it runs: back to the board, held a moment first.
                    LOG.exception("could not record that job %s runs; back to the board", job_id)
                    self._timeout.pause(RETRY_LOAD_DELAY)
                    return False
                if not runnable:
                    # Its request withdrew it (the post timed out, the request
                    # was undone and answered 503, and the create reached
                    # ZooKeeper anyway), it finished before its board entry
                    # was consumed, or another board job of the same record
                    # runs it. Nothing may act on it: consumed unrun.
                    LOG.warning("job %s (%s) was withdrawn by its request or has finished; dropping it "
                                "from the board without running it", job, job_id)
                    return True
            with self._checkpoints.loading(job.uuid), contextlib.ExitStack() as lent:
                engine = self._loaded[job.uuid] = self._load_engine(job, lent)
                consume = super()._dispatch_job(job)
            taken_over = getattr(engine.storage, "taken_over", None)
            if taken_over is not None:
                return self._left_to_another(job, taken_over)
            unwritable = getattr(engine.storage, "unwritable", None)
            if unwritable is not None:
                return self._back_after_outage(job, unwritable)
            return consume
        except FlowTakenOver as error:  # a resumed job's store (save_store)
            return self._left_to_another(job, error)
        except Exception as error:
            if is_transient(error):
                # Nothing was lost: the next claim (here or elsewhere) loads
                # it again once the database or ZooKeeper answers. Held a
                # moment first: a conductor claims again at once after a
                # dispatch, and would spin on the job meanwhile.
                LOG.warning("job %s (%s) could not be loaded for now, back to the board: %r",
                            job, job_id, error)
                self._timeout.pause(RETRY_LOAD_DELAY)
                return False
            self._set_aside(job, error)
            raise
        finally:
            self._loaded.pop(job.uuid, None)
            self._watches.pop(job.uuid).stop()

    def _left_to_another(self, job, error: FlowTakenOver) -> bool:
        """Another engine recorded the job's flow first: this run stops
        having written nothing. Not set aside, nothing recorded of the job
        or its resource (the other conductor runs it); what becomes of the
        board's job is decided by _try_finish_job."""
        LOG.warning("board job %s (job %s): its flow was recorded by another conductor meanwhile; stopped "
                    "here, nothing written: %s", job.uuid, _job_id(job), error)
        self._taken_over.add(job.uuid)
        return False

    def _back_after_outage(self, job, error: FlowUnwritable) -> bool:
        """The database failed one of the engine's writes even after its
        retries: the engine stopped there, as if this conductor had died,
        having written nothing more - neither the flow's FAILURE nor
        anything of the job or its resource. Back to the board: the next
        claim (here or elsewhere) resumes the flow from what was written,
        once the database answers (a claim meanwhile cannot load it, and
        sends it back again)."""
        LOG.warning("board job %s (job %s): its engine stopped on a database outage (a write failed after its "
                    "retries), nothing more written; back to the board, to be resumed: %s",
                    job.uuid, _job_id(job), error)
        return False

    def _marked_running(self, job) -> bool | None:
        marked = getattr(self._jobboard, "marked_running", None)
        return marked(job) if marked is not None else None

    def _load_engine(self, job, lent: contextlib.ExitStack):
        """Everything between the claim and the first atom, with a test
        checkpoint between each persisted step. The job's flow is lent
        (``BuiltFlows``) until ``lent`` closes: when the job's run ends."""
        reach = functools.partial(self._checkpoints.reach, job_uuid=job.uuid)
        flow_detail = self._flow_detail_from_job(job)
        reach(checkpoints.BOOK_LOADED)
        store = job_store(job, flow_detail)
        job_id = _job_id(job)
        # Every write for the job is checked, with the write, against what
        # _dispatch_claimed recorded of this claim (shareflow.engine.storage).
        fence = JobFence(job_id, self._name, job.uuid, flow_detail.uuid) if job_id else None
        # The store was written with the job's record (shareflow.engine.logbooks).
        # A fresh job recorded by an older version, without one, gets it with
        # the engine's first write; a half-written one is completed now
        # (see shareflow.engine.loading).
        fresh_store = new_store(flow_detail, store)
        if fresh_store is None:
            save_store(self._persistence, flow_detail, store, fence=fence)
        reach(checkpoints.STORE_SAVED)
        # No store here: it is persisted already (TaskFlow would write it in two parts).
        # TaskFlow's serial engine, over a storage that writes less between
        # the steps (shareflow.engine.storage).
        flow, compiler = lent.enter_context(self._flows.lend(flow_detail))
        engine = ShareflowEngine(flow, flow_detail, self._persistence, dict(self._engine_options),
                                 compiler=compiler, fence=fence,
                                 **self._write_retries)
        if fresh_store is not None:
            engine.storage.insert_with_first_write(fresh_store)
        engine.storage.inject({RUNTIME: self._runtime}, transient=True)
        if self._checkpoints.active:
            self._hold_at_flow_states(engine, job.uuid)
            if isinstance(engine.storage, DeferringStorage):
                engine.storage.before_first_write = functools.partial(reach, checkpoints.FIRST_WRITE)
        reach(checkpoints.ENGINE_LOADED)
        # Done here, not left to TaskFlow's dispatch: there a failure to
        # compile or prepare consumes the job without a word, leaving its
        # resource in its working status. TaskFlow's own calls are then no-ops
        # (validate only checks again).
        engine.compile()
        if job_id:
            self._stop_when_cancelled(engine, job_id)
        reach(checkpoints.COMPILED)
        engine.prepare()
        engine.validate()
        reach(checkpoints.PREPARED)
        return engine

    def _stop_when_cancelled(self, engine, job_id: str) -> None:
        """Before each step starts, ask whether an operator cancelled the job
        (its record is ``cancelling``): if so the step does not run - it fails
        with :class:`JobCancelled` - and the flow reverts what the job did. A
        step already running is never interrupted: the question is asked only
        between steps. (TaskFlow calls ``pre_execute`` inside the atom's
        execution, so what it raises becomes that atom's failure.)

        The record is read in the transaction that records the step RUNNING,
        just before, by that write's fence (``DeferringStorage.on_step_start``);
        a step resumed already RUNNING is not recorded again: it reads the
        record on its own. So does the run's first step if it starts
        unrecorded (``shareflow.engine.storage.unrecorded_start``) - a job
        cancelled before it began runs no step - but no later one that starts
        unrecorded: such a step has nothing to revert, and the next recorded
        start, before any step that has, asks (a read saved per such step).
        """
        recorder = self._runtime.recorder
        storage = engine.storage
        #: atom name -> the job's state, read as its RUNNING was written.
        read_at_start: dict[str, str | None] = {}
        asked = False

        def on_step_start(job_state: str | None, atom_name: str) -> None:
            read_at_start[atom_name] = job_state

        def check(atom_name: str) -> None:
            nonlocal asked
            if atom_name in read_at_start:
                cancelling = read_at_start.pop(atom_name) == job_states.JOB_CANCELLING
            elif asked and isinstance(storage, DeferringStorage) and atom_name in storage.unrecorded_starts:
                return
            else:
                try:
                    cancelling = recorder.is_cancelling(job_id)
                except ShareflowError:
                    LOG.warning("job %s: could not read whether it was cancelled; going on", job_id,
                                exc_info=True)
                    return
            asked = True
            if cancelling:
                LOG.info("job %s was cancelled: reverting it", job_id)
                raise JobCancelled(job_id)

        if isinstance(storage, DeferringStorage):
            storage.on_step_start = on_step_start
        for atom in engine.compilation.execution_graph.nodes:
            if isinstance(atom, tf_task.Task):
                atom.pre_execute = functools.partial(check, atom.name)

    def _hold_at_flow_states(self, engine, job_uuid: str) -> None:
        points = {tf_states.RESUMING: checkpoints.RESUMING, tf_states.SUSPENDED: checkpoints.ATOMS_ENSURED,
                  tf_states.RUNNING: checkpoints.RUNNING}

        def on_flow_state(state, details):
            self._checkpoints.reach(points[state], job_uuid)

        for state in points:
            engine.notifier.register(state, on_flow_state)

        def on_first_step(state, details):
            # After the transaction that records it RUNNING, before it runs:
            # the first step whose start is written (one that starts
            # unrecorded writes nothing, shareflow.engine.storage).
            if isinstance(engine.storage, DeferringStorage) and not engine.storage.written:
                return
            engine.atom_notifier.deregister(tf_states.RUNNING, on_first_step)
            self._checkpoints.reach(checkpoints.FIRST_STEP, job_uuid)

        engine.atom_notifier.register(tf_states.RUNNING, on_first_step)

    def _engine_from_job(self, job):
        return self._loaded[job.uuid]

    def _try_finish_job(self, job, consume, trash=False):
        """Consume, trash or abandon a job whose run ended, as TaskFlow does,
        except when ZooKeeper was away at that moment: TaskFlow then gives up,
        and since our session outlives a short outage (a restarted ZooKeeper
        keeps it) the job would stay claimed by this conductor, which never
        returns to it, and no other could take it. Here it is finished again
        once ZooKeeper answers, if it is still ours."""
        if job.uuid in self._taken_over:
            self._taken_over.discard(job.uuid)
            if not self._still_ours(job):
                # The usual case: our claim was lost and the job taken over.
                LOG.info("job %s is another conductor's now; left to it", job)
                return
            # Ours, but its flow was written by an engine that had lost the
            # claim (and, unknowing, wrote before this one): back to the
            # board, to be loaded again with what was written.
            LOG.info("board job %s: back to the board, to be loaded again with what the other engine wrote",
                     job.uuid)
        if consume:
            action, event = self._jobboard.consume, "job_consumed"
        elif trash:
            action, event = self._jobboard.trash, "job_trashed"
        else:
            action, event = self._jobboard.abandon, "job_abandoned"
        for attempt in range(1, FINISH_ATTEMPTS + 1):
            try:
                action(job, self._name)
            except (tf_exc.JobFailure, tf_exc.NotFound):
                LOG.warning("%s failed for job %s (attempt %d)", event, job, attempt, exc_info=True)
                if attempt == FINISH_ATTEMPTS or not self._still_ours(job):
                    return
                continue
            self._notifier.notify(event, {"job": job, "conductor": self, "persistence": self._persistence})
            return

    def _still_ours(self, job) -> bool:
        """Whether this conductor still holds ``job``, asked once ZooKeeper
        answers; False once the conductor is stopping."""
        while not self._wait_timeout.is_stopped():
            if self._client.connected:
                try:
                    return self._jobboard.find_owner(job) == self._name
                except (tf_exc.JobFailure, tf_exc.NotFound):
                    pass  # the connection went again
            self._timeout.wait()
        return False

    def _set_aside(self, job, error: Exception) -> None:
        """A job whose flow cannot be loaded, even from a clean reload: it
        leaves the board (another claim would fail the same way, forever), its
        record becomes ``trashed`` and keeps its logbook for an operator to
        resume, and its resource gets its failed status and a message saying
        so - a resource is never left in a working status."""
        job_id = _job_id(job)
        LOG.error("job %s (%s) could not be loaded and is set aside: %r", job, job_id, error,
                  exc_info=error)
        if not job_id:
            return
        try:
            self._runtime.recorder.job_set_aside(
                job_id, f"could not load the flow: {error!r}\n{_traceback(error)}",
            )
            self._runtime.recorder.resource_failed(job_id, None, set_aside_reason(job_id))
        except ShareflowError:
            LOG.exception("could not record that job %s is set aside", job_id)


def set_aside_reason(job_id: str) -> str:
    return (f"its flow could not be loaded; the job was kept for an administrator to resume "
            f"(job {job_id})")


def _traceback(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))
