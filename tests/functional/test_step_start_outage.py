"""A database outage at a step's start is not a failure of the job.

The write that records a share's ``export`` step RUNNING (with the step
before's SUCCESS) meets the database unreachable - a real SQLAlchemy
``OperationalError`` at checkpoint ``in_start_write:export`` - at every
attempt TaskFlow's storage makes (its retries exhausted once), and the
database is back right after. Before the fix TaskFlow's engine then wrote
the flow's FAILURE, which the database took: the job was recorded
``revert_failed`` and the share ``error``, for a mere outage, and the job's
next claim dropped it as finished. Now the engine stops writing at the
failed write (``shareflow.engine.storage``, ``FlowUnwritable``): nothing of
the job or its share is recorded, the job goes back to the board, and the
next claim resumes the flow from what was written - ``export``, which never
started, runs once; ``create_volume``, whose SUCCESS went unwritten with the
failed write, runs again (steps are idempotent).
"""

from __future__ import annotations

import json
import uuid

import sqlalchemy as sa

from shareflow.db.models import Message
from shareflow.domain import states
from shareflow.engine import checkpoints
from tests.fixtures.stack import wait_until
from tests.functional.test_conductor_checkpoints import (
    assert_exported_once,
    assert_gone,
    board_job_ids,
    jobs_of,
    marker,
)

POINT = checkpoints.in_start_write("export")


def test_an_outage_at_a_steps_start_sends_the_job_back_to_be_resumed(any_stack):
    # On both databases (``any_stack``): PostgreSQL writes a step's start in
    # one statement of its own (the fence's read in it), SQLite in a
    # transaction; both are failed.
    create_through_a_step_start_outage(any_stack)


def create_through_a_step_start_outage(stack) -> None:
    """A share created while the database fails every try of its ``export``
    step's start, then is back: the share ends available, its job
    succeeded, ``export`` ran once, nothing undone nor left behind."""
    path = marker(stack, POINT)
    path.unlink(missing_ok=True)
    calls = stack.base / f"calls-{uuid.uuid4().hex[:6]}.log"
    log_start = len(stack.log("pool"))
    stack.set_faults({checkpoints.PREFIX + POINT: checkpoints.DATABASE_OUTAGE, "_calls": str(calls)})
    m = stack.manila(stack.token(f"tenant-{uuid.uuid4().hex[:6]}"))

    share = m.shares.create("NFS", 1, name="step-start-outage")
    share = stack.wait_for_share(m, share.id, {"available", "error"}, timeout=120)
    assert share.status == "available", stack.log("pool")[log_start:][-6000:]
    # Every attempt of the first run's write failed; the resumed run's passed.
    assert json.loads(path.read_text())["hits"] == checkpoints.OUTAGE_HITS + 1
    (create,) = jobs_of(stack, share.id)
    create = stack.finished_job(share.id, "create_share")
    assert create.state == states.JOB_SUCCEEDED and create.failure is None
    with stack.db.read() as s:
        assert not s.scalars(sa.select(Message).where(Message.resource_id == share.id)).all()

    called = calls.read_text().split()
    assert called.count("add_export") == 1, called
    assert called.count("create_volume") == 2, called  # its SUCCESS went with the failed write
    assert "remove_export" not in called and "delete_volume" not in called, called  # nothing undone
    assert_exported_once(stack, share.id)

    log = stack.log("pool")[log_start:]
    stopped = (f"board job {create.board_job_id} (job {create.id}): its engine stopped on a database outage "
               "(a write failed after its retries), nothing more written; back to the board, to be resumed")
    assert log.count(stopped) == 1, log[-6000:]
    # TaskFlow's own account of it (the engine "failed", twice, with tracebacks) is not logged.
    assert "Engine execution has failed" not in log and "Job execution failed" not in log, log[-6000:]

    # Nothing left behind: the job off the board, the share deleted whole.
    wait_until(lambda: create.board_job_id not in board_job_ids(stack), 30, "the job to leave the board")
    stack.clear_faults()
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
    assert_gone(stack, share.id)
