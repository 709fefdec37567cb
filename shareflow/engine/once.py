"""At most one board job per database job, whatever dies between a post and its record.

Posting a recorded job is two writes in two stores: the job node on the
board (ZooKeeper), then the board job's uuid on the record (``jobs.
board_job_id``, the database). A poster that dies between them leaves on the
board a job its record does not name, and whoever takes the posting up again
(a resumed scheduling step, a resumed reschedule, an operator's resume) would
post it a second time: two board jobs for one logbook and flow detail.

So each post of a recorded job creates, in the same ZooKeeper transaction as
its job node (and a hand-off's lock), a *marker* named after the database job,
``<board key>/.posted/<job id>`` (beside TaskFlow's ``.trash`` and
``.entities``, out of the board's listing), holding the board job's uuid and
path. A second post of the same job is refused on the marker and answers the
board job that is there; the caller records that one. The marker goes in the
transaction that consumes or trashes its job
(:class:`shareflow.engine.boards.ConductorJobBoard`). One left behind by
anything else (a job node deleted by hand, or consumed by TaskFlow's own
board class) names a job node that is gone: the next post of that job removes
it and posts, which is right, since the job is on no board any more.
"""

from __future__ import annotations

import json
import time

from kazoo import exceptions as k_exc
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol import paths as k_paths

from shareflow.exceptions import CoordinationError

UNAVAILABLE = "the coordination service is unavailable, try again later"

#: Beside the board's node, as TaskFlow keeps its trash and entities.
POSTED_FOLDER = ".posted"
#: The posting's details key naming its marker (the database job's id), so
#: that whoever consumes or trashes the job finds the marker to remove.
DETAILS_KEY = "posted_once"


def marker_root(board_path: str) -> str:
    """Where the markers of the board at ``board_path`` are."""
    return k_paths.join(board_path.rstrip("/").rsplit("/", 1)[0], POSTED_FOLDER)


def marker_path(board_path: str, key: str) -> str:
    """The marker of database job ``key`` on the board at ``board_path``."""
    if not key or "/" in key:
        raise ValueError(f"{key!r} cannot name a posted job's marker")
    return k_paths.join(marker_root(board_path), key)


def marker_value(job_uuid: str, job_path: str) -> bytes:
    return json.dumps({"uuid": job_uuid, "path": job_path}).encode()


def key_of(details) -> str | None:
    """The database job a posting's details say it was posted once for."""
    key = (details or {}).get(DETAILS_KEY)
    return key if isinstance(key, str) and key else None


def answer(result, what: str, deadline: float):
    """The answer of kazoo's asynchronous ``result`` by ``deadline``
    (``time.monotonic``); CoordinationError when there is none by then, or
    the connection went (the request's outcome is then unknown)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise CoordinationError(f"{what}: no time left to reach ZooKeeper", user_message=UNAVAILABLE)
    try:
        return result.get(timeout=remaining)
    except KazooTimeoutError as e:
        raise CoordinationError(f"{what}: ZooKeeper did not answer in time", user_message=UNAVAILABLE) from e
    except (k_exc.NoNodeError, k_exc.NodeExistsError, k_exc.BadVersionError):
        raise  # answers, not failures: the caller decides
    except KazooException as e:
        raise CoordinationError(f"{what}: ZooKeeper failed: {e!r}", user_message=UNAVAILABLE) from e


def refused(results) -> bool:
    """Whether a transaction's results say it was refused (rolled back whole)."""
    return any(isinstance(r, Exception) for r in results)


def failed_on(results, index: int, error: type) -> bool:
    """Whether operation ``index`` of a refused transaction is the one that
    failed, with ``error`` (the others answer RolledBack or RuntimeInconsistency)."""
    return index < len(results) and isinstance(results[index], error)


def existing(client, marker: str, deadline: float) -> str | None:
    """The uuid of the board job ``marker`` names, if that job is still on its
    board. Otherwise None, and the marker is removed (a stale one: its job
    was consumed or removed meanwhile, so posting again is right)."""
    try:
        data, stat = answer(client.get_async(marker), f"reading {marker}", deadline)
    except k_exc.NoNodeError:
        return None  # consumed meanwhile, with its job
    try:
        posted = json.loads(data)
        job_uuid, job_path = posted["uuid"], posted["path"]
    except (ValueError, TypeError, KeyError):
        job_uuid = job_path = None
    if job_path and answer(client.exists_async(job_path), f"looking for {job_path}", deadline) is not None:
        return job_uuid
    try:
        answer(client.delete_async(marker, version=stat.version), f"removing {marker}", deadline)
    except (k_exc.NoNodeError, k_exc.BadVersionError):
        pass  # removed (or replaced) by another poster meanwhile: it decides
    return None


def on_board(client, marker: str, deadline: float) -> str | None:
    """The uuid of the board job ``marker`` names, if both are there; None
    otherwise. Reads only (a stale marker is the next post's to remove)."""
    try:
        data, _stat = answer(client.get_async(marker), f"reading {marker}", deadline)
    except k_exc.NoNodeError:
        return None
    try:
        posted = json.loads(data)
        job_uuid, job_path = posted["uuid"], posted["path"]
    except (ValueError, TypeError, KeyError):
        return None
    return job_uuid if answer(client.exists_async(job_path), f"looking for {job_path}", deadline) else None
