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
from tests.functional.test_step_start_outage import create_through_a_step_start_outage


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


def test_job_sent_back_by_a_database_outage_at_a_steps_start_is_resumed_by_the_same_conductor(stack):
    """The database fails every try of a later step's start (its engine
    stops writing, ``shareflow.engine.storage``): the engine's flow detail
    in memory then says more than was written - the flow FAILURE (TaskFlow's
    end, not written), the step before SUCCESS (its write failed) - and the
    same conductor, claiming the job again, resumes it from the database."""
    assert len(stack.worker_pids()) == 1
    create_through_a_step_start_outage(stack)
