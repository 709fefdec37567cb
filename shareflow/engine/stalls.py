"""Is anyone working on a job? Asked of ZooKeeper, not guessed from a clock.

A job whose record says ``posted``, ``running`` or ``cancelling`` is *stalled*
when no live conductor holds its claim in ZooKeeper (its board node has no
lock, or the board no longer has the node at all, or there is no board for
its backend) and has not for longer than ``[conductor] stall_after``. The
claim is what decides: a job that is claimed is never stalled however long
it runs, and an unclaimed one only after ``stall_after`` since it was last
posted or claimed (ZooKeeper's creation time of its board node, and the
time our record noted its last claim), since a conductor normally claims a
posted job within its poll interval.

A claim's lock node is ephemeral: a conductor that dies loses it once its
ZooKeeper session expires, so a job whose conductors are all gone shows up
here after about ``session_timeout + stall_after``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from shareflow.db.models import Job
from shareflow.domain import states
from shareflow.engine.boards import Boards, every_job
from shareflow.engine.zk import start_client, stop_client, translate_errors
from shareflow.exceptions import ConfigError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimCheck:
    job_id: str
    #: The backend's board holds the job's node.
    on_board: bool
    #: The conductor holding the claim now; None when nobody does.
    owner: str | None
    #: Since when (as far as ZooKeeper and the record tell) nobody claimed it.
    unclaimed_since: datetime | None
    stalled: bool
    #: Why it is stalled, for operators ("" when it is not).
    reason: str = ""


def _zk_time(millis: int) -> datetime:
    return datetime.fromtimestamp(millis / 1000.0, UTC).replace(tzinfo=None)


@contextlib.contextmanager
def open_boards(zk_config, persistence, keys: list[str] = ()) -> Iterator[Boards]:
    """TaskFlow's boards (those of ``keys``, and any other asked for:
    ``Boards.get`` opens it), connected for looking at them, over
    a ZooKeeper client of their own (made for the question and closed after:
    a process that only posts, like an API worker, never needs ZooKeeper to
    read). Raises CoordinationError when ZooKeeper cannot be reached."""
    # A look is a request like a post: it waits no longer than one would
    # (an API worker asked for /v2/jobs while ZooKeeper is away answers with
    # the recorded states within that bound).
    bounded = replace(zk_config, connect_timeout=min(zk_config.connect_timeout, zk_config.request_timeout))
    with translate_errors("connecting to ZooKeeper to look at the jobboards"):
        client = start_client(bounded)
    boards = Boards(client, zk_config.chroot, list(keys), persistence)
    try:
        boards.connect()
        yield boards
    finally:
        boards.close()
        stop_client(client)


class StallChecker:
    """``board_view``: a callable returning a context manager that yields
    something with ``get(backend) -> JobBoard`` (:func:`open_boards`, or a
    conductor worker's own boards for its housekeeping)."""

    def __init__(self, board_view: Callable, stall_after: float, clock: Callable[[], datetime]):
        self._board_view = board_view
        self._stall_after = timedelta(seconds=stall_after)
        self._clock = clock

    def check(self, jobs: Iterable[Job]) -> dict[str, ClaimCheck]:
        """One :class:`ClaimCheck` per active job given (others are skipped).
        Raises CoordinationError when ZooKeeper cannot be asked."""
        by_backend: dict[str, list[Job]] = {}
        for job in jobs:
            if job.state in states.JOB_ACTIVE:
                by_backend.setdefault(job.backend, []).append(job)
        if not by_backend:
            return {}
        with self._board_view() as boards:
            return self._check(boards, by_backend)

    def _check(self, boards, by_backend: dict[str, list[Job]]) -> dict[str, ClaimCheck]:
        now = self._clock()
        found: dict[str, ClaimCheck] = {}
        for backend, group in by_backend.items():
            try:
                board = boards.get(backend)
            except ConfigError:
                for job in group:
                    found[job.id] = self._verdict(job, now, None, None, on_board=False,
                                                  why=f"no jobboard for backend {backend}")
                continue
            with translate_errors(f"looking for the claims of jobs on {backend}"):
                board_jobs = {bj.uuid: bj for bj in every_job(board)}
                client = board._client  # TaskFlow's board exposes no stat of a node
                for job in group:
                    bj = board_jobs.get(job.board_job_id or "")
                    if bj is None:
                        found[job.id] = self._verdict(job, now, None, None, on_board=False,
                                                      why="its board no longer holds it")
                        continue
                    owner = board.find_owner(bj)
                    stat = client.exists(bj.path)
                    posted = _zk_time(stat.ctime) if stat is not None else None
                    found[job.id] = self._verdict(job, now, owner, posted, on_board=stat is not None,
                                                  why="no live conductor has claimed it")
        return found

    def _verdict(self, job: Job, now: datetime, owner: str | None, posted: datetime | None, *,
                 on_board: bool, why: str) -> ClaimCheck:
        if owner:
            return ClaimCheck(job.id, on_board, owner, None, False)
        times = [t for t in (posted, job.started_at) if t is not None]
        if not on_board:
            # Off the board: since the record last changed (posted, claimed, steered).
            times += [t for t in (job.updated_at, job.created_at) if t is not None]
        since = max(times) if times else job.created_at
        stalled = now - since > self._stall_after
        reason = f"{why} since {since.isoformat(timespec='seconds')}" if stalled else ""
        return ClaimCheck(job.id, on_board, None, since, stalled, reason)
