"""What a job's engine persists between its steps (shareflow.engine.storage),
on TaskFlow's persistence over our real databases: one write transaction per
step, no engine-made progress, a finished step recorded with the next write -
and a job whose conductor dies before that write runs that step again and
skips exactly the steps recorded done."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import threading

import pytest
import sqlalchemy as sa
from oslo_utils import timeutils, uuidutils
from taskflow import exceptions as tf_exc
from taskflow import states as tf_states
from taskflow import task
from taskflow.patterns import linear_flow
from taskflow.persistence import models as tf_models

from shareflow.db import jobs as jobs_db
from shareflow.db.models import Job
from shareflow.domain import states as job_states
from shareflow.engine import checkpoints
from shareflow.engine.listeners import DeferredDurationListener
from shareflow.engine.loading import new_store, save_store, store_atom
from shareflow.engine.persistence import JobFence, make_persistence
from shareflow.engine.storage import ShareflowEngine
from shareflow.exceptions import FlowTakenOver, FlowUnwritable
from tests.fixtures.stack import wait_until

STEPS = ("one", "two", "three")


class Crash(BaseException):
    """The conductor's process dies here: nothing after it runs or is written
    (TaskFlow's notifier swallows an Exception, not this)."""


def crash_at(notifier, state: str, step: str | None = None) -> None:
    """The conductor dies when ``notifier`` (an engine's flow ``notifier``,
    or its ``atom_notifier`` with ``step``) reaches ``state``."""
    def crash(_state, details):
        if step is None or details["task_name"] == step:
            raise Crash()

    notifier.register(state, crash)


class Step(task.Task):
    def execute(self, ran, seen, read):
        ran.append(self.name)
        seen[self.name] = read()
        return f"{self.name}-result"


def build_flow():
    return linear_flow.Flow("f").add(*(Step(n) for n in STEPS))


@pytest.fixture
def persistence(db):
    return make_persistence(db)


def new_flow_detail(persistence) -> str:
    book = tf_models.LogBook("b", uuid=uuidutils.generate_uuid())
    book.add(tf_models.FlowDetail("f", uuid=uuidutils.generate_uuid()))
    with contextlib.closing(persistence.get_connection()) as conn:
        conn.save_logbook(book)
    return next(iter(book)).uuid


def reload(persistence, flow_uuid):
    with contextlib.closing(persistence.get_connection()) as conn:
        return conn.get_flow_details(flow_uuid)


def persisted(persistence, flow_uuid) -> dict:
    """Atom name -> its row as the database has it now."""
    return {ad.name: ad for ad in reload(persistence, flow_uuid) if ad.name in STEPS}


def written_by(statement: str) -> str:
    """The statement proper of a write in a CTE (``WITH x AS (UPDATE ...)
    SELECT ...``), else the statement."""
    cte = re.match(r"\s*WITH .*? AS\s*\(((?:INSERT|UPDATE|DELETE)\b.*)", statement, re.S)
    return cte.group(1) if cte else statement


def given_rows(statement: str) -> int:
    """Rows of a statement that writes several at once (``WITH given AS
    (VALUES (...), (...)), written AS (UPDATE ...)``), else 0."""
    given = re.search(r"AS \(VALUES (.*?)\), written AS", statement, re.S)
    return given.group(1).count("), (") + 1 if given else 0


def autocommit(conn: sa.Connection) -> bool:
    return conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT"


@contextlib.contextmanager
def counting_writes(engine: sa.Engine):
    """The transactions committed on ``engine`` that wrote something (a
    writing statement in autocommit mode is one)."""
    commits: list[int] = []
    writing: set[int] = set()

    def on_statement(conn, _cursor, statement, *_args):
        if written_by(statement).lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            if autocommit(conn):
                commits.append(1)
            else:
                writing.add(id(conn))

    def on_commit(conn):
        if id(conn) in writing:
            writing.discard(id(conn))
            commits.append(1)

    sa.event.listen(engine, "before_cursor_execute", on_statement)
    sa.event.listen(engine, "commit", on_commit)
    try:
        yield commits
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_statement)
        sa.event.remove(engine, "commit", on_commit)


@contextlib.contextmanager
def recording_round_trips(engine: sa.Engine):
    """What the connections of ``engine`` send and wait for, in order: each
    statement (``VERB table``, `` xN`` for N rows in one: an executemany is
    one pipelined round trip), the ``BEGIN`` psycopg sends before a
    transaction's first statement, its ``COMMIT``/``ROLLBACK``. A statement
    in autocommit mode is its own round trip and nothing else. (On SQLite
    nothing travels, but the same is counted: ``BEGIN`` as SQLite's own.)"""
    trips: list[str] = []
    begun: set[int] = set()

    def on_statement(conn, _cursor, statement, _parameters, context, _executemany):
        words = written_by(statement).split()
        verb = words[0].upper()
        if verb == "BEGIN":  # SQLite's, from shareflow.db.engine's begin hook
            begun.add(id(conn))
            trips.append("BEGIN")
            return
        table = words[1] if verb == "UPDATE" else words[2] if verb in ("INSERT", "DELETE") else \
            next((words[i + 1] for i, w in enumerate(words[:-1]) if w.upper() == "FROM"), "")
        rows = len(getattr(context, "compiled_parameters", None) or ())
        rows = given_rows(statement) or rows
        if not autocommit(conn) and id(conn) not in begun and conn.dialect.name != "sqlite":
            begun.add(id(conn))
            trips.append("BEGIN")
        trips.append(f"{verb} {table}" + (f" x{rows}" if rows > 1 else ""))

    def on_end(word):
        def end(conn):
            if id(conn) in begun:
                begun.discard(id(conn))
                trips.append(word)
        return end

    on_commit, on_rollback = on_end("COMMIT"), on_end("ROLLBACK")
    sa.event.listen(engine, "before_cursor_execute", on_statement)
    sa.event.listen(engine, "commit", on_commit)
    sa.event.listen(engine, "rollback", on_rollback)
    try:
        yield trips
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_statement)
        sa.event.remove(engine, "commit", on_commit)
        sa.event.remove(engine, "rollback", on_rollback)


