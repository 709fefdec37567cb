"""Named points in a conductor's handling of a job where a test can hold it.

Tests only, like the fault-injecting driver proxy, and steered by the same
plan file (a backend's ``fault_plan``): an entry ``"conductor.<point>":
"hang"`` holds every conductor of that backend that reaches ``<point>``
until the entry changes, ``"fail"`` raises :class:`InjectedFault` there,
``"unavailable"`` a passing outage (:class:`CoordinationError`) and
``"database_outage"`` a passing outage of the database: SQLAlchemy's
``OperationalError``, as a lost connection raises it, at the first
:data:`OUTAGE_HITS` reaches of the point (counted in its marker, by every
conductor), then nothing - the database is back. A conductor
at a point the plan names first writes :func:`marker_path` (its pid and the
job), so a test knows which worker to SIGKILL at exactly that instant. The points
passed as the engine changes the flow's state (resuming, atoms_ensured,
running) or starts its first step (first_step) can only hold: TaskFlow's
notifier swallows what its callbacks raise.

The points inside a transaction (in_store_write, in_atoms_write,
in_start_write:<step>) come from SQLAlchemy events on the persistence
engine, while the conductor handles the job; a conductor held there holds
the database's write lock (SQLite) until it is killed. Without a plan
(production) no event is registered and every point is a single attribute
test.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc
from taskflow import states as tf_states
from taskflow import storage as tf_storage

from shareflow.drivers.fault import FAIL, HANG, POLL_INTERVAL, read_plan
from shareflow.engine.loading import STORE_ATOM
from shareflow.exceptions import CoordinationError, InjectedFault

LOG = logging.getLogger(__name__)

#: The points, in the order a conductor passes them.
CLAIMED = "claimed"  # the claim is ours; nothing written yet
BOOK_LOADED = "book_loaded"  # logbook and flow detail read
#: Inside the transaction that writes a resumed job's store alone (row
#: written, not committed); a fresh job's store is inserted with its other
#: atom details, in its first step's transaction (in_atoms_write).
IN_STORE_WRITE = "in_store_write"
STORE_SAVED = "store_saved"  # a resumed job's store persisted; a fresh one's ready for the first write
ENGINE_LOADED = "engine_loaded"  # engine built over the persisted flow detail
COMPILED = "compiled"
# The engine's states before its first step (flow RESUMING, atom details
# ensured, SUSPENDED, RUNNING) are written with that step's RUNNING, in one
# transaction (shareflow.engine.storage): at the next three points nothing
# has been written since the store.
RESUMING = "resuming"  # flow RESUMING (in memory), atom details not yet ensured
ATOMS_ENSURED = "atoms_ensured"  # every atom detail ensured (in memory), flow SUSPENDED
PREPARED = "prepared"  # validated, about to run
RUNNING = "running"  # flow RUNNING (in memory), no atom started yet
#: The engine's first write about to begin (no transaction yet): every claim
#: check before it has passed, nothing written since the store. Reached by
#: fresh and resumed jobs alike; a conductor whose claim is lost while it is
#: held here writes as one that lost it unknowing (shareflow.engine.storage).
FIRST_WRITE = "first_write"
IN_ATOMS_WRITE = "in_atoms_write"  # inside the first step's transaction: an atom detail inserted, not committed
#: ``in_start_write:<step>`` (:func:`in_start_write`): inside a transaction
#: that records step ``<step>`` RUNNING by an UPDATE of its row, as the
#: statement is sent (nothing of it executed): every write of a step's start
#: but a fresh flow's first (which inserts the rows). On PostgreSQL most are
#: one statement in a transaction of its own, the fence's read in it.
IN_START_WRITE = "in_start_write"
#: Flow RUNNING, every atom detail and the first step whose start is written
#: persisted RUNNING (with any step before it that started unrecorded,
#: shareflow.engine.storage, recorded done); that step not executed.
FIRST_STEP = "first_step"
#: Not in the loading sequence: a failed create's next attempt recorded (and
#: its share moved to the next pool), not yet posted (shareflow.engine.reschedule).
RESCHEDULED = "rescheduled"
#: Nor this: a scheduling job's create job recorded (and its share placed),
#: not yet posted (shareflow.tasks.scheduling).
PLACED = "placed"
#: After either: the create job is on the board (posted or handed off), its
#: record does not say so yet (``board_job_id`` not written).
POSTED_UNRECORDED = "posted_unrecorded"
#: What a conductor passes with a job no conductor has run yet; TaskFlow
#: ensures the atom details of a fresh flow without any flow state change.
#: (Not in_store_write: the store is written with the job's record,
#: ``shareflow.engine.logbooks``; only a job posted by an older version,
#: whose logbook has no store, is given one by its conductor.)
FRESH_POINTS = (CLAIMED, BOOK_LOADED, STORE_SAVED, ENGINE_LOADED, COMPILED,
                PREPARED, RUNNING, IN_ATOMS_WRITE, FIRST_STEP)
#: What a conductor passes resuming a flow that had started (flow RUNNING).
#: (Not first_step: a step found RUNNING is run again without being written
#: or notified again.)
RESUME_POINTS = (CLAIMED, BOOK_LOADED, STORE_SAVED, ENGINE_LOADED, COMPILED, RESUMING, ATOMS_ENSURED,
                 PREPARED, RUNNING)

PREFIX = "conductor."
#: Beside the proxy's "fail" and "hang": a passing outage (ZooKeeper or the
#: database unreachable), which sends the job back to the board.
UNAVAILABLE = "unavailable"
#: The database unreachable, for :data:`OUTAGE_HITS` reaches of the point:
#: as many as TaskFlow's storage makes attempts at a write, so one write
#: fails after its retries and the next reach passes.
DATABASE_OUTAGE = "database_outage"
OUTAGE_HITS = tf_storage.RETRY_ATTEMPTS
#: "hang" for the first conductor to reach the point only (the one whose
#: marker is written); the others pass while its marker is there - two
#: conductors on one job, one held, the other running it.
HANG_FIRST = "hang_first"


def in_start_write(step: str) -> str:
    """The point inside the write that records ``step`` RUNNING (:data:`IN_START_WRITE`)."""
    return f"{IN_START_WRITE}:{step}"


def marker_path(plan_path: str | os.PathLike, point: str) -> Path:
    """Where a conductor held at ``point`` says who it is."""
    return Path(f"{os.fspath(plan_path)}.at-{point}")


class Checkpoints:
    def __init__(self, plan_path: str | os.PathLike | None = None, *, hang_limit: float = 60.0):
        self._plan_path = os.fspath(plan_path) if plan_path is not None else None
        self._hang_limit = hang_limit
        #: The job this thread is loading, for the points inside transactions.
        self._local = threading.local()

    @property
    def active(self) -> bool:
        return self._plan_path is not None

    def watch(self, engine: sa.Engine) -> None:
        """Also stop inside the transactions that write atom details on
        ``engine`` (TaskFlow's own, on its persistence engine): right after
        an inserted row is written (a conductor killed there never commits
        it), and just before an UPDATE that records a step's start is sent
        (``in_start_write:<step>``)."""
        if self.active:
            sa.event.listen(engine, "after_cursor_execute", self._on_statement)
            sa.event.listen(engine, "before_cursor_execute", self._before_statement)

    @contextlib.contextmanager
    def loading(self, job_uuid: str) -> Iterator[None]:
        """While this thread loads and runs ``job_uuid`` (the points inside
        transactions apply to nothing else)."""
        self._local.job = job_uuid
        try:
            yield
        finally:
            self._local.job = None

    def _on_statement(self, _conn, _cursor, statement, _params, context, _executemany) -> None:
        job_uuid = getattr(self._local, "job", None)
        if job_uuid is None or not statement.lstrip().upper().startswith("INSERT INTO ATOMDETAILS"):
            return
        names = {p.get("name") for p in context.compiled_parameters}
        self.reach(IN_STORE_WRITE if names == {STORE_ATOM} else IN_ATOMS_WRITE, job_uuid)

    def _before_statement(self, _conn, _cursor, statement, params, context, _executemany) -> None:
        # Before the statement is sent: a step's start written in a
        # transaction of its own (PostgreSQL, autocommit) is not committed.
        job_uuid = getattr(self._local, "job", None)
        if job_uuid is None or "UPDATE ATOMDETAILS" not in statement.upper():
            return
        for name in _steps_started(params, context):
            self.reach(in_start_write(name), job_uuid)

    def reach(self, point: str, job_uuid: str) -> None:
        if self._plan_path is None:
            return
        key = PREFIX + point
        action = read_plan(self._plan_path).get(key)
        if action not in (FAIL, UNAVAILABLE, HANG, HANG_FIRST, DATABASE_OUTAGE):
            return
        marker = marker_path(self._plan_path, point)
        if action == HANG_FIRST and marker.exists():
            return
        hits = _hits(marker) + 1 if action == DATABASE_OUTAGE else None
        tmp = marker.with_name(marker.name + ".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "job": job_uuid,
                                   **({"hits": hits} if hits is not None else {})}))
        tmp.replace(marker)
        if action == DATABASE_OUTAGE:
            if hits > OUTAGE_HITS:
                return  # the database is back
            LOG.info("injecting a database outage at %s for job %s (%d of %d)", key, job_uuid, hits,
                     OUTAGE_HITS)
            raise sa_exc.OperationalError(f"-- at {key}", None,
                                          ConnectionError(f"injected database outage at {key}"))
        if action == FAIL:
            LOG.info("injecting a failure at %s for job %s", key, job_uuid)
            raise InjectedFault(key)
        if action == UNAVAILABLE:
            LOG.info("injecting an outage at %s for job %s", key, job_uuid)
            raise CoordinationError(f"injected outage at {key}")
        LOG.info("holding job %s at %s until the plan changes", job_uuid, key)
        deadline = time.monotonic() + self._hang_limit
        while read_plan(self._plan_path).get(key) == action and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
        # Released (or held too long): whatever the plan says now applies.
        if read_plan(self._plan_path).get(key) == FAIL:
            raise InjectedFault(key)


def _hits(marker: Path) -> int:
    """How often the point was reached under a database outage so far."""
    try:
        return int(json.loads(marker.read_text()).get("hits", 0))
    except (FileNotFoundError, ValueError):
        return 0


def _steps_started(params, context) -> list[str]:
    """The steps an UPDATE of atom details records RUNNING (to execute):
    from SQLAlchemy's parameters of a compiled statement (one dict a row),
    or from the named ones of shareflow's own PostgreSQL statement
    (``name0``, ``state0``, ``intention0``, ...: ``BatchConnection``)."""
    if context is not None and getattr(context, "compiled", None) is not None:
        rows = [(p.get("name"), p.get("state"), p.get("intention")) for p in context.compiled_parameters]
    elif isinstance(params, dict):
        rows = [(params.get(f"name{i}"), params.get(f"state{i}"), params.get(f"intention{i}"))
                for i in range(len(params)) if f"name{i}" in params]
    else:
        return []
    return [name for name, state, intention in rows
            if name and state == tf_states.RUNNING and intention == tf_states.EXECUTE]
