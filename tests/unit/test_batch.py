"""run_batch: a bounded number of steps at once, every item tried, failures
returned, progress lines on an injected clock (no timing)."""

from __future__ import annotations

import itertools
import logging
import threading

import pytest

from shareflow.exceptions import StorageError
from shareflow.system.batch import run_batch

LOG = logging.getLogger("test.batch")


def test_runs_exactly_workers_steps_at_once():
    workers, running, peak = 3, [0], [0]
    lock = threading.Lock()
    # Each step waits until `workers` steps are inside at once: a serial run
    # (or one with fewer threads) breaks the barrier.
    barrier = threading.Barrier(workers, timeout=10)

    def step(_item):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        barrier.wait()
        with lock:
            running[0] -= 1

    result = run_batch(range(12), step, workers=workers, label="t", what="done", log=LOG)
    assert peak[0] == workers
    assert result.done == list(range(12)) and not result.failed


def test_a_failing_item_does_not_stop_the_others():
    seen = []

    def step(item):
        seen.append(item)
        if item % 4 == 1:
            raise StorageError(f"item {item} broke")

    result = run_batch(range(10), step, workers=2, label="t", what="done", log=LOG)
    assert sorted(seen) == list(range(10))
    assert result.done == [0, 2, 3, 4, 6, 7, 8]
    assert sorted(result.failed) == [1, 5, 9]
    assert result.failed[5].message == "item 5 broke"
    assert result.total == 10


def test_a_bug_propagates():
    def step(item):
        if item == 3:
            raise KeyError("bug")

    with pytest.raises(KeyError):
        run_batch(range(6), step, workers=2, label="t", what="done", log=LOG)


def test_progress_lines_at_most_every_interval(caplog):
    ticks = itertools.count()
    clock = lambda: next(ticks) * 0.4  # noqa: E731 - each call moves 0.4 "s"
    caplog.set_level(logging.INFO, logger=LOG.name)
    result = run_batch(range(10), lambda _i: None, workers=1, label="ensure b1", what="volumes mounted",
                       log=LOG, interval=1.0, clock=clock)
    lines = [r.getMessage() for r in caplog.records]
    # Start at 0.0; item k is noted at 0.4*(k+1): lines at 1.2 s (3 done),
    # 2.4 s (6 done), 3.6 s (9 done), then the final one.
    assert lines == [
        "ensure b1: 3/10 volumes mounted, 1.2 s",
        "ensure b1: 6/10 volumes mounted, 2.4 s",
        "ensure b1: 9/10 volumes mounted, 3.6 s",
        "ensure b1: 10/10 volumes mounted, 4.4 s",
    ]
    assert result.seconds == pytest.approx(4.4)


def test_failures_are_counted_in_the_last_line(caplog):
    caplog.set_level(logging.INFO, logger=LOG.name)

    def step(item):
        if item == 0:
            raise StorageError("no")

    run_batch(range(3), step, workers=1, label="t", what="done", log=LOG, clock=lambda: 0.0)
    assert caplog.records[-1].getMessage() == "t: 2/3 done, 0.0 s (1 failed)"
    assert any(r.levelno == logging.ERROR and "0 failed: no" in r.getMessage() for r in caplog.records)


def test_no_items():
    result = run_batch([], lambda _i: None, workers=4, label="t", what="done", log=LOG)
    assert result.done == [] and result.failed == {}
