"""Jobs for operators: inspecting them (our records joined with TaskFlow's atom
states and ZooKeeper's claims) and steering them (resume, retry, cancel).

Who may read what: ``caller`` None is the operator on the service's own host
(the ``shareflow`` command, in-process tests) and sees everything; an admin
sees every project's jobs; a member only their own project's, and another
project's job does not exist for them (404, as any resource of another
project). Steering is an admin's.

Every steering action is one conditional write of the job record (from the
states that allow it, at the attempt the caller read), committed with the
resource's status change it implies and a history row saying who asked,
when and what (``job_actions``). Of two operators steering one job, one wins
and the other gets 409. Asking again what is already done (cancelling a
job being cancelled) answers with the job and changes nothing.

- ``resume``: a job in ``revert_failed``, ``cancelled`` before its revert
  finished, ``trashed``, or stalled (active but claimed by no live conductor)
  is posted again with its persisted flow: a conductor continues from the
  atom states in its logbook. Steps that succeeded are not run again; an undo
  that failed is tried again (its atom is put back to REVERTING, where a
  conductor that died mid-undo would have left it). The resource is taken
  back into the operation's working status first, so no other request acts
  on it meanwhile; it ends as the job ends.
- ``retry``: a ``reverted`` (or ``cancelled``) job is run again as a new job
  on the same resource with the same inputs (``retry_of`` links the two); the
  resource goes back to the operation's working status. Refused when the
  resource moved on: deleted, another job recorded on it since, or no longer
  in a failure status of that operation.
- ``cancel``: a posted or running job becomes ``cancelling``; its conductor
  checks before each step and reverts instead of starting it (a step in
  flight is never interrupted). It ends ``cancelled`` with its resource in
  the operation's failure status and the user message "cancelled by an
  administrator" - a cancelled create leaves the share ``error`` (not
  deleted), as any failed create does in Manila, so the user sees why and
  deletes it, or an operator retries it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from taskflow import engines
from taskflow import states as tf_states

from shareflow import policy
from shareflow.db import jobs as jobs_db
from shareflow.db import resources
from shareflow.db.engine import Database
from shareflow.db.models import Job, JobAction
from shareflow.domain import states
from shareflow.engine.loading import store_atom
from shareflow.engine.persistence import make_persistence
from shareflow.engine.persistence import translate_errors as translate_storage_errors
from shareflow.engine.posting import JobPoster, import_factory, spec_of
from shareflow.engine.boards import every_job
from shareflow.engine.stalls import ClaimCheck, StallChecker, open_boards
from shareflow.exceptions import Conflict, NotFound, ServiceUnavailable
from shareflow.services.context import Caller

LOG = logging.getLogger(__name__)

RESUME, RETRY, CANCEL = "resume", "retry", "cancel"


@dataclass(frozen=True)
class BoardView:
    """One jobboard as ZooKeeper has it: ``host@backend`` (or a legacy bare
    backend name), its jobs and how many of them a conductor holds."""

    key: str
    jobs: int
    claimed: int

    @property
    def legacy(self) -> bool:
        """Posted to before boards were per host (drained by the backend's conductors)."""
        return "@" not in self.key


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class StepView:
    name: str
    state: str
    duration: float | None
    failure: str | None


@dataclass(frozen=True)
class JobView:
    job: Job
    flow_state: str | None
    steps: list[StepView]
    #: The step running or being undone now; else the one that failed.
    current_step: str | None = None
    #: Steering history, oldest first.
    actions: list[JobAction] = field(default_factory=list)
    #: Jobs that retried this one (newest last).
    retried_by: list[str] = field(default_factory=list)
    #: Every attempt of the operation, oldest first, this job included (the
    #: jobs it retries, followed back by ``retry_of``, and those retrying it).
    attempts: list[Job] = field(default_factory=list)
    #: The state as shown: ``stalled`` when ZooKeeper says so (``show(live=True)``).
    state: str | None = None
    #: Who holds the job now, from ZooKeeper (``show(live=True)``, active jobs).
    claim: ClaimCheck | None = None
    #: What the operation registry declares about the job's operation
    #: (statuses, whether it may be retried); None for an unknown operation.
    operation: states.Operation | None = None


@dataclass(frozen=True)
class ListedJob:
    job: Job
    #: As shown: ``stalled`` for an active job no live conductor has claimed.
    state: str
    #: From ZooKeeper, for active jobs when it could be asked.
    claim: ClaimCheck | None


@dataclass(frozen=True)
class Listing:
    jobs: list[ListedJob]
    #: How many match the filters, whatever the page.
    total: int
    #: False when ZooKeeper could not be asked: states are the records'.
    claims_known: bool = True


class JobService:
    def __init__(self, db: Database, *, poster: JobPoster | None = None, zookeeper=None,
                 stall_after: float | None = None, clock: Callable[[], datetime] = _utcnow):
        """``zookeeper`` (a ZooKeeperConfig): where to look for claims
        (``claims``, ``resume``), on the board each job's record names
        (``host@backend``, whatever host it is on); ``poster``: to post jobs
        again."""
        self._db = db
        self._persistence = make_persistence(db)
        self._poster = poster
        self._clock = clock
        self._stalls = None
        self._zookeeper = zookeeper
        if zookeeper is not None and stall_after:
            view = functools.partial(open_boards, zookeeper, self._persistence)
            self._stalls = StallChecker(view, stall_after, clock)

    # --- reading --------------------------------------------------------------

    def list(self, *, caller: Caller | None = None, states_in=None, operation: str | None = None,
             resource_id: str | None = None, project_id: str | None = None, limit: int | None = None,
             offset: int = 0) -> list[Job]:
        """Records as stored, newest first (for the states as shown, stalled
        included, see :meth:`listing`). ``caller`` None is the operator on the
        service's host: every project; ``project_id`` filters for admins and
        the operator, a member's list is their own project's whatever they ask."""
        with self._db.read() as s:
            return jobs_db.list_(s, **_filters(caller, states_in, operation, resource_id, project_id),
                                 limit=limit, offset=offset)

    def listing(self, *, caller: Caller | None = None, states_in=None, operation: str | None = None,
                resource_id: str | None = None, project_id: str | None = None, limit: int | None = None,
                offset: int = 0) -> Listing:
        """Jobs as ``jobs list`` and ``GET /v2/jobs`` show them, newest first:
        an active job that no live conductor has claimed for ``stall_after``
        is ``stalled`` (ZooKeeper is asked), and ``states_in`` filters on the
        states so shown. With a state filter that involves active or stalled
        jobs, ZooKeeper must answer (else CoordinationError); otherwise the
        page is shown with its stored states when it does not."""
        filters = _filters(caller, states_in, operation, resource_id, project_id)
        wanted = frozenset(states_in or ())
        live = wanted & (states.JOB_ACTIVE | {states.JOB_STALLED})
        if not live:
            with self._db.read() as s:
                jobs = jobs_db.list_(s, **filters, limit=limit, offset=offset)
                total = jobs_db.count(s, **filters)
            try:
                claims = self.claims(jobs) if any(j.state in states.JOB_ACTIVE for j in jobs) else {}
            except ServiceUnavailable as error:
                LOG.warning("jobs listed without their claims: %s", error)
                return Listing([ListedJob(j, j.state, None) for j in jobs], total, claims_known=False)
            return Listing([ListedJob(j, self.effective_state(j, claims), claims.get(j.id)) for j in jobs], total)
        # Any active record may be stalled, and a stalled one is none of the
        # active states: filter on the state as shown, then page.
        filters["states_in"] = (wanted - {states.JOB_STALLED}) | states.JOB_ACTIVE
        with self._db.read() as s:
            jobs = jobs_db.list_(s, **filters)
        claims = self.claims(jobs)
        shown = [ListedJob(j, self.effective_state(j, claims), claims.get(j.id)) for j in jobs]
        shown = [row for row in shown if row.state in wanted]
        end = offset + limit if limit else None
        return Listing(shown[offset:end], len(shown))

    def get(self, job_id: str, *, caller: Caller | None = None) -> Job:
        with self._db.read() as s:
            return _visible(jobs_db.get(s, job_id), caller, job_id)

    def show(self, job_id: str, *, caller: Caller | None = None, live: bool = False) -> JobView:
        """The job, each step of its flow, its attempts and steering history.
        ``live``: also ask ZooKeeper who holds it (and whether it stalled);
        the view then says so when ZooKeeper cannot be asked."""
        with self._db.read() as s:
            job = _visible(jobs_db.get(s, job_id), caller, job_id)
            actions = jobs_db.actions(s, job.id)
            attempts = jobs_db.attempts(s, job)
        retried_by = [j.id for j in attempts if j.retry_of == job.id]
        flow_state, steps = None, []
        flow = self._flow_detail(job)
        if flow is not None:
            flow_state = flow.state
            for atom in _in_flow_order(flow):
                failure = atom.failure or atom.revert_failure
                steps.append(StepView(
                    name=atom.name, state=atom.state,
                    duration=(atom.meta or {}).get("duration"),
                    failure=failure.exception_str if failure else None,
                ))
        shown_state, claim = job.state, None
        if live and job.state in states.JOB_ACTIVE:
            try:
                claims = self.claims([job])
                shown_state, claim = self.effective_state(job, claims), claims.get(job.id)
            except ServiceUnavailable as error:
                LOG.warning("job %s shown without its claim: %s", job.id, error)
        return JobView(job=job, flow_state=flow_state, steps=steps, current_step=_current_step(job, steps),
                       actions=actions, retried_by=retried_by, attempts=attempts, state=shown_state,
                       claim=claim, operation=states.OPERATIONS.get(job.operation))

    def claims(self, jobs) -> dict[str, ClaimCheck]:
        """Whether each active job among ``jobs`` is claimed by a live
        conductor, and whether it is stalled (see ``shareflow.engine.stalls``).
        Raises CoordinationError when ZooKeeper cannot be asked."""
        if self._stalls is None:
            raise ServiceUnavailable("job claims cannot be checked here (no ZooKeeper configured)")
        return self._stalls.check(jobs)

    def boards(self) -> list[BoardView]:
        """Every board ZooKeeper has, whichever host it is of (discovered from
        ZooKeeper, not from any configuration). Raises CoordinationError when
        ZooKeeper cannot be asked."""
        if self._zookeeper is None:
            raise ServiceUnavailable("jobboards cannot be listed here (no ZooKeeper configured)")
        out = []
        with open_boards(self._zookeeper, self._persistence) as boards:
            for key in boards.discover():
                found = every_job(boards.get(key))
                out.append(BoardView(key, len(found), sum(1 for j in found if boards.get(key).find_owner(j))))
        return out

    def effective_state(self, job: Job, claims: dict[str, ClaimCheck]) -> str:
        """The job's state as ``jobs list`` shows it: ``stalled`` for an
        active job ZooKeeper says nobody has claimed for ``stall_after``."""
        check = claims.get(job.id)
        return states.JOB_STALLED if check is not None and check.stalled else job.state

    @staticmethod
    def age(job: Job, now: datetime) -> float:
        return (now - job.created_at).total_seconds()

    # --- steering ---------------------------------------------------------------

    def cancel(self, job_id: str, caller: Caller) -> Job:
        policy.enforce(caller, f"job:{CANCEL}")
        now = self._clock()
        with self._db.write() as s:
            job = jobs_db.get(s, job_id)
            if job.state in (states.JOB_CANCELLING, states.JOB_CANCELLED):
                return job
            if job.state not in states.JOB_CANCELLABLE:
                raise Conflict(f"Job {job.id} is {job.state}: only a posted or running job can be cancelled.")
            if not jobs_db.steer(s, job, states.JOB_CANCELLING, now=now, sources=states.JOB_CANCELLABLE):
                raise Conflict(f"Job {job.id} changed state while it was being cancelled; try again.")
            self._record(s, job, CANCEL, job.state, states.JOB_CANCELLING, caller, now,
                         note="stops at its next step boundary and reverts")
        LOG.info("job %s (%s on %s) cancelled by %s", job.id, job.operation, job.resource_id, caller.user_id)
        return self._get(job.id)

    def resume(self, job_id: str, caller: Caller) -> Job:
        policy.enforce(caller, f"job:{RESUME}")
        self._require_poster()
        with self._db.read() as s:
            job = jobs_db.get(s, job_id)
        previous, sources = job.state, frozenset({job.state})
        stalled_on_board = False
        if job.state in states.JOB_ACTIVE:
            check = self.claims([job]).get(job.id)
            if check is None or not check.stalled:
                who = f"claimed by {check.owner}" if check and check.owner else "not stalled yet"
                raise Conflict(f"Job {job.id} is {job.state} and {who}: there is nothing to resume.")
            stalled_on_board = check.on_board
        elif job.state not in states.JOB_RESUMABLE:
            raise Conflict(
                f"Job {job.id} is {job.state}: only a job that is revert_failed, cancelled before its "
                f"revert finished, trashed or stalled can be resumed"
                + (" (retry runs a reverted job again)." if job.state in states.JOB_RETRYABLE else ".")
            )
        flow = self._flow_detail(job)
        if flow is not None and flow.state == tf_states.REVERTED and job.state not in states.JOB_ACTIVE:
            raise Conflict(f"Job {job.id} was undone completely: there is nothing to resume; retry it instead.")
        op = states.operation(job.operation)
        now = self._clock()
        target = states.JOB_CANCELLING if job.state == states.JOB_CANCELLING else states.JOB_POSTED
        with self._db.write() as s:
            status = resources.status(s, op, job.resource_id)
            took = False
            if status in op.failure_statuses and status not in op.working:
                took = resources.take_back(s, op, job.resource_id, _store(job), now=now)
            elif status not in op.working:
                raise Conflict(f"The {op.resource_kind.replace('_', ' ')} {job.resource_id} of job {job.id} "
                               f"is {status}: it moved on, there is nothing to resume.")
            # The old board job id stays until the new one is known: a record
            # without one is what the housekeeping takes for a job never posted.
            # No owner: the attempt's first claim records the board job it
            # runs, whichever post it comes from (jobs_db.set_running).
            values = {"finished_at": None, "attempt": job.attempt + 1, "owner": None}
            if not jobs_db.steer(s, job, target, now=now, sources=sources, values=values):
                raise Conflict(f"Job {job.id} was steered by someone else meanwhile; look at it again.")
            note = (f"still on the board of {job.backend}: it runs once a conductor of {job.backend} claims it"
                    if stalled_on_board else f"posted again (attempt {job.attempt + 1}) with its persisted flow")
            self._record(s, job, RESUME, previous, target, caller, now, note=note)
        if stalled_on_board:
            return self._get(job.id)
        try:
            if flow is not None:
                self._retry_failed_undos(flow)
            with self._db.read() as s:
                self._poster.repost(jobs_db.get(s, job.id))
        except ServiceUnavailable as error:
            self._undo_resume(job, previous, status if took else None, caller, error)
            raise ServiceUnavailable(str(error), user_message=f"Could not post job {job.id} again: "
                                     f"{error.user_message}. Nothing was changed.") from error
        LOG.info("job %s (%s on %s) resumed by %s", job.id, job.operation, job.resource_id, caller.user_id)
        return self._get(job.id)

    def retry(self, job_id: str, caller: Caller) -> Job:
        policy.enforce(caller, f"job:{RETRY}")
        self._require_poster()
        now = self._clock()
        with self._db.write() as s:
            job = jobs_db.get(s, job_id)
            op = states.operation(job.operation)
            if job.state not in states.JOB_RETRYABLE:
                raise Conflict(f"Job {job.id} is {job.state}: only a reverted or cancelled job can be retried"
                               + (" (resume finishes this one)." if job.state in states.JOB_RESUMABLE
                                  or job.state in states.JOB_ACTIVE else "."))
            if not op.retryable:
                raise Conflict(f"A {op.name} job cannot be retried: ask for the operation again.")
            kind = op.resource_kind.replace("_", " ")
            status = resources.status(s, op, job.resource_id)
            if status in (states.DELETED, resources.GONE):
                raise Conflict(f"The {kind} {job.resource_id} was deleted: there is nothing to retry.")
            later = jobs_db.others_on_resource(s, job)
            if later:
                raise Conflict(f"The {kind} {job.resource_id} has moved on: job {later[0].id} "
                               f"({later[0].operation}, {later[0].state}) was recorded on it after job {job.id}.")
            if status not in op.failure_statuses:
                raise Conflict(f"The {kind} {job.resource_id} is {status}, no longer the failure status "
                               f"of job {job.id}: it has moved on.")
            base = self._inputs(job)
            spec = dataclasses.replace(base, retry_of=job.id, request_id=caller.request_id, user_id=caller.user_id)
            if not resources.take_back(s, op, job.resource_id, spec.store, now=now):
                raise Conflict(f"The {kind} {job.resource_id} changed status meanwhile; look at it again.")
            new = self._poster.record(s, spec)
            self._record(s, job, RETRY, job.state, job.state, caller, now, note=f"retried as job {new.id}")
            self._record(s, new, RETRY, None, states.JOB_POSTED, caller, now, note=f"retries job {job.id}")
            new_id, failed_status = new.id, status

        def undo(session):
            # The new job is withdrawn: the resource, and the history, as they were.
            resources.give_back(session, op, job.resource_id, failed_status, now=self._clock(), made=False)
            jobs_db.drop_actions(session, new_id)
            jobs_db.drop_actions(session, job.id, note=f"retried as job {new_id}")

        self._poster.post_or_undo(new, spec, undo=undo)
        LOG.info("job %s (%s on %s) retried as %s by %s", job.id, job.operation, job.resource_id, new_id,
                 caller.user_id)
        return self._get(new_id)

    # --- helpers ------------------------------------------------------------------

    def _get(self, job_id: str) -> Job:
        with self._db.read() as s:
            return jobs_db.get(s, job_id)

    def _require_poster(self) -> None:
        if self._poster is None:
            raise ServiceUnavailable("jobs cannot be posted from here (no jobboard configured)")

    @staticmethod
    def _record(session, job: Job, action: str, from_state, to_state, caller: Caller, now, *, note: str) -> None:
        jobs_db.record_action(session, job.id, action, now=now, from_state=from_state, to_state=to_state,
                              user_id=caller.user_id, project_id=caller.project_id,
                              request_id=caller.request_id, note=note)

    def _flow_detail(self, job: Job):
        with contextlib.closing(self._persistence.get_connection()) as conn:
            try:
                return conn.get_flow_details(job.flow_detail_id)
            except Exception:  # the logbook was never written (post failed) or was cleaned
                return None

    def _retry_failed_undos(self, flow) -> None:
        """Put each atom whose undo failed back to REVERTING: TaskFlow
        treats REVERT_FAILURE as final, but resumes an atom left REVERTING
        (as by a conductor that died mid-undo) by running its revert again."""
        failed = [ad for ad in flow if ad.state == tf_states.REVERT_FAILURE]
        if not failed:
            return
        with translate_storage_errors("putting failed undos back"), \
                contextlib.closing(self._persistence.get_connection()) as conn:
            for ad in failed:
                ad.state = tf_states.REVERTING
                ad.revert_failure = None
                conn.update_atom_details(ad)

    def _undo_resume(self, job: Job, previous: str, resource_status: str | None, caller: Caller,
                     error: Exception) -> None:
        """The board could not take the job: the record and the resource as they were."""
        now = self._clock()
        with self._db.write() as s:
            current = jobs_db.get(s, job.id)
            jobs_db.steer(s, current, previous, now=now,
                          sources=frozenset({states.JOB_POSTED, states.JOB_CANCELLING}),
                          values={"board_job_id": job.board_job_id, "finished_at": job.finished_at,
                                  "attempt": job.attempt, "owner": job.owner})
            if resource_status is not None:
                op = states.operation(job.operation)
                resources.give_back(s, op, job.resource_id, resource_status, now=now, made=False)
            self._record(s, job, RESUME, current.state, previous, caller, now,
                         note=f"could not be posted again: {error}")

    def _inputs(self, job: Job):
        """The spec to post the job's operation again: from its record, or
        for a job recorded before its inputs were, from its logbook."""
        if job.factory:
            return spec_of(job)
        flow = self._flow_detail(job)
        factory = ((flow.meta or {}).get("factory") or {}) if flow is not None else {}
        store_ad = store_atom(flow) if flow is not None else None
        if not factory.get("name") or store_ad is None or not isinstance(store_ad.results, dict):
            raise Conflict(f"Job {job.id} predates recorded inputs and its logbook is gone: it cannot be "
                           f"run again.")
        module, _, name = factory["name"].rpartition(".")
        legacy = Job(**{c: getattr(job, c) for c in ("operation", "backend", "resource_type", "resource_id",
                                                     "project_id", "request_id", "user_id")})
        legacy.factory_kwargs = json.dumps(factory.get("kwargs") or {})
        legacy.store = json.dumps(store_ad.results)
        return spec_of(legacy, import_factory(f"{module}:{name}"))


def _filters(caller: Caller | None, states_in, operation, resource_id, project_id) -> dict:
    if caller is not None and not caller.is_admin:
        project_id = caller.project_id
    return {"states_in": states_in, "operation": operation, "resource_id": resource_id,
            "project_id": project_id}


def _visible(job: Job, caller: Caller | None, job_id: str) -> Job:
    """Another project's job does not exist for a member (as any resource)."""
    if caller is not None and not caller.is_admin and job.project_id != caller.project_id:
        raise NotFound(f"Job {job_id} could not be found.")
    return job


def _store(job: Job) -> dict:
    return json.loads(job.store) if job.store else {}


def _current_step(job: Job, steps: list[StepView]) -> str | None:
    for step in steps:
        if step.state in (tf_states.RUNNING, tf_states.REVERTING):
            return step.name
    return job.failed_step


def _in_flow_order(flow_detail) -> list:
    """The flow's own atoms (not TaskFlow's store injector) in the order the
    flow runs them; the persisted details keep no order."""
    atoms = {a.name: a for a in flow_detail if not a.name.startswith("_TaskFlow_")}
    try:
        order = [atom.name for atom, _ in engines.flow_from_detail(flow_detail).iter_nodes()]
    except Exception:  # the factory no longer imports: fall back to storage order
        return list(atoms.values())
    return [atoms[n] for n in order if n in atoms]
