"""Pools reported by the conductors of a host, boards keyed ``host@backend``,
on the real stack (host ``testhost``): the conductors report capabilities and
beat their service's heart; ``shareflow backend`` shows and disables a share
service; a job on another host's board of a same-named backend is never
claimed here; a job left on the legacy board of a backend (posted before
boards were per host) is drained and run."""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from kazoo.client import KazooClient

from shareflow.db import jobs as jobs_db
from shareflow.db import pools as pools_db
from shareflow.db import share_types as types_db
from shareflow.db import shares as shares_db
from shareflow.db.models import Job, Share
from shareflow.domain import states
from shareflow.engine import operations
from shareflow.engine.boards import every_job
from shareflow.engine.zk import board_path, list_boards
from shareflow.services.context import Caller
from shareflow.wiring import utcnow
from tests.fixtures.stack import BACKEND, wait_until
from tests.functional.lifecycle_helpers import Tenant
from tests.functional.test_operations import messages_for, shareflow_cli

SERVICE = f"testhost@{BACKEND}"
PROJECT = "hosts-tests"


def cli_json(stack, *args: str):
    done = shareflow_cli(stack, "backend", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _record_create(stack, services, board_key: str) -> tuple[str, Job]:
    """A share row placed on this host's pool and its create job, recorded
    and posted to ``board_key``: what an API posted (before boards were per
    host: the legacy bare name; or another host's API, for its own host)."""
    share_id = str(uuid.uuid4())
    pool = f"{SERVICE}#{stack.config.backend(BACKEND).pool}"
    with services.db.write() as s:
        type_id = types_db.get_by_name(s, stack.config.default_share_type).id
        shares_db.create(s, now=utcnow(), id=share_id, project_id=PROJECT, size=1, share_proto="NFS",
                         status=states.CREATING, share_type_id=type_id, host=pool, backend=SERVICE,
                         is_public=False, availability_zone="nova")
        spec = operations.job_spec("create_share", backend=board_key, resource_id=share_id,
                                   project_id=PROJECT,
                                   store={"share_id": share_id, "size": 1, "share_network_id": None})
        job = services.poster.record(s, spec)
    services.poster.post(job, spec)
    return share_id, job


def test_conductors_report_capabilities_and_the_cli_shows_them(stack):
    tenant = Tenant(stack, "report")
    try:
        share = tenant.create(1)
        with stack.db.read() as s:
            (pool,) = [p for p in pools_db.pool_states(s, now=utcnow()) if p.backend_host == SERVICE]
        caps = pool.capabilities
        assert (caps["snapshot_support"], caps["create_share_from_snapshot_support"],
                caps["revert_to_snapshot_support"], caps["thin_provisioning"]) == (True, True, True, False)
        assert (caps["share_backend_name"], caps["storage_protocol"], caps["vendor_name"]) == (
            BACKEND, "NFS", "shareflow")
        assert caps["driver_handles_share_servers"] is False and caps["driver_name"] == "BtrfsShareDriver"
        assert pool.enabled and pool.availability_zone == stack.config.availability_zone

        listed = cli_json(stack, "list")
        (mine,) = [b for b in listed if b["host"] == SERVICE]
        assert mine["alive"] is True and mine["disabled"] is False and mine["last_report"]
        assert mine["shares"] >= 1 and mine["pools"][0]["capabilities"]["snapshot_support"] is True
        shown = cli_json(stack, "show", SERVICE)
        assert shown["pools"][0]["host"] == pool.host and shown["pools"][0]["shares"] >= 1
        assert shown["pools"][0]["total_capacity_gb"] > 0 and shown["ensure_finished_at"]
        assert stack.share_row(share.id).host == pool.host  # Manila's host@backend#pool
        text = shareflow_cli(stack, "backend", "list")
        assert text.returncode == 0 and SERVICE in text.stdout and "enabled" in text.stdout
    finally:
        tenant.cleanup()


def test_a_disabled_backend_gets_no_new_shares_and_keeps_its_own(stack):
    tenant = Tenant(stack, "disable")
    client = stack.nfs(0)
    try:
        kept = tenant.create(1)
        disabled = cli_json(stack, "disable", SERVICE, "--reason", "disk swap")
        assert (disabled["disabled"], disabled["disabled_reason"]) == (True, "disk swap")
        assert "disabled (disk swap)" in shareflow_cli(stack, "backend", "list").stdout
        refused = tenant.m.shares.create("NFS", 1)
        tenant.share_ids.append(refused.id)
        assert tenant.wait(refused.id, {"error"}).status == "error"
        assert any("No storage could be allocated" in m for m in messages_for(stack, refused.id))
        # Its existing share keeps working: a rule is applied by its conductors.
        tenant.allow(kept, client)
        enabled = cli_json(stack, "enable", SERVICE)
        assert (enabled["disabled"], enabled["disabled_reason"]) == (False, None)
        tenant.create(1)
    finally:
        shareflow_cli(stack, "backend", "enable", SERVICE)
        tenant.cleanup()


def test_backend_cli_refuses_unknown_and_ambiguous_names(stack):
    done = shareflow_cli(stack, "backend", "disable", "nohost@nothing")
    assert done.returncode == 1 and "no backend 'nohost@nothing' has reported" in done.stderr
    with stack.db.write() as s:
        pools_db.report(s, host=f"otherhost@{BACKEND}#pool0", backend=BACKEND, pool="pool0", dhss=False,
                        total_gb=1, free_gb=1, now=utcnow())
    try:
        done = shareflow_cli(stack, "backend", "show", BACKEND)
        assert done.returncode == 1 and "several hosts" in done.stderr
        assert cli_json(stack, "show", SERVICE)["host"] == SERVICE
    finally:
        with stack.db.write() as s:
            s.execute(sa.text("DELETE FROM pools WHERE host LIKE 'otherhost@%'"))
            s.execute(sa.text("DELETE FROM services WHERE host LIKE 'otherhost@%'"))


@pytest.fixture
def zk(stack):
    client = KazooClient(hosts=stack.config.zookeeper.hosts)
    client.start(timeout=15)
    yield client
    client.stop()
    client.close()


def _forget(stack, zk, share_id: str, job: Job, board_key: str) -> None:
    """Our own records gone: the job's node, its row, the share's row."""
    path = board_path(stack.config.zookeeper.chroot, board_key)
    for child in zk.get_children(path) if zk.exists(path) else []:
        node = f"{path}/{child}"
        if job.id.encode() in (zk.get(node)[0] or b""):
            zk.delete(node)
    with stack.db.write() as s:
        s.execute(sa.delete(Job).where(Job.id == job.id))
        s.execute(sa.update(Share).where(Share.id == share_id).values(status=states.ERROR))
        shares_db.mark_deleted(s, share_id, now=utcnow())


def test_another_hosts_board_is_never_claimed_here(stack, zk):
    """``otherhost`` also has a backend named b1: its job waits on its own
    board, however many jobs this host's conductors claim meanwhile."""
    other = f"otherhost@{BACKEND}"
    services = stack.services()
    tenant = Tenant(stack, "isolation")
    try:
        share_id, job = _record_create(stack, services, other)
        # Posted before this one, which this host's conductors then run.
        tenant.create(1)
        with stack.db.read() as s:
            assert jobs_db.get(s, job.id).state == states.JOB_POSTED
        with stack.board(other) as board:
            (waiting,) = [j for j in every_job(board) if j.details["shareflow"]["job_id"] == job.id]
            assert board.find_owner(waiting) is None
        assert stack.share_row(share_id).status == states.CREATING
        assert other in list_boards(zk, stack.config.zookeeper.chroot)
        _forget(stack, zk, share_id, job, other)
    finally:
        tenant.cleanup()
        services.close()


def test_jobs_on_the_legacy_board_are_drained(stack, zk):
    """A job an API posted to ``jobboards/b1`` before the upgrade (its store
    names the bare backend) is claimed and run by this host's conductors."""
    services = stack.services()
    admin = Caller(project_id="admin", user_id="admin", is_admin=True)
    try:
        share_id, job = _record_create(stack, services, BACKEND)
        assert BACKEND in list_boards(zk, stack.config.zookeeper.chroot)
        wait_until(lambda: stack.share_row(share_id).status == states.AVAILABLE, 60, "the legacy job to run")
        done = stack.finished_job(share_id, "create_share")
        assert done.id == job.id and done.state == states.JOB_SUCCEEDED and done.backend == BACKEND
        assert done.owner.endswith(f".legacy-{BACKEND}")
        assert share_id in stack.backend().share.list_volumes()
        # And it is an ordinary share from then on: its delete goes to the host's board.
        services.shares.delete(Caller(project_id=PROJECT, user_id="u"), share_id)
        wait_until(lambda: stack.share_row(share_id).deleted_at is not None, 60, "the share to be deleted")
        deleted = stack.finished_job(share_id, "delete_share")
        assert deleted.backend == SERVICE and share_id not in stack.backend().share.list_volumes()
    finally:
        row = stack.share_row(share_id)
        if row is not None and row.deleted_at is None:
            stack.delete_all_shares(services, admin)
        services.close()
