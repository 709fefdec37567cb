"""Run one step over many items on a bounded pool of threads, with progress.

For start-up work proportional to the number of shares (mounting every
volume, restoring every share server): each item's step is independent and
mostly waits on the kernel or a child process, so a few threads cut the wall
time without letting thousands of steps run at once. One item failing does
not stop the others; the caller gets every failure back. A progress line is
logged at most every ``interval`` seconds (and once at the end), so an
operator watching a long start sees it move.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from shareflow.exceptions import ShareflowError

#: Seconds between progress lines.
PROGRESS_INTERVAL = 1.0


@dataclass
class BatchResult:
    #: Items whose step succeeded, in the order they were given.
    done: list = field(default_factory=list)
    #: Item -> the error its step raised.
    failed: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return len(self.done) + len(self.failed)


def run_batch(
    items: Iterable[Hashable],
    step: Callable[[Any], object],
    *,
    workers: int,
    label: str,
    what: str,
    log: logging.Logger,
    interval: float = PROGRESS_INTERVAL,
    clock: Callable[[], float] = time.monotonic,
) -> BatchResult:
    """``step(item)`` for every item, at most ``workers`` at a time. A step
    that raises :class:`ShareflowError` is recorded as failed (and logged);
    any other exception is a bug and propagates once the running steps end.

    Progress lines read ``"<label>: 2500/5000 <what>, 1.2 s"``."""
    items = list(items)
    if workers < 1:
        raise ValueError("workers must be at least 1")
    start = clock()
    result = BatchResult()
    finished: dict[int, bool] = {}
    last_line = start

    def note(index: int, item, error: ShareflowError | None) -> None:
        nonlocal last_line
        if error is None:
            finished[index] = True
        else:
            finished[index] = False
            result.failed[item] = error
            log.error("%s: %s failed: %s", label, item, error.message)
        now = clock()
        if now - last_line >= interval and len(finished) < len(items):
            last_line = now
            log.info("%s: %d/%d %s, %.1f s", label, len(finished), len(items), what, now - start)

    if workers == 1 or len(items) <= 1:
        for i, item in enumerate(items):
            try:
                step(item)
            except ShareflowError as e:
                note(i, item, e)
            else:
                note(i, item, None)
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(items)), thread_name_prefix=label) as pool:
            futures = {pool.submit(step, item): (i, item) for i, item in enumerate(items)}
            try:
                for future in as_completed(futures):
                    i, item = futures[future]
                    try:
                        future.result()
                    except ShareflowError as e:
                        note(i, item, e)
                    else:
                        note(i, item, None)
            except BaseException:
                for future in futures:
                    future.cancel()  # the steps not started yet
                raise
    result.done = [item for i, item in enumerate(items) if finished.get(i)]
    result.seconds = clock() - start
    log.info("%s: %d/%d %s, %.1f s%s", label, len(result.done), len(items), what, result.seconds,
             f" ({len(result.failed)} failed)" if result.failed else "")
    return result