def job_record(db, flow_uuid: str, owner: str = "conductor-a", board_job_id: str = "board-job-1") -> JobFence:
    """A job record for the flow, running, as ``owner``'s claim of
    ``board_job_id`` recorded it (``jobs_db.set_running``); the fence of
    that conductor's engine."""
    job_id = uuidutils.generate_uuid()
    with db.write() as s:
        jobs_db.create(s, now=timeutils.utcnow(), id=job_id, backend="h@b", operation="create_share",
                       resource_type="share", resource_id=uuidutils.generate_uuid(),
                       logbook_id=uuidutils.generate_uuid(), flow_detail_id=flow_uuid)
    assert claims(db, job_id, owner, board_job_id)
    return JobFence(job_id, owner, board_job_id, flow_uuid)


def claims(db, job_id: str, owner: str, board_job_id: str) -> bool:
    """``owner`` records its claim of the job, as a conductor does before
    loading it."""
    with db.write_each() as s:
        return jobs_db.set_running(s, job_id, owner, now=timeutils.utcnow(), board_job_id=board_job_id)


#: Seconds between the tries of a failed write: short, the outages here are made.
RETRY_WAIT = 0.1


def engine_for(persistence, flow_uuid, ran, seen, fence: JobFence | None = None):
    engine = ShareflowEngine(build_flow(), reload(persistence, flow_uuid), persistence, {}, fence=fence,
                             retry_wait=RETRY_WAIT)
    engine.storage.inject({"ran": ran, "seen": seen,
                           "read": lambda: {n: ad.state for n, ad in persisted(persistence, flow_uuid).items()}},
                          transient=True)
    return engine


def test_one_write_per_step_and_every_step_recorded_before_the_next_runs(db, persistence):
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_for(persistence, flow_uuid, ran, seen)
    engine.compile()
    engine.prepare()
    with counting_writes(db.engine) as commits, DeferredDurationListener(engine):
        engine.run()

    assert ran == list(STEPS)
    # Each step ran with every step before it recorded SUCCESS and itself RUNNING.
    assert seen["one"] == {"one": tf_states.RUNNING, "two": tf_states.PENDING, "three": tf_states.PENDING}
    assert seen["two"] == {"one": tf_states.SUCCESS, "two": tf_states.RUNNING, "three": tf_states.PENDING}
    assert seen["three"] == {"one": tf_states.SUCCESS, "two": tf_states.SUCCESS, "three": tf_states.RUNNING}
    # One per step (its RUNNING, with the step before's SUCCESS and duration;
    # the first also with the flow's RUNNING), flow SUCCESS (with the last
    # step's SUCCESS and duration): 4 transactions (TaskFlow's storage writes
    # 18 here: 4 per step, the durations one by one, the flow's 2).
    assert len(commits) == 4, len(commits)
    rows = persisted(persistence, flow_uuid)
    for name in STEPS:
        assert rows[name].state == tf_states.SUCCESS
        assert rows[name].results == f"{name}-result"
        assert "progress" not in rows[name].meta  # the engine's own 0.0/1.0 are not written
        assert rows[name].meta["duration"] >= 0
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS


def test_what_a_run_sends(db, persistence):
    """What a run of a job's engine sends: its first write and its last are
    a transaction each (BEGIN, the fence's read of the job's record - whose
    state goes to ``on_step_start`` -, the rows, COMMIT). A step's write -
    the step before's SUCCESS with its RUNNING - is that too on SQLite; on
    PostgreSQL it is ONE statement of its own, fence included, all or none
    (``BatchConnection._update_atoms_at_once``): one round trip where the
    transaction takes four (and, before the fence, the read of the job's
    state for ``on_step_start`` followed it: two)."""
    flow_uuid = new_flow_detail(persistence)
    fence = job_record(db, flow_uuid)
    ran, seen = [], {}
    engine = ShareflowEngine(build_flow(), reload(persistence, flow_uuid), persistence, {}, fence=fence)
    engine.storage.inject({"ran": ran, "seen": seen, "read": lambda: None}, transient=True)
    started = []
    engine.storage.on_step_start = lambda job_state, atom_name: started.append((atom_name, job_state))
    engine.compile()
    engine.prepare()
    with recording_round_trips(db.engine) as trips, DeferredDurationListener(engine):
        engine.run()

    assert ran == list(STEPS)
    assert started == [(name, job_states.JOB_RUNNING) for name in STEPS]
    first = ["BEGIN", "SELECT jobs", "UPDATE flowdetails", "INSERT atomdetails x3", "COMMIT"]
    # A step's write on PostgreSQL: one statement, its own transaction.
    step = ["BEGIN", "SELECT jobs", "UPDATE atomdetails x2", "COMMIT"] if db.is_sqlite else \
        ["UPDATE atomdetails x2"]
    last = ["BEGIN", "SELECT jobs", "UPDATE flowdetails", "UPDATE atomdetails", "COMMIT"]
    assert trips == [*first, *step, *step, *last], trips


