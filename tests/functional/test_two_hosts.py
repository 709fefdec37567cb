"""Two storage hosts on one machine, sharing one database (SQLite, and
PostgreSQL) and one ZooKeeper chroot: the stack (host ``hosta``, with the
API) and a ``StorageHost`` (``hostb``), each with its own conductors, btrfs
pool and NFS-Ganesha in its own network namespace, and a backend of the SAME
name ``b1`` on both.

Shown through python-manilaclient and ``shareflow jobs``: shares are placed on
both hosts and really live on the pool their ``host`` names; a job of one
host's backend is never claimed by the other host's conductors; a host whose
conductors are all dead gets no new shares once its pool is stale, while its
jobs wait (stalled) for it, and it is used again once back.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from manilaclient import exceptions as mexc

from shareflow.db.models import Share
from shareflow.domain import states
from shareflow.wiring import utcnow
from tests.fixtures.hosts import StorageHost, conductors_down, pool_updated_at, volumes_of
from tests.fixtures.stack import BACKEND, ServiceStack, wait_until
from tests.functional.lifecycle_helpers import read_bytes
from tests.functional.test_operations import shareflow_cli

HOST_A, HOST_B = "hosta", "hostb"
#: Conductors report every 1.5 s here (half the stack's orphan timeout): a
#: pool is stale after four missed reports, so the tests wait seconds, not 90.
POOL_STALE_AFTER = 6.0
#: A posted job nobody claimed for this long is shown stalled.
STALL_AFTER = 1.0
#: Shares created, at most, until the scheduler has used a wanted pool (it
#: spreads by free space: with equal pools, the other one within two).
MAX_TRIES = 6
GiB = 1 << 30


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hosts(request, zookeeper_server, btrfs_pool, tmp_path_factory):
    """Host A (the stack) and host B, on one SQLite file or one database of
    the session's PostgreSQL (what several real hosts would share)."""
    base = tmp_path_factory.mktemp("two-hosts")
    db_url = None
    if request.param == "postgresql":
        db_url = request.getfixturevalue("postgres_cluster").create_database(f"hosts_{uuid.uuid4().hex[:10]}")
    settings = {"conductor": {"stall_after": STALL_AFTER}, "scheduler": {"pool_stale_after": POOL_STALE_AFTER}}
    with ServiceStack(base / HOST_A, zk_hosts=zookeeper_server.hosts, btrfs_pool=btrfs_pool, host=HOST_A,
                      db_url=db_url, **settings) as a:
        with StorageHost(a, base / HOST_B, host=HOST_B, **settings) as b:
            yield a, b


@pytest.fixture(autouse=True)
def no_shares_left(hosts):
    """Each test leaves both pools as it found them (placement weighs the
    space promised to live shares): every share it left is force-deleted
    (whatever its status) once settled, on whichever host it is."""
    yield
    a, _ = hosts
    with a.db.read() as s:
        live = list(s.scalars(sa.select(Share.id).where(Share.deleted_at.is_(None))))
    admin = a.manila()
    for share_id in live:
        wait_until(lambda sid=share_id: a.share_row(sid).status not in states.SHARE_TRANSITIONAL, 60,
                   f"share {share_id} to settle")
        with contextlib.suppress(mexc.NotFound):
            admin.shares.force_delete(share_id)
    for share_id in live:
        wait_until(lambda sid=share_id: a.share_row(sid).deleted_at is not None, 60, f"share {share_id} to go")


def pool_a(a: ServiceStack) -> str:
    return a.config.backend(BACKEND).host(a.config.host)


def create(a: ServiceStack, m, name: str):
    share = m.shares.create("NFS", 1, name=name)
    done = a.wait_for_share(m, share.id, {"available", "error"})
    assert done.status == "available", a.log("pool")[-3000:]
    return done


def share_on(a: ServiceStack, m, pool: str, name: str):
    """A new available share placed on ``pool`` (``host@backend#pool``):
    shares are created until the scheduler puts one there."""
    admin = a.manila()
    for i in range(MAX_TRIES):
        share = create(a, m, f"{name}-{i}")
        if admin.shares.get(share.id).host == pool:
            return share
    raise AssertionError(f"no share was placed on {pool} in {MAX_TRIES} tries")


