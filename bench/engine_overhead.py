#!/usr/bin/env python3
"""The conductor's bookkeeping per job, without the steps' own work.

Run from the repository root::

    .venv/bin/python bench/engine_overhead.py [--jobs 200] [--profile FILE]

A job's engine is built and run as the conductor does it (the flow detail
read back, the job's store added for the first write to insert, the flow
lent by ``BuiltFlows`` - built and compiled once, as a conductor keeps it -
``ShareflowEngine`` prepared over shareflow's persistence, each write
fenced on the job's record - whose read is the cancel check of a step's
start -, the step durations and the job's record), on a flow shaped like
create_share's - seven linear steps passing small results along - whose
steps do nothing. What is left is the bookkeeping between and around the
steps, which ``bench/create_share.py`` reports as "TaskFlow bookkeeping
between the steps" (there mixed with the machine's load and the other
processes). This prints, per job: the process CPU time (robust on a shared
machine), the wall time, and the transactions committed.

The database is a fresh SQLite file in a temporary directory (WAL, as the
service runs it), removed at the end; nothing else is started. ``--profile``
writes a cProfile of the measured jobs. The first 10 jobs warm up and are
not counted. No ZooKeeper: the claim watch (one read, answered while the
job loads) is not part of it.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import sqlalchemy as sa  # noqa: E402
from oslo_utils import uuidutils  # noqa: E402
from taskflow import engines, task  # noqa: E402
from taskflow.patterns import linear_flow  # noqa: E402
from taskflow.persistence import models as tf_models  # noqa: E402

from shareflow.db import jobs as jobs_db  # noqa: E402
from shareflow.db import migrate  # noqa: E402
from shareflow.db.engine import Database  # noqa: E402
from shareflow.engine.listeners import DeferredDurationListener, JobRecordListener  # noqa: E402
from shareflow.engine.loading import BuiltFlows, new_store, save_store  # noqa: E402
from shareflow.engine.outcomes import OutcomeRecorder  # noqa: E402
from shareflow.engine.persistence import JobFence, make_persistence  # noqa: E402
from shareflow.engine.storage import ShareflowEngine  # noqa: E402

WARMUP = 10
JOB_ID = "0" * 36
#: The conductor every job's engine runs as (its writes are fenced on it).
FENCE = JobFence(JOB_ID, "bench-conductor", "b" * 36)


def record_job(db) -> None:
    """The one job record every measured job's engine is fenced on, claimed
    as a conductor claims it."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with db.write() as s:
        jobs_db.create(s, now=now, id=JOB_ID, backend="h@b", operation="create_share", resource_type="share",
                       resource_id="r" * 36, logbook_id="l" * 36, flow_detail_id="f" * 36)
        jobs_db.set_running(s, JOB_ID, FENCE.owner, now=now, board_job_id=FENCE.board_job_id)


class NoOp(task.Task):
    def execute(self, **_kwargs):
        return {"path": "/pool/shares/x", "size": 1} if self.provides else None


def create_share_shaped():
    """Seven steps, named and chained as create_share's (module level: the
    flow detail names its factory, as a posted job's does); ``begin`` starts
    unrecorded, as create_share's does (``shareflow.engine.storage``)."""
    def step(name, requires, provides=None, unrecorded=False):
        atom = NoOp(name=name, requires=requires, provides=provides)
        atom.unrecorded_start = unrecorded
        return atom

    return linear_flow.Flow("create_share").add(
        step("begin", ("resource_id",), unrecorded=True),
        step("allocate_network", ("resource_id",), "allocation"),
        step("provide_share_server", ("allocation",), "server"),
        step("create_volume", ("server",), "volume"),
        step("export", ("volume",), "export_locations"),
        step("apply_access", ("resource_id",)),
        step("finish", ("resource_id", "export_locations")),
    )


def post(persistence) -> str:
    """A flow detail as the API saves it before posting a job."""
    book = tf_models.LogBook("create_share", uuid=uuidutils.generate_uuid())
    fd = tf_models.FlowDetail("create_share", uuid=uuidutils.generate_uuid())
    book.add(fd)
    engines.save_factory_details(fd, create_share_shaped, [], {})
    with contextlib.closing(persistence.get_connection()) as conn:
        conn.save_logbook(book)
    return book.uuid


def run_job(persistence, recorder, flows: BuiltFlows, book_uuid: str, db) -> None:
    """What ShareflowConductor does between the claim and the job's end."""
    with contextlib.closing(persistence.get_connection()) as conn:
        flow_detail = next(iter(conn.get_logbook(book_uuid)))
    store = {"resource_id": "r" * 36, "job_id": JOB_ID, "backend": "h@b#p"}
    fresh_store = new_store(flow_detail, store)
    if fresh_store is None:
        save_store(persistence, flow_detail, store, fence=FENCE)
    with flows.lend(flow_detail) as (flow, compiler):
        engine = ShareflowEngine(flow, flow_detail, persistence, {"defer_reverts": True}, compiler=compiler,
                                 fence=FENCE)
        if fresh_store is not None:
            engine.storage.insert_with_first_write(fresh_store)
        run_engine(engine, recorder, db)


def run_engine(engine, recorder, db) -> None:
    engine.compile()
    engine.storage.on_step_start = lambda job_state, atom_name: job_state == "cancelling"
    # A step that starts unrecorded asks on its own, as the conductor's does.
    for atom in engine.compilation.execution_graph.nodes:
        if atom.name in getattr(engine.storage, "unrecorded_starts", ()):
            atom.pre_execute = lambda: _state_now(db)
    engine.prepare()
    engine.validate()
    record = JobRecordListener(engine, JOB_ID, recorder)
    if hasattr(record, "record_success_in"):
        engine.storage.on_flow_success = record.record_success_in
    with DeferredDurationListener(engine), record:
        engine.run()


def _state_now(db) -> None:
    with db.snapshot() as conn:
        jobs_db.state_of(conn, JOB_ID)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=200, help="jobs measured (default 200)")
    p.add_argument("--profile", type=Path, default=None, help="write a cProfile of the measured jobs here")
    args = p.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="shareflow-engine-overhead-"))
    try:
        db = Database(f"sqlite:///{tmp / 'db.sqlite'}")
        migrate.upgrade(db)
        record_job(db)
        persistence = make_persistence(db)
        recorder = OutcomeRecorder(db, lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        books = [post(persistence) for _ in range(WARMUP + args.jobs)]
        flows = BuiltFlows()
        for book in books[:WARMUP]:
            run_job(persistence, recorder, flows, book, db)

        commits = [0]
        sa.event.listen(db.engine, "commit", lambda _conn: commits.__setitem__(0, commits[0] + 1))
        profiler = cProfile.Profile() if args.profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        for book in books[WARMUP:]:
            run_job(persistence, recorder, flows, book, db)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        n = args.jobs
        print(f"per job ({n} jobs of 7 no-op steps, SQLite): CPU {1000 * cpu / n:.2f} ms, "
              f"wall {1000 * wall / n:.2f} ms, {commits[0] / n:.1f} transactions committed"
              + (" (profiled)" if profiler else ""))
        db.dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