def test_a_step_done_but_not_recorded_runs_again_and_only_it(persistence):
    """The window this storage opens: step two has finished, its SUCCESS waits
    for the next write, and the conductor dies. The database says two is
    RUNNING; the next engine skips one, runs two again, then three."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_for(persistence, flow_uuid, ran, seen)

    crash_at(engine.atom_notifier, tf_states.SUCCESS, "two")
    with pytest.raises(Crash):
        engine.run()
    assert ran == ["one", "two"]
    states = {n: ad.state for n, ad in persisted(persistence, flow_uuid).items()}
    assert states == {"one": tf_states.SUCCESS, "two": tf_states.RUNNING, "three": tf_states.PENDING}

    resumed = engine_for(persistence, flow_uuid, ran, seen)
    resumed.run()
    assert ran == ["one", "two", "two", "three"]
    rows = persisted(persistence, flow_uuid)
    assert all(rows[n].state == tf_states.SUCCESS and rows[n].results == f"{n}-result" for n in STEPS)
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS


def test_a_failure_is_written_at_once_with_what_waited(persistence):
    """A step that fails: its FAILURE and the SUCCESS of the step before are
    in the database before the flow starts reverting."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}

    class Boom(Step):
        def execute(self, ran, seen, read):
            super().execute(ran, seen, read)
            raise RuntimeError("boom")

        def revert(self, ran, seen, read, **kwargs):
            seen["at_revert"] = read()

    flow = linear_flow.Flow("f").add(Step("one"), Boom("two"))
    engine = ShareflowEngine(flow, reload(persistence, flow_uuid), persistence, {})
    engine.storage.inject({"ran": ran, "seen": seen,
                           "read": lambda: {n: ad.state for n, ad in persisted(persistence, flow_uuid).items()}},
                          transient=True)
    with pytest.raises(RuntimeError):
        engine.run()
    assert seen["at_revert"]["one"] == tf_states.SUCCESS
    assert seen["at_revert"]["two"] in (tf_states.FAILURE, tf_states.REVERTING)
    rows = persisted(persistence, flow_uuid)
    assert rows["one"].state == tf_states.REVERTED and rows["two"].state == tf_states.REVERTED
    assert reload(persistence, flow_uuid).state == tf_states.REVERTED


def test_a_steps_start_carries_the_jobs_state_read_by_its_fence(db, persistence):
    """``on_step_start`` runs once per step written RUNNING, given the job's
    state as the write's fence read it: an operator's cancel committed while
    a step runs is what the next step's start sees (the conductor's
    question before each step, with no read of its own)."""
    flow_uuid = new_flow_detail(persistence)
    fence = job_record(db, flow_uuid)
    ran, seen, started = [], {}, []
    engine = engine_for(persistence, flow_uuid, ran, seen, fence=fence)

    def cancel_during_two():
        if ran[-1] == "two":
            with db.write() as s:
                s.execute(sa.update(Job).where(Job.id == fence.job_id).values(state=job_states.JOB_CANCELLING))

    engine.storage.inject({"read": cancel_during_two}, transient=True)
    engine.storage.on_step_start = lambda job_state, atom_name: started.append((atom_name, job_state))
    engine.run()
    assert ran == list(STEPS)
    assert started == [("one", job_states.JOB_RUNNING), ("two", job_states.JOB_RUNNING),
                       ("three", job_states.JOB_CANCELLING)]


@contextlib.contextmanager
def recording_transactions(engine: sa.Engine):
    """Each committed transaction on ``engine`` that wrote: its statements
    (``VERB table``, and `` xN`` for one statement of N rows)."""
    done: list[list[str]] = []
    current: dict[int, list[str]] = {}

    def on_statement(conn, _cursor, statement, _parameters, context, _executemany):
        words = written_by(statement).split()
        # "UPDATE atomdetails", "SELECT ... FROM atomdetails", "INSERT INTO atomdetails"
        table = words[1] if words[0].upper() == "UPDATE" else words[2] if words[0].upper() == "INSERT" else \
            next((words[i + 1] for i, w in enumerate(words[:-1]) if w.upper() == "FROM"), "")
        rows = len(getattr(context, "compiled_parameters", None) or ())
        rows = given_rows(statement) or rows
        entry = f"{words[0].upper()} {table}" + (f" x{rows}" if rows > 1 else "")
        if autocommit(conn):  # a statement that is its own transaction
            if words[0].upper() in ("INSERT", "UPDATE", "DELETE"):
                done.append([entry])
            return
        current.setdefault(id(conn), []).append(entry)

    def on_commit(conn):
        statements = [st for st in current.pop(id(conn), []) if not st.startswith("BEGIN")]
        if any(st.split()[0] in ("INSERT", "UPDATE", "DELETE") for st in statements):
            done.append(statements)

    sa.event.listen(engine, "before_cursor_execute", on_statement)
    sa.event.listen(engine, "commit", on_commit)
    try:
        yield done
    finally:
        sa.event.remove(engine, "before_cursor_execute", on_statement)
        sa.event.remove(engine, "commit", on_commit)


def test_a_fresh_flow_writes_nothing_until_its_first_step_and_never_reads_a_row_to_write_it(db, persistence):
    """Preparing and starting a fresh engine (its atom details ensured, flow
    RUNNING) writes nothing: all of it goes in the first step's transaction,
    before that step runs. Every transaction writes blind (no SELECT of the
    row it then writes, as TaskFlow's connection does), and the flow's
    SUCCESS carries what ``on_flow_success`` writes."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_for(persistence, flow_uuid, ran, seen)
    flow_states = {}
    engine.storage.inject({"read": lambda: (flow_states.setdefault(len(flow_states), reload(
        persistence, flow_uuid).state), {n: ad.state for n, ad in persisted(persistence, flow_uuid).items()})[1]},
        transient=True)
    engine.storage.on_flow_success = lambda conn: conn.execute(
        sa.text("UPDATE flowdetails SET name = 'marked' WHERE uuid = :u"), {"u": flow_uuid})
    with recording_transactions(db.engine) as transactions:
        engine.compile()
        engine.prepare()
        assert transactions == []
        assert persisted(persistence, flow_uuid) == {}
        with DeferredDurationListener(engine):
            engine.run()

    assert ran == list(STEPS)
    assert seen["one"] == {"one": tf_states.RUNNING, "two": tf_states.PENDING, "three": tf_states.PENDING}
    assert flow_states[0] == tf_states.RUNNING  # as step one ran
    # The atoms a transaction writes go in one statement: the fresh flow's
    # atom details inserted together, a step's RUNNING with the step
    # before's SUCCESS (an executemany).
    assert transactions == [
        ["UPDATE flowdetails", "INSERT atomdetails x3"],
        ["UPDATE atomdetails x2"],
        ["UPDATE atomdetails x2"],
        ["UPDATE flowdetails", "UPDATE atomdetails", "UPDATE flowdetails"],
    ], transactions
    rows = persisted(persistence, flow_uuid)
    assert all(rows[n].state == tf_states.SUCCESS and rows[n].meta["duration"] >= 0 for n in STEPS)
    final = reload(persistence, flow_uuid)
    assert final.state == tf_states.SUCCESS and final.name == "marked"


@pytest.mark.parametrize("state", [tf_states.RUNNING])
def test_a_fresh_flow_killed_before_its_first_step_is_written_starts_over(persistence, state):
    """Killed with the flow RUNNING in memory (atoms ensured, nothing written):
    the database has the flow as it was posted, and the next engine runs
    every step once."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_for(persistence, flow_uuid, ran, seen)
    crash_at(engine.notifier, state)
    with pytest.raises(Crash):
        engine.run()
    assert ran == []
    assert persisted(persistence, flow_uuid) == {}
    assert reload(persistence, flow_uuid).state in (None, tf_states.PENDING)

    engine_for(persistence, flow_uuid, ran, seen).run()
    assert ran == list(STEPS)
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS


