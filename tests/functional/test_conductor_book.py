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

from shareflow.engine import checkpoints
from tests.fixtures.stack import ServiceStack
from tests.functional.test_conductor_checkpoints import create_through_an_outage


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
    assert len(stack.worker_pids()) == 1
    create_through_an_outage(stack, checkpoints.PREPARED, "book")
