"""A job that goes back to the board after its engine was loaded is loaded
again from what the database holds, not from the logbook its board job kept
in memory: TaskFlow's job caches the logbook it read (``Job.book``), the
ZooKeeper board keeps the same job object across claims, and loading an
engine adds to its flow detail in memory what only the engine's first write
persists (the atom details ``prepare`` ensures). One worker, so the job is
claimed again by the conductor that kept it.
"""

from __future__ import annotations

import pytest

from shareflow.domain import states
from shareflow.engine import checkpoints
from tests.fixtures.stack import ServiceStack, wait_until
from tests.functional.test_conductor_checkpoints import assert_exported_once, jobs_of, marker


@pytest.fixture(scope="module")
def one_worker(zookeeper_server, btrfs_pool, tmp_path_factory):
    with ServiceStack(tmp_path_factory.mktemp("one-worker"), zk_hosts=zookeeper_server.hosts,
                      btrfs_pool=btrfs_pool, workers=1) as stack:
        yield stack


@pytest.fixture
def stack(one_worker):
    one_worker.clear_faults()
    try:
        yield one_worker
    finally:
        one_worker.clear_faults()


def test_job_loaded_then_sent_back_is_loaded_afresh_by_the_same_conductor(stack):
    """An outage once the engine is loaded and prepared (its atom details
    ensured in memory, none written) sends the job back to the board; the
    same conductor claims it again and runs it through once the outage
    passes. Before the fix the second load took those atom details for
    written and the first step's write failed (NotFound): share ``error``."""
    point = checkpoints.PREPARED
    assert len(stack.worker_pids()) == 1
    m = stack.manila(stack.token("tenant-book"))
    path = marker(stack, point)
    path.unlink(missing_ok=True)
    stack.set_faults({checkpoints.PREFIX + point: "unavailable"})
    share = m.shares.create("NFS", 1, name="book")
    wait_until(path.exists, 30, f"an attempt to load the job past {point}")
    path.unlink()
    wait_until(path.exists, 30, f"another attempt to load the job past {point}")
    assert stack.share_row(share.id).status == "creating"
    (job,) = jobs_of(stack, share.id)
    assert job.finished_at is None
    stack.clear_faults()
    path.unlink(missing_ok=True)

    share = stack.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
    assert share.status == "available", stack.log("pool")[-6000:]
    assert stack.finished_job(share.id, "create_share").state == states.JOB_SUCCEEDED
    assert_exported_once(stack, share.id)
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