def test_killed_inside_the_first_steps_transaction_nothing_is_written(persistence):
    """The first step's transaction (flow RUNNING, the atom details, its
    RUNNING) dies before it commits: none of it is there, and the next
    engine runs every step once."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_for(persistence, flow_uuid, ran, seen)

    def on_step_start(job_state, atom_name):
        raise Crash()

    engine.storage.on_step_start = on_step_start
    with pytest.raises(Crash):
        engine.run()
    assert ran == [] and persisted(persistence, flow_uuid) == {}
    engine_for(persistence, flow_uuid, ran, seen).run()
    assert ran == list(STEPS)


@pytest.mark.parametrize("state", [tf_states.RESUMING, tf_states.SUSPENDED, tf_states.RUNNING])
def test_a_resumed_flow_killed_before_its_next_write_resumes_from_the_same_rows(persistence, state):
    """A flow that had run step one (and died as step two started) is
    resumed, and the resuming engine dies at ``state`` (RESUMING, SUSPENDED
    after the atoms are ensured, RUNNING), whose writes wait for the next
    step's: the rows are exactly as the first engine left them, and a third
    engine skips step one and runs two and three."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    first = engine_for(persistence, flow_uuid, ran, seen)

    crash_at(first.atom_notifier, tf_states.RUNNING, "two")  # recorded RUNNING, not run
    with pytest.raises(Crash):
        first.run()
    before = {n: (ad.state, ad.results) for n, ad in persisted(persistence, flow_uuid).items()}
    assert before == {"one": (tf_states.SUCCESS, "one-result"), "two": (tf_states.RUNNING, None),
                      "three": (tf_states.PENDING, None)}
    assert reload(persistence, flow_uuid).state == tf_states.RUNNING

    second = engine_for(persistence, flow_uuid, ran, seen)
    crash_at(second.notifier, state)
    with pytest.raises(Crash):
        second.run()
    assert {n: (ad.state, ad.results) for n, ad in persisted(persistence, flow_uuid).items()} == before
    assert reload(persistence, flow_uuid).state == tf_states.RUNNING

    assert ran == ["one"]
    engine_for(persistence, flow_uuid, ran, seen).run()
    assert ran == ["one", "two", "three"]
    rows = persisted(persistence, flow_uuid)
    assert all(rows[n].state == tf_states.SUCCESS and rows[n].results == f"{n}-result" for n in STEPS)


def test_the_flows_success_and_what_rides_with_it_commit_together(persistence):
    """``on_flow_success`` (the job's record) runs in the transaction that
    writes the flow's SUCCESS: if it fails, the flow and its last step are
    not recorded done either, and the next engine runs that step again."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_for(persistence, flow_uuid, ran, seen)

    def on_flow_success(connection):
        connection.execute(sa.text("UPDATE flowdetails SET name = 'marked' WHERE uuid = :u"), {"u": flow_uuid})
        raise Crash()

    engine.storage.on_flow_success = on_flow_success
    with pytest.raises(Crash):
        engine.run()
    flow = reload(persistence, flow_uuid)
    assert flow.state == tf_states.RUNNING and flow.name != "marked"
    assert {n: ad.state for n, ad in persisted(persistence, flow_uuid).items()} == {
        "one": tf_states.SUCCESS, "two": tf_states.SUCCESS, "three": tf_states.RUNNING}
    engine_for(persistence, flow_uuid, ran, seen).run()
    assert ran == ["one", "two", "three", "three"]
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS


def test_loading_a_jobs_logbook_does_not_take_the_write_lock(tmp_path):
    """The conductor reads a claimed job's logbook in a read transaction: it
    is read while another process holds SQLite's write lock (TaskFlow's own
    read begins IMMEDIATE and would wait for it, holding up the writer
    behind - e.g. the request that posted the job)."""
    import sqlite3

    from shareflow.db import migrate
    from shareflow.db.engine import Database

    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = Database(url)
    try:
        migrate.upgrade(db)
        persistence = make_persistence(db)
        flow_uuid = new_flow_detail(persistence)
        with db.engine.connect() as c:
            book_uuid = c.execute(sa.text("SELECT parent_uuid FROM flowdetails WHERE uuid = :u"),
                                  {"u": flow_uuid}).scalar_one()
        writer = sqlite3.connect(tmp_path / "db.sqlite", isolation_level=None, timeout=0)
        try:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("UPDATE logbooks SET name = 'being written' WHERE uuid = ?", (book_uuid,))
            with contextlib.closing(persistence.get_connection()) as conn:
                book = conn.get_logbook(book_uuid)
            assert [fd.uuid for fd in book] == [flow_uuid]
            assert book.name == "b"  # the committed row, not the writer's
        finally:
            writer.execute("ROLLBACK")
            writer.close()
    finally:
        db.dispose()


def test_an_engine_suspended_before_its_first_step_writes_nothing(persistence):
    """Suspended as the flow starts (its claim lost, its conductor stopping):
    neither its atom details nor its flow states are written, not even as
    its listeners deregister - a conductor that lost the job must not add its
    own atom details to the flow another one has taken over. The next engine
    runs every step once."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_for(persistence, flow_uuid, ran, seen)
    engine.notifier.register(tf_states.RUNNING, lambda state, details: engine.suspend())
    with DeferredDurationListener(engine):
        engine.run()
    assert engine.storage.get_flow_state() == tf_states.SUSPENDED
    assert ran == [] and persisted(persistence, flow_uuid) == {}
    assert reload(persistence, flow_uuid).state in (None, tf_states.PENDING)

    engine_for(persistence, flow_uuid, ran, seen).run()
    assert ran == list(STEPS)
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS


