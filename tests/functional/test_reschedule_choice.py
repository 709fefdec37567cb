"""What a failed create's reschedule decides, over a real database with
reported pools (no board: the next attempt is recorded, and posting is the
functional tests' business, tests/functional/test_reschedule.py)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa
from taskflow.types.failure import Failure

from shareflow import exceptions as exc
from shareflow.config import parse
from shareflow.db import jobs as jobs_db
from shareflow.db import pools as pools_db
from shareflow.db import shares as shares_db
from shareflow.db import share_types as types_db
from shareflow.db.models import Job, Pool
from shareflow.domain import states
from shareflow.engine import operations, reschedule
from shareflow.engine.posting import JobPoster
from shareflow.engine.runtime import Runtime

NOW = datetime(2026, 11, 30, 12, 0, 0)
POOLS = ("h1@b#p", "h2@b#p", "h3@b#p")


def runtime(db, tmp_path, max_attempts: int) -> Runtime:
    config = parse({"state_dir": str(tmp_path), "scheduler": {"max_attempts": max_attempts,
                                                              "default_weighers": ["first_fit"]}},
                   tmp_path / "c.toml")
    return Runtime(config=config, db=db, backends={}, locks=None, recorder=None, clock=lambda: NOW,
                   poster=JobPoster(db, None, None, clock=lambda: NOW))


@pytest.fixture
def placed(db):
    """A share ``creating`` on the first pool, and its create job."""
    with db.write() as s:
        for host in POOLS:
            service, _, rest = host.partition("@")
            backend, _, pool = rest.partition("#")
            pools_db.report(s, host=host, backend=backend, pool=pool, dhss=False, total_gb=100, free_gb=100,
                            now=NOW, capabilities={"driver_handles_share_servers": False,
                                                   "storage_protocol": "NFS"})
        stype = types_db.create(s, now=NOW, name="t", specs={"driver_handles_share_servers": "False"})
        share = shares_db.create(s, now=NOW, id=str(uuid.uuid4()), project_id="p", size=1, share_proto="NFS",
                                 status=states.CREATING, share_type_id=stype.id, is_public=False,
                                 backend="h1@b", host=POOLS[0])
        spec = operations.job_spec("create_share", backend="h1@b", resource_id=share.id, project_id="p",
                                   store={"share_id": share.id, "size": 1, "share_network_id": None})
        job = JobPoster(db, None, None, clock=lambda: NOW).record(s, spec)
        return share.id, job.id


def next_attempt(rt: Runtime, job_id: str) -> Job | None:
    with rt.db.write() as s:
        return reschedule._next_attempt(rt, s, jobs_db.get(s, job_id))


def host_of(db, share_id: str) -> str:
    with db.read() as s:
        return shares_db.get_any(s, share_id).host


def test_the_next_pool_skips_those_tried_until_max_attempts(db, tmp_path, placed):
    share_id, first = placed
    rt = runtime(db, tmp_path, max_attempts=3)
    second = next_attempt(rt, first)
    assert (second.backend, second.retry_of, second.operation) == ("h2@b", first, "create_share")
    assert json.loads(second.store)[reschedule.TRIED_POOLS] == [POOLS[0]]
    assert host_of(db, share_id) == POOLS[1]
    third = next_attempt(rt, second.id)
    assert third.backend == "h3@b" and json.loads(third.store)[reschedule.TRIED_POOLS] == list(POOLS[:2])
    # Three pools tried: max_attempts reached; nothing changes.
    assert next_attempt(rt, third.id) is None and host_of(db, share_id) == POOLS[2]


def test_max_attempts_counts_the_first(db, tmp_path, placed):
    share_id, first = placed
    rt = runtime(db, tmp_path, max_attempts=2)
    second = next_attempt(rt, first)
    assert second is not None
    assert next_attempt(rt, second.id) is None and host_of(db, share_id) == POOLS[1]
    assert next_attempt(runtime(db, tmp_path, max_attempts=1), first) is None  # 1: no reschedule


def test_no_other_pool_passing_the_filters_is_no_reschedule(db, tmp_path, placed):
    share_id, first = placed
    with db.write() as s:
        s.execute(sa.delete(Pool).where(Pool.host.in_(POOLS[1:])))
    assert next_attempt(runtime(db, tmp_path, max_attempts=3), first) is None
    assert host_of(db, share_id) == POOLS[0]


@pytest.mark.parametrize("change", ["status", "snapshot", "moved"])
def test_a_share_no_longer_this_attempts_is_left_alone(db, tmp_path, placed, change):
    share_id, first = placed
    values = {"status": {"status": states.ERROR}, "snapshot": {"snapshot_id": str(uuid.uuid4())},
              "moved": {"host": POOLS[2], "backend": "h3@b"}}[change]
    from shareflow.db.models import Share
    with db.write() as s:
        s.execute(sa.update(Share).where(Share.id == share_id).values(**values))
    assert next_attempt(runtime(db, tmp_path, max_attempts=3), first) is None
    with db.read() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Job)) == 1


def failure(error: BaseException) -> Failure:
    try:
        raise error
    except BaseException:
        return Failure()


@pytest.mark.parametrize("operation,step,error,expected", [
    ("create_share", "create_volume", exc.StorageError("disk"), True),
    ("create_share", "create_volume", exc.InjectedFault("create_volume"), True),
    ("create_share", "create_volume", exc.CapacityExceeded("full"), True),
    ("create_share", "create_volume", exc.JobCancelled("cancel"), False),
    ("create_share", "create_volume", ValueError("a bug"), False),
    ("create_share", "export", exc.ExportError("ganesha"), False),
    ("create_share", "create_volume_from_snapshot", exc.StorageError("disk"), False),
    ("extend_share", "create_volume", exc.StorageError("disk"), False),
])
def test_which_failures_are_the_pools(operation, step, error, expected):
    assert reschedule.reschedulable(operation, step, failure(error)) is expected


def test_a_next_attempt_given_up_on_before_its_post_ends_the_create(db, tmp_path, placed):
    """The next attempt was recorded, then trashed by the housekeeping of
    unposted jobs before the failed attempt's revert was resumed: the revert
    fails the share (None) instead of reporting a next attempt that never runs."""
    share_id, first = placed
    rt = runtime(db, tmp_path, max_attempts=3)
    second = next_attempt(rt, first)
    with db.write() as s:
        assert jobs_db.finish(s, second.id, states.JOB_TRASHED, now=NOW)
    assert reschedule.reschedule(rt, first) is None