def job_rows(a: ServiceStack, share_id: str, *extra: str) -> list[dict]:
    """``shareflow jobs list`` of the share's jobs, as an operator sees them."""
    done = shareflow_cli(a, "jobs", "list", "--resource", share_id, "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def stalled_job(a: ServiceStack, share_id: str, operation: str) -> dict:
    def check():
        rows = [r for r in job_rows(a, share_id, "--state", "stalled") if r["operation"] == operation]
        return rows[0] if rows else None

    return wait_until(check, 60, f"the {operation} job of {share_id} to be listed stalled", interval=0.5)


def scheduled_pools(admin) -> set[str]:
    """The pools the scheduler sees now (``openstack share pool list``)."""
    return {pool.name for pool in admin.pools.list(detailed=False)}


def backend_view(a: ServiceStack, service: str) -> dict:
    """``shareflow backend show HOST@BACKEND --json``."""
    done = shareflow_cli(a, "backend", "show", service, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def finished_owner(a: ServiceStack, share_id: str, operation: str) -> str:
    """The conductor (``host.pid.worker.backend``) that ran the job to its end."""
    job = a.finished_job(share_id, operation, timeout=60)
    assert job.state == states.JOB_SUCCEEDED, (job.state, job.failed_step)
    return job.owner


def limit_on(mount_point: Path, share_id: str) -> int | None:
    from shareflow.system import btrfs

    return btrfs.subvolume_qgroup(Path(mount_point) / "shares" / share_id, timeout=10).max_referenced


def test_shares_are_placed_on_both_hosts_and_live_on_the_pool_they_name(hosts):
    """With both hosts up the scheduler spreads shares over both pools; each
    share's ``host`` (admin view) is ``hostX@b1#pool0`` and its volume is on
    that host's pool and not the other's; its data is served by that host's
    own Ganesha (its own 2049), not by the other's."""
    a, b = hosts
    m = a.manila(a.token("tenant-place"))
    admin = a.manila()
    assert scheduled_pools(admin) == {pool_a(a), b.pool_host()} == {f"{HOST_A}@b1#pool0", f"{HOST_B}@b1#pool0"}
    placed: dict[str, str] = {}
    for i in range(MAX_TRIES):
        share = create(a, m, f"spread-{i}")
        placed[share.id] = admin.shares.get(share.id).host
        if len(set(placed.values())) == 2:
            break
    assert set(placed.values()) == {pool_a(a), b.pool_host()}
    on_a, on_b = set(volumes_of(a.config)), set(b.volumes())
    for share_id, host in placed.items():
        assert (share_id in on_a, share_id in on_b) == (host == pool_a(a), host == b.pool_host()), share_id

    # Each host's Ganesha (its own 192.0.2.1:2049, in its own namespace)
    # serves the shares on its own pool and not the other host's, to clients
    # at the same address on either network; data written through B's lands
    # in the volume on B's pool.
    client_a, client_b = a.nfs(0), b.nfs(0)
    assert client_a.address == client_b.address
    paths = {}
    for share_id in placed:
        rule = m.shares.allow(share_id, "ip", client_a.address, "rw")
        wait_until(lambda r=rule: m.share_access_rules.get(r["id"]).state == "active", 30, "the rule to be active")
        paths[share_id] = m.share_export_locations.list(share_id)[0].path.split(":", 1)[1]
    for share_id, host in placed.items():
        mine, other = (client_a, client_b) if host == pool_a(a) else (client_b, client_a)
        assert mine.ls(paths[share_id]).returncode == 0, share_id
        assert other.ls(paths[share_id]).returncode != 0, share_id
    share_id = next(s for s, h in placed.items() if h == b.pool_host())
    assert client_b.put(f"{paths[share_id]}/hello", b"from host b").returncode == 0
    assert read_bytes(client_b, f"{paths[share_id]}/hello") == b"from host b"
    assert (Path(b.btrfs.exports_dir) / share_id / "hello").read_bytes() == b"from host b"
    assert not (Path(a.btrfs.exports_dir) / share_id).exists()


def test_a_job_of_host_a_is_never_claimed_by_host_b_with_the_same_backend_name(hosts):
    """Host A's conductors all dead while an extend of a share on A is
    posted: host B's conductors (alive, serving a backend also called
    ``b1``) never take it - ``shareflow jobs`` lists it stalled, nobody's -
    and it runs on A once A's conductors are back."""
    a, b = hosts
    m = a.manila(a.token("tenant-isolation"))
    share = share_on(a, m, pool_a(a), "on-a")
    with conductors_down(a):
        m.shares.extend(share.id, 2)
        row = stalled_job(a, share.id, "extend_share")
        assert row["owner"] == "" and row["stalled_reason"].startswith("no live conductor has claimed it")
        # B's conductors are there and working all along: each report after
        # the stall was seen is a pass of B's workers; the job is still unclaimed.
        seen = pool_updated_at(a, b.pool_host())
        wait_until(lambda: pool_updated_at(a, b.pool_host()) > seen, 30, "host b's conductors to report again")
        assert len(b.worker_pids()) == 2
        assert [r["state"] for r in job_rows(a, share.id) if r["operation"] == "extend_share"] == ["stalled"]
        assert a.share_row(share.id).status == "extending"
        assert share.id not in b.volumes()
    assert a.wait_for_share(m, share.id, {"available", "extending_error"}, timeout=60).status == "available"
    assert finished_owner(a, share.id, "extend_share").startswith(f"{HOST_A}.")
    assert m.shares.get(share.id).size == 2
    assert limit_on(a.btrfs.mount_point, share.id) == 2 * GiB
    assert share.id in volumes_of(a.config) and share.id not in b.volumes()


def test_a_host_whose_conductors_are_dead_gets_no_new_shares_and_its_jobs_wait_for_it(hosts):
    """Host B's conductors all killed: a delete of a share on B waits,
    listed stalled, and is run by nobody else; once B's pool is stale new
    shares all go to A; B back, the delete finishes on B and B takes new
    shares again."""
    a, b = hosts
    m = a.manila(a.token("tenant-stale"))
    admin = a.manila()
    on_b = share_on(a, m, b.pool_host(), "on-b")
    with conductors_down(b):
        m.shares.delete(on_b.id)
        row = stalled_job(a, on_b.id, "delete_share")
        assert row["owner"] == ""
        # Stale: the scheduler no longer sees B's pool (GET
        # /scheduler-stats/pools), and the operator sees its conductors down.
        last = pool_updated_at(a, b.pool_host())
        wait_until(lambda: scheduled_pools(admin) == {pool_a(a)}, POOL_STALE_AFTER + 30,
                   "the scheduler to stop seeing host b's pool")
        assert utcnow() - last > timedelta(seconds=POOL_STALE_AFTER)
        assert pool_updated_at(a, b.pool_host()) == last  # nobody of B reported meanwhile
        assert backend_view(a, f"{HOST_B}@{BACKEND}")["alive"] is False
        assert backend_view(a, f"{HOST_A}@{BACKEND}")["alive"] is True
        fresh = [create(a, m, f"while-b-down-{i}") for i in range(2)]
        assert [admin.shares.get(s.id).host for s in fresh] == [pool_a(a)] * 2
        assert {s.id for s in fresh} <= set(volumes_of(a.config))
        # B's delete waited: not run on A, still there on B.
        assert a.share_row(on_b.id).status == "deleting"
        assert [r["state"] for r in job_rows(a, on_b.id) if r["operation"] == "delete_share"] == ["stalled"]
        assert on_b.id in b.volumes() and on_b.id not in volumes_of(a.config)
    wait_until(lambda: a.share_row(on_b.id).deleted_at is not None, 60, "the delete to finish on host b")
    assert finished_owner(a, on_b.id, "delete_share").startswith(f"{HOST_B}.")
    assert on_b.id not in b.volumes()
    # B reports again, and the scheduler uses it again (A holds more now).
    wait_until(lambda: scheduled_pools(admin) == {pool_a(a), b.pool_host()}, 30,
               "the scheduler to see host b's pool again")
    assert backend_view(a, f"{HOST_B}@{BACKEND}")["alive"] is True
    again = share_on(a, m, b.pool_host(), "b-back")
    assert again.id in b.volumes()
