"""Quota checks are serialised per project on PostgreSQL (READ COMMITTED).

Threads race through :meth:`ShareService.create` (the real service: PostgreSQL,
jobs posted to a real ZooKeeper) to take the last units of a project's share
quota; exactly as many win as the quota allows, the rest get 413, and the
database holds exactly the allowed number of live shares. Without the
per-project lock two transactions can both count the same usage and both insert.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid

import pytest
import sqlalchemy as sa

from shareflow.config import DatabaseConfig
from shareflow.db.engine import Database
from shareflow.db.migrate import upgrade
from shareflow.db import pools as pools_db
from shareflow.db import quotas as quotas_db
from shareflow.db.models import Job, Share
from shareflow.exceptions import OverLimit
from shareflow.services.context import Caller
from shareflow.wiring import Services
from tests.api.conftest import DEFAULT_TYPE_SPECS, POOL_HOST, make_config, report_pool
from tests.fixtures.coordination import chroot

THREADS = 8
ROUNDS = 3
ADMIN = Caller(project_id="admin", user_id="admin", is_admin=True)


@pytest.fixture
def pg_services(zookeeper_server, postgres_db_url, tmp_path):
    with chroot(zookeeper_server.hosts) as zk_root:
        config = make_config(tmp_path, zookeeper_server.hosts, zk_root)
        config = dataclasses.replace(config, database=DatabaseConfig(url=postgres_db_url))
        db = Database(config.database.url)
        try:
            upgrade(db)
        finally:
            db.dispose()
        services = Services(config)
        try:
            assert services.db.engine.dialect.name == "postgresql"
            report_pool(services.db)
            services.share_types.create(ADMIN, name=config.default_share_type, extra_specs=DEFAULT_TYPE_SPECS)
            yield services
            # Whatever the race did, the usage counters are what the live rows say.
            with services.db.read() as s:
                assert quotas_db.drifted(s) == {}
                assert pools_db.drifted(s) == {}
        finally:
            services.close()


def race(services: Services, caller: Caller, n: int, size: int = 1) -> list[str]:
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    lock = threading.Lock()

    def create() -> None:
        barrier.wait()
        try:
            services.shares.create(caller, size=size, share_proto="NFS")
            result = "created"
        except OverLimit:
            result = "over"
        except Exception as e:  # anything else is a failure of the test
            result = f"error: {e!r}"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=create) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return outcomes


def live_shares(services: Services, project_id: str) -> int:
    with services.db.read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Share).where(
            Share.project_id == project_id, Share.deleted_at.is_(None)))


@pytest.mark.parametrize("allowed", [1, 3])
def test_threads_racing_for_the_last_shares_exactly_the_allowed_number_win(pg_services, allowed):
    services = pg_services
    for _ in range(ROUNDS):
        project = f"race-{uuid.uuid4().hex[:8]}"
        caller = Caller(project_id=project, user_id="racer")
        services.quotas.update(ADMIN, project, {"shares": allowed + 1})
        services.shares.create(caller, size=1, share_proto="NFS")  # one already there
        outcomes = race(services, caller, THREADS)
        assert sorted(outcomes) == sorted(["created"] * allowed + ["over"] * (THREADS - allowed)), outcomes
        assert live_shares(services, project) == allowed + 1
        with services.db.read() as s:
            jobs = s.scalar(sa.select(sa.func.count()).select_from(Job).where(Job.project_id == project))
        assert jobs == allowed + 1


def test_threads_racing_for_the_last_gigabytes(pg_services):
    services = pg_services
    project = f"race-{uuid.uuid4().hex[:8]}"
    caller = Caller(project_id=project, user_id="racer")
    services.quotas.update(ADMIN, project, {"gigabytes": 10})
    outcomes = race(services, caller, THREADS, size=3)
    assert sorted(outcomes) == sorted(["created"] * 3 + ["over"] * (THREADS - 3)), outcomes
    assert services.quotas.show(ADMIN, project, detail=True)["gigabytes"]["in_use"] == 9


def test_a_quota_update_waits_for_creates_in_flight(pg_services):
    """Lowering a quota takes the same lock: it sees every committed create, so
    it is never accepted below the usage the creates reached."""
    services = pg_services
    project = f"race-{uuid.uuid4().hex[:8]}"
    caller = Caller(project_id=project, user_id="racer")
    for _ in range(3):
        services.shares.create(caller, size=1, share_proto="NFS")
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def create():
        barrier.wait()
        try:
            services.shares.create(caller, size=1, share_proto="NFS")
            results["create"] = "created"
        except OverLimit:
            results["create"] = "over"

    def lower():
        barrier.wait()
        try:
            services.quotas.update(ADMIN, project, {"shares": 3})
            results["update"] = "set"
        except Exception as e:
            results["update"] = type(e).__name__

    threads = [threading.Thread(target=create), threading.Thread(target=lower)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # Either the update went first (then the create is over quota) or the
    # create did (then the update is refused as below usage): never both.
    assert results in ({"create": "over", "update": "set"}, {"create": "created", "update": "InvalidInput"})
    expected = (3, 3) if results["update"] == "set" else (4, 50)
    assert (live_shares(services, project), services.quotas.show(ADMIN, project)["shares"]) == expected


def test_an_extend_and_a_snapshot_of_one_share_at_once_never_deadlock(pg_services):
    """Both take the quota lock before they lock the share's row (the order
    services.quotas asks for); in the other order each would wait for the
    other and PostgreSQL would fail one of them (a 503)."""
    from shareflow.exceptions import Conflict, InvalidInput, ServiceUnavailable

    services = pg_services
    project = f"race-{uuid.uuid4().hex[:8]}"
    caller = Caller(project_id=project, user_id="racer")
    outcomes: list[tuple[str, str]] = []
    for _ in range(15):
        share = services.shares.create(caller, size=1, share_proto="NFS")
        with services.db.write() as s:
            # Placed and made, as a conductor's scheduler and create job would have.
            s.execute(sa.update(Share).where(Share.id == share.id).values(
                status="available", host=POOL_HOST, backend=POOL_HOST.partition("#")[0]))
        barrier = threading.Barrier(2)

        def run(name, call, barrier=barrier):
            barrier.wait()
            try:
                call()
                outcomes.append((name, "ok"))
            except (InvalidInput, Conflict):
                outcomes.append((name, "refused"))
            except ServiceUnavailable as e:
                outcomes.append((name, f"unavailable: {e}"))

        threads = [
            threading.Thread(target=run, args=("extend", lambda sid=share.id: services.resize.extend(caller, sid, 2))),
            threading.Thread(target=run, args=("snapshot", lambda sid=share.id: services.snapshots.create(
                caller, share_id=sid))),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert not [o for o in outcomes if o[1].startswith("unavailable")], outcomes
    assert len(outcomes) == 30 and ("extend", "ok") in outcomes