def test_several_atoms_written_at_once_still_find_a_missing_row(persistence):
    """A step's RUNNING and the step before's SUCCESS go in one statement; if
    one of the rows is not there, it is inserted under the flow written with
    them, or (no flow) the whole write fails and nothing of it is kept."""
    flow_uuid = new_flow_detail(persistence)
    flow = reload(persistence, flow_uuid)
    there = tf_models.TaskDetail("one", uuid=uuidutils.generate_uuid())
    there.state = tf_states.RUNNING
    with contextlib.closing(persistence.get_connection()) as conn:
        conn.update_flow_detail_and(flow, [], new_atoms=[there])
        missing = tf_models.TaskDetail("two", uuid=uuidutils.generate_uuid())
        missing.state = tf_states.RUNNING
        there.state = tf_states.SUCCESS
        with pytest.raises(tf_exc.NotFound):
            conn.update_atom_details_many([there, missing])
        assert {n: ad.state for n, ad in persisted(persistence, flow_uuid).items()} == {"one": tf_states.RUNNING}
        conn.update_atom_details_many([there, missing], flow_detail=flow)
    rows = persisted(persistence, flow_uuid)
    assert (rows["one"].state, rows["two"].state) == (tf_states.SUCCESS, tf_states.RUNNING)


def engine_with_store(persistence, flow_uuid, ran, seen, store: dict):
    """As the conductor loads a fresh job: its store added to the flow detail
    in memory, for the engine's first write to insert."""
    flow_detail = reload(persistence, flow_uuid)
    fresh = new_store(flow_detail, store)
    assert fresh is not None
    engine = ShareflowEngine(build_flow(), flow_detail, persistence, {})
    engine.storage.insert_with_first_write(fresh)
    engine.storage.inject({"ran": ran, "seen": seen,
                           "read": lambda: {n: ad.state for n, ad in persisted(persistence, flow_uuid).items()}},
                          transient=True)
    return engine


def stored(persistence, flow_uuid):
    return store_atom(reload(persistence, flow_uuid))


def test_a_fresh_jobs_store_is_inserted_with_its_first_step(db, persistence):
    """No transaction of its own: the store goes in the first step's, with
    the other atom details, and the engine reads it as the steps run."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_with_store(persistence, flow_uuid, ran, seen, {"answer": 42})
    with recording_transactions(db.engine) as transactions:
        engine.compile()
        engine.prepare()
        assert engine.storage.fetch("answer") == 42
        assert transactions == [] and stored(persistence, flow_uuid) is None
        engine.run()
    assert ran == list(STEPS)
    assert transactions[0] == ["UPDATE flowdetails", "INSERT atomdetails x4"], transactions
    assert len(transactions) == 4, transactions
    store = stored(persistence, flow_uuid)
    assert store.results == {"answer": 42} and store.state == tf_states.SUCCESS
    # A resumed job finds it there: nothing to add again.
    assert new_store(reload(persistence, flow_uuid), {"answer": 42}) is None


def test_a_fresh_job_stopped_before_its_first_write_leaves_no_store(persistence):
    """Killed with the flow RUNNING in memory, or suspended before its first
    step (claim lost): the flow is as posted, store and all; the next engine
    adds the store from the job again and runs every step once."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_with_store(persistence, flow_uuid, ran, seen, {"answer": 42})
    crash_at(engine.notifier, tf_states.RUNNING)
    with pytest.raises(Crash):
        engine.run()
    suspended = engine_with_store(persistence, flow_uuid, ran, seen, {"answer": 42})
    suspended.notifier.register(tf_states.RUNNING, lambda _state, details: suspended.suspend())
    with DeferredDurationListener(suspended):
        suspended.run()
    assert ran == []
    assert persisted(persistence, flow_uuid) == {} and stored(persistence, flow_uuid) is None

    engine_with_store(persistence, flow_uuid, ran, seen, {"answer": 43}).run()
    assert ran == list(STEPS)
    assert stored(persistence, flow_uuid).results == {"answer": 43}
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS


def unrecorded_flow(*unrecorded: str):
    """The three steps, those named here saying their start need not be
    written (``shareflow.engine.storage.unrecorded_start``)."""
    steps = []
    for name in STEPS:
        step = Step(name)
        step.unrecorded_start = name in unrecorded
        steps.append(step)
    return linear_flow.Flow("f").add(*steps)


def engine_over(persistence, flow_uuid, flow, ran, seen):
    engine = ShareflowEngine(flow, reload(persistence, flow_uuid), persistence, {})
    engine.storage.inject({"ran": ran, "seen": seen,
                           "read": lambda: {n: ad.state for n, ad in persisted(persistence, flow_uuid).items()}},
                          transient=True)
    return engine


def test_a_step_that_starts_unrecorded_is_written_with_the_next_write(db, persistence):
    """Step one only reads: its RUNNING is not written; its RUNNING and
    SUCCESS (with its result and duration), the flow's start and the atom
    details go with step two's RUNNING, before step two runs. One write
    transaction less than with every start written."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_over(persistence, flow_uuid, unrecorded_flow("one"), ran, seen)
    engine.compile()
    engine.prepare()
    with counting_writes(db.engine) as commits, DeferredDurationListener(engine):
        engine.run()

    assert ran == list(STEPS)
    assert seen["one"] == {}  # nothing written yet: a fresh flow has no atom rows
    assert seen["two"] == {"one": tf_states.SUCCESS, "two": tf_states.RUNNING, "three": tf_states.PENDING}
    assert seen["three"] == {"one": tf_states.SUCCESS, "two": tf_states.SUCCESS, "three": tf_states.RUNNING}
    assert len(commits) == 3, len(commits)  # 4 when step one's start is written
    rows = persisted(persistence, flow_uuid)
    for name in STEPS:
        assert rows[name].state == tf_states.SUCCESS and rows[name].results == f"{name}-result"
        assert rows[name].meta["duration"] >= 0
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS


def test_killed_after_an_unrecorded_step_the_next_engine_runs_it_and_the_step_before_again(persistence):
    """Step two starts unrecorded and finishes; the conductor dies before the
    next write. The database says one RUNNING (its SUCCESS waited with two's
    start), two PENDING: the next engine skips nothing that is not recorded
    done - it runs one and two again, then three - and a step with
    something to revert (three) never starts before both are recorded."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_over(persistence, flow_uuid, unrecorded_flow("two"), ran, seen)

    crash_at(engine.atom_notifier, tf_states.SUCCESS, "two")
    with pytest.raises(Crash):
        engine.run()
    assert ran == ["one", "two"]
    assert {n: ad.state for n, ad in persisted(persistence, flow_uuid).items()} == {
        "one": tf_states.RUNNING, "two": tf_states.PENDING, "three": tf_states.PENDING}

    engine_over(persistence, flow_uuid, unrecorded_flow("two"), ran, seen).run()
    assert ran == ["one", "two", "one", "two", "three"]
    assert seen["three"] == {"one": tf_states.SUCCESS, "two": tf_states.SUCCESS, "three": tf_states.RUNNING}
    rows = persisted(persistence, flow_uuid)
    assert all(rows[n].state == tf_states.SUCCESS and rows[n].results == f"{n}-result" for n in STEPS)


def test_an_engine_suspended_after_an_unrecorded_first_step_writes_nothing(persistence):
    """Step one started unrecorded and finished, then the engine is suspended
    (its claim lost) before any write: its listeners' flush writes nothing
    either - the flow stays as posted, and the next engine runs every step."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    engine = engine_over(persistence, flow_uuid, unrecorded_flow("one"), ran, seen)
    engine.atom_notifier.register(
        tf_states.SUCCESS, lambda state, details: engine.suspend() if details["task_name"] == "one" else None)
    with DeferredDurationListener(engine):
        engine.run()
    assert ran == ["one"] and persisted(persistence, flow_uuid) == {}
    assert reload(persistence, flow_uuid).state in (None, tf_states.PENDING)

    engine_over(persistence, flow_uuid, unrecorded_flow("one"), ran, seen).run()
    assert ran == ["one", "one", "two", "three"]
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS


def test_the_steps_that_start_unrecorded_are_the_readers_the_post_and_the_initial_access():
    """Which of the real flows' steps start unrecorded: those that only read
    or change nothing (begin, find_share_server; with DHSS=false the
    network and server steps), or whose effect is found done when they run
    again (an access rule's begin, the scheduling job's post) or changes
    nothing when made again with nothing to revert (the create's access
    step); every step with something to revert, or whose side effect is not
    once-only, is written before it runs - and so are the long ones with
    none (a delete's), whose running start tells an operator where a job
    is."""
    from shareflow.flows.access import allow_access, deny_access
    from shareflow.flows.create_share import create_share
    from shareflow.flows.delete_share import delete_share
    from shareflow.flows.schedule_share import schedule_share
    from shareflow.tasks.lifecycle import BeginOperation
    from shareflow.engine.storage import unrecorded_start

    def unrecorded(flow):
        return [atom.name for atom in flow if unrecorded_start(atom)]

    assert unrecorded(schedule_share()) == ["begin", "post_create"]
    assert unrecorded(create_share()) == [
        "begin", "allocate_network", "provide_share_server", "apply_access"]
    assert unrecorded(create_share(driver_handles_share_servers=True)) == ["begin", "apply_access"]
    assert unrecorded(delete_share()) == ["begin", "find_share_server", "release_share_server", "release_network"]
    assert unrecorded(delete_share(driver_handles_share_servers=True)) == ["begin", "find_share_server"]
    assert unrecorded(allow_access()) == ["begin", "find_share_server"]
    assert unrecorded(deny_access()) == ["begin", "find_share_server"]
    assert unrecorded_start(BeginOperation("allow_access")) and not BeginOperation("allow_access").reads_only


def atom_rows(db, flow_uuid) -> list[tuple[str, str]]:
    """Every atom row of the flow: (name, state), by name."""
    with db.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(
            sa.text("SELECT name, state FROM atomdetails WHERE parent_uuid = :p"), {"p": flow_uuid}))


def test_a_late_first_write_of_an_engine_that_lost_the_job_writes_nothing(db, persistence):
    """Two engines loaded the same fresh flow: A, whose conductor lost the
    job's claim without knowing it yet, and B, whose conductor took it over.
    B writes first and runs; A's first write lands while B is inside its
    second step. It fails whole (FlowTakenOver, at once: not retried): no
    second set of atom details, A's step does not run, nothing of A is
    written after it (not its flow's FAILURE nor its durations), and B's run
    goes on to its end over its own rows."""
    flow_uuid = new_flow_detail(persistence)
    ran_a, ran_b, seen = [], [], {}
    a = engine_for(persistence, flow_uuid, ran_a, seen)
    a.compile()
    a.prepare()
    late: dict = {}

    def a_runs_late():
        with DeferredDurationListener(a), counting_writes(db.engine) as commits:
            with pytest.raises(FlowTakenOver) as raised:
                a.run()
        late.update(error=raised.value, commits=len(commits), rows=atom_rows(db, flow_uuid))

    b = ShareflowEngine(build_flow(), reload(persistence, flow_uuid), persistence, {})
    b.storage.inject({"ran": ran_b, "seen": seen,
                      "read": lambda: a_runs_late() if ran_b == ["one", "two"] else None}, transient=True)
    with DeferredDurationListener(b):
        b.run()

    assert ran_a == [] and ran_b == list(STEPS)
    assert late["error"].flow_uuid == flow_uuid and a.storage.taken_over is late["error"]
    assert late["commits"] == 0
    assert late["rows"] == [("one", tf_states.SUCCESS), ("three", tf_states.PENDING),
                            ("two", tf_states.RUNNING)]
    assert atom_rows(db, flow_uuid) == [(n, tf_states.SUCCESS) for n in sorted(STEPS)]
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS
    assert {n: ad.results for n, ad in persisted(persistence, flow_uuid).items()} == {
        n: f"{n}-result" for n in STEPS}


def test_an_engine_whose_flow_was_written_after_it_loaded_it_stops_and_a_reload_resumes(db, persistence):
    """The other order: A (its claim lost, unknowing) writes its first step's
    start after B loaded the flow and before B's first write. B's first
    write fails whole and its first step does not run; the flow is A's, as
    A wrote it, and an engine loading it again (the job back on the board)
    resumes it exactly: step one again (recorded RUNNING, not done), then
    the others."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    b = engine_for(persistence, flow_uuid, ran, seen)
    b.compile()
    b.prepare()
    a = engine_for(persistence, flow_uuid, ran, seen)
    crash_at(a.atom_notifier, tf_states.RUNNING, "one")  # A wrote its start, then stopped (suspended)
    with pytest.raises(Crash):
        a.run()
    with DeferredDurationListener(b), pytest.raises(FlowTakenOver):
        b.run()
    assert ran == []
    assert atom_rows(db, flow_uuid) == [("one", tf_states.RUNNING), ("three", tf_states.PENDING),
                                        ("two", tf_states.PENDING)]

    engine_for(persistence, flow_uuid, ran, seen).run()
    assert ran == list(STEPS)
    assert atom_rows(db, flow_uuid) == [(n, tf_states.SUCCESS) for n in sorted(STEPS)]


def test_a_late_write_of_a_resumed_flow_is_refused_once_the_job_is_another_conductors(db, persistence):
    """A resumed flow (its atom rows there): A's conductor claimed the job and
    loaded it, then lost the claim without knowing; B's conductor claimed it,
    recorded itself in the job's record, loaded it and ran it to its end.
    A's first write - UPDATEs of rows B loaded and moved on, which no index
    refuses - is refused by its fence (FlowTakenOver, at once): nothing of
    it is written, the step it starts does not run, A writes nothing after
    it, and the rows are B's."""
    flow_uuid = new_flow_detail(persistence)
    ran, seen = [], {}
    first = engine_for(persistence, flow_uuid, ran, seen)
    crash_at(first.atom_notifier, tf_states.RUNNING, "two")  # its conductor died: a job to resume
    with pytest.raises(Crash):
        first.run()
    fence_a = job_record(db, flow_uuid, owner="conductor-a")
    ran_a = []
    a = engine_for(persistence, flow_uuid, ran_a, seen, fence=fence_a)
    a.compile()
    a.prepare()

    assert claims(db, fence_a.job_id, "conductor-b", fence_a.board_job_id)
    ran_b = []
    with DeferredDurationListener(b := engine_for(persistence, flow_uuid, ran_b, seen, fence=dataclasses.replace(
            fence_a, owner="conductor-b"))):
        b.run()
    assert ran_b == ["two", "three"]
    done = atom_rows(db, flow_uuid)
    assert done == [(n, tf_states.SUCCESS) for n in sorted(STEPS)]

    with counting_writes(db.engine) as commits, DeferredDurationListener(a), pytest.raises(FlowTakenOver) as raised:
        a.run()
    # Step two, found RUNNING, runs again before any write (a resumed
    # engine's first write is the step after's start): three does not run.
    assert ran_a == ["two"] and commits == []
    assert raised.value.flow_uuid == flow_uuid and a.storage.taken_over is raised.value
    assert f"job {fence_a.job_id} is no longer recorded as run by conductor-a" in str(raised.value)
    assert atom_rows(db, flow_uuid) == done
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS


def test_a_steps_write_after_the_job_was_taken_over_is_refused(db, persistence):
    """Between two of A's steps the job becomes B's (B's conductor recorded
    its claim): A's next write - the step's SUCCESS with the next one's
    RUNNING, on PostgreSQL the one statement of a step's write - is refused
    whole, the next step does not run, and the rows stay as A last wrote
    them, for B to load."""
    flow_uuid = new_flow_detail(persistence)
    fence = job_record(db, flow_uuid, owner="conductor-a")
    ran, seen = [], {}
    a = engine_for(persistence, flow_uuid, ran, seen, fence=fence)

    def taken_over_during_one():
        if ran == ["one"]:
            assert claims(db, fence.job_id, "conductor-b", fence.board_job_id)

    a.storage.inject({"read": taken_over_during_one}, transient=True)
    with DeferredDurationListener(a), pytest.raises(FlowTakenOver):
        a.run()
    assert ran == ["one"] and a.storage.taken_over is not None
    assert atom_rows(db, flow_uuid) == [("one", tf_states.RUNNING), ("three", tf_states.PENDING),
                                        ("two", tf_states.PENDING)]


def test_a_steps_start_the_database_failed_stops_the_engine_writing_nothing_more(db, persistence, tmp_path):
    """The database fails step two's start - the write of its RUNNING with
    one's SUCCESS, on PostgreSQL the one statement of a step's write - at
    every attempt TaskFlow's storage makes, and is back right after
    (checkpoint ``in_start_write:two``, a real ``OperationalError``). Two
    does not run; the engine stops (:class:`FlowUnwritable`) and writes
    nothing more: not its flow's FAILURE, which the database would now
    take, nor its durations - the rows stay as they were written before
    the outage, as if its conductor had died there. The next engine
    resumes from them and runs the flow through (one again: its SUCCESS
    was not written)."""
    flow_uuid = new_flow_detail(persistence)
    fence = job_record(db, flow_uuid, owner="conductor-a")
    plan = tmp_path / "plan.json"
    point = checkpoints.in_start_write("two")
    plan.write_text(f'{{"{checkpoints.PREFIX}{point}": "{checkpoints.DATABASE_OUTAGE}"}}')
    points = checkpoints.Checkpoints(plan)
    points.watch(db.engine)
    ran, seen = [], {}
    a = engine_for(persistence, flow_uuid, ran, seen, fence=fence)
    with points.loading("board-job-1"), DeferredDurationListener(a), pytest.raises(FlowUnwritable) as raised:
        a.run()
    marker = checkpoints.marker_path(plan, point)
    assert json.loads(marker.read_text())["hits"] == checkpoints.OUTAGE_HITS
    assert ran == ["one"]
    assert a.storage.unwritable is raised.value and raised.value.flow_uuid == flow_uuid
    assert isinstance(raised.value.__cause__, tf_exc.StorageFailure)
    assert atom_rows(db, flow_uuid) == [("one", tf_states.RUNNING), ("three", tf_states.PENDING),
                                        ("two", tf_states.PENDING)]
    assert reload(persistence, flow_uuid).state == tf_states.RUNNING
    assert a.storage.get_flow_state() == tf_states.FAILURE  # TaskFlow's end, in memory only

    ran_b = []
    b = engine_for(persistence, flow_uuid, ran_b, seen, fence=fence)
    with points.loading("board-job-1"), DeferredDurationListener(b):
        b.run()
    assert json.loads(marker.read_text())["hits"] == checkpoints.OUTAGE_HITS + 1  # the database was back
    assert ran_b == ["one", "two", "three"]
    assert atom_rows(db, flow_uuid) == [(n, tf_states.SUCCESS) for n in sorted(STEPS)]
    assert reload(persistence, flow_uuid).state == tf_states.SUCCESS


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_fence_holds_the_jobs_row_until_the_write_commits(db, persistence):
    """PostgreSQL, at READ COMMITTED: A's write holds the job's row (``FOR
    SHARE``) until it commits, so B's conductor, recording its claim
    meanwhile, waits for that commit - and then loads the flow with A's
    write in it; A's next write is refused."""
    flow_uuid = new_flow_detail(persistence)
    fence = job_record(db, flow_uuid, owner="conductor-a")
    ran, seen = [], {}
    a = engine_for(persistence, flow_uuid, ran, seen, fence=fence)
    b_claimed: dict = {}

    def waiting_on_a_lock() -> bool:
        with db.engine.connect() as conn:
            return conn.scalar(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE 'UPDATE jobs%'")) == 1

    def b_claims_while_a_writes(job_state, atom_name):
        if atom_name != "one":
            return
        # Inside A's first write, after its rows, before its COMMIT.
        thread = threading.Thread(target=lambda: b_claimed.update(
            ok=claims(db, fence.job_id, "conductor-b", fence.board_job_id),
            rows=atom_rows(db, flow_uuid)))
        thread.start()
        b_claimed["thread"] = thread
        wait_until(waiting_on_a_lock, 10, "conductor B's claim to wait for A's write")

    a.storage.on_step_start = b_claims_while_a_writes
    with DeferredDurationListener(a), pytest.raises(FlowTakenOver):
        a.run()
    b_claimed["thread"].join(10)
    assert b_claimed["ok"]
    # B's load, after its claim was recorded, sees A's write: step one started.
    assert b_claimed["rows"] == [("one", tf_states.RUNNING), ("three", tf_states.PENDING),
                                 ("two", tf_states.PENDING)]
    assert ran == ["one"]
    assert atom_rows(db, flow_uuid) == b_claimed["rows"]


def test_a_resumed_jobs_store_is_written_under_the_fence_too(db, persistence):
    """A resumed job's store completed by the conductor as it loads the job
    (``save_store``, before the engine) is fenced like the engine's writes:
    once the job's record names another conductor, nothing is written."""
    flow_uuid = new_flow_detail(persistence)
    flow = reload(persistence, flow_uuid)
    new_store(flow, {"k": "v"})
    with contextlib.closing(persistence.get_connection()) as conn:
        conn.update_flow_details(flow)  # a store, as posted
    fence = job_record(db, flow_uuid, owner="conductor-a")
    assert claims(db, fence.job_id, "conductor-b", fence.board_job_id)
    with pytest.raises(FlowTakenOver) as raised:
        save_store(persistence, reload(persistence, flow_uuid), {"k": "changed"}, fence=fence)
    assert raised.value.flow_uuid == flow_uuid
    assert store_atom(reload(persistence, flow_uuid)).results == {"k": "v"}
    # The conductor whose claim the record names writes it.
    theirs = dataclasses.replace(fence, owner="conductor-b")
    assert save_store(persistence, reload(persistence, flow_uuid), {"k": "changed"}, fence=theirs) is True
    assert store_atom(reload(persistence, flow_uuid)).results == {"k": "changed"}
