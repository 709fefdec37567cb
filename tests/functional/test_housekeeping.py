"""What no job reports: a job that was never posted, and a dead export server."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid

import sqlalchemy as sa

from shareflow.db import shares as shares_db
from shareflow.db.models import Message
from shareflow.domain import states
from shareflow.drivers.export.ganesha_server import GaneshaServer
from shareflow.engine.posting import JobPoster, JobSpec
from shareflow.flows import create_share as create_share_module
from shareflow.flows.create_share import create_share
from shareflow.wiring import utcnow
from tests.fixtures.stack import wait_until


def test_job_recorded_but_never_posted_fails_its_share(stack):
    """The API died between committing a share `creating` and posting its job:
    the conductors fail the share with a message instead of leaving it stuck."""
    share_id = str(uuid.uuid4())
    poster = JobPoster(stack.db, None, None, clock=utcnow)
    with stack.db.write() as s:
        share = shares_db.create(
            s, now=utcnow(), id=share_id, project_id="tenant-orphan", size=1, share_proto="NFS",
            status=states.CREATING, backend=stack.board_key(), host=f"{stack.board_key()}#pool0", is_public=False,
        )
        job = poster.record(s, JobSpec(
            operation="create_share", backend=stack.board_key(), resource_type="share", resource_id=share.id,
            factory=create_share, project_id="tenant-orphan",
        ))
    wait_until(lambda: stack.share_row(share_id).status == states.ERROR, 30, "the orphaned share to fail")
    finished = stack.finished_job(share_id)
    assert finished.id == job.id and finished.state == states.JOB_TRASHED
    with stack.db.read() as s:
        (msg,) = s.scalars(sa.select(Message).where(Message.resource_id == share_id)).all()
    assert msg.project_id == "tenant-orphan"
    assert "interrupted before its job could be scheduled" in msg.user_message


def test_job_whose_flow_cannot_be_loaded_fails_its_share(stack, monkeypatch):
    """A job naming a flow factory that no longer exists (renamed without an
    alias) is set aside by the conductor (off the board, its record
    ``trashed`` with its logbook kept for an operator) and its share is
    failed with a message saying so, not stranded."""

    def retired():  # stands for a factory removed from the code base
        raise AssertionError("never called here")

    retired.__module__ = "shareflow.flows.create_share"
    retired.__qualname__ = retired.__name__ = "retired_create_share"
    # Importable here, where the job is posted; not in the conductors.
    monkeypatch.setattr(create_share_module, "retired_create_share", retired, raising=False)

    share_id = str(uuid.uuid4())
    services = stack.services()
    try:
        with stack.db.write() as s:
            shares_db.create(
                s, now=utcnow(), id=share_id, project_id="tenant-lost", size=1, share_proto="NFS",
                status=states.CREATING, backend=stack.board_key(), host=f"{stack.board_key()}#pool0", is_public=False,
            )
            spec = JobSpec(
                operation="create_share", backend=stack.board_key(), resource_type="share", resource_id=share_id,
                factory=retired, store={"share_id": share_id, "resource_id": share_id, "size": 1},
                project_id="tenant-lost",
            )
            job = services.poster.record(s, spec)
        services.poster.post(job, spec)
    finally:
        services.close()
    wait_until(lambda: stack.share_row(share_id).status == states.ERROR, 30, "the share to fail")
    finished = stack.finished_job(share_id)
    assert finished.state == states.JOB_TRASHED and "Could not import factory" in finished.failure
    with stack.db.read() as s:
        (msg,) = s.scalars(sa.select(Message).where(Message.resource_id == share_id)).all()
    assert msg.user_message == (
        f"create: the job could not be run: its flow could not be loaded; the job was kept for "
        f"an administrator to resume (job {job.id})"
    )
    # Its logbook is kept, as it was, for the operator.
    services = stack.services()
    try:
        with contextlib.closing(services.persistence.get_connection()) as conn:
            book = conn.get_logbook(job.logbook_id)
    finally:
        services.close()
    assert book.find(job.flow_detail_id).meta["factory"]["name"].endswith("retired_create_share")


def test_dead_export_server_is_restarted_with_its_exports(stack):
    m = stack.manila(stack.token("tenant-ganesha"))
    share = m.shares.create("NFS", 1)
    stack.wait_for_share(m, share.id, {"available"})
    client = stack.nfs(2)
    rule = m.shares.allow(share, "ip", client.address, "ro")
    wait_until(lambda: m.share_access_rules.get(rule["id"]).state == "active", 30, "the rule to apply")
    export = m.share_export_locations.list(share)[0].path.split(":", 1)[1]
    assert client.ls(export).returncode == 0

    server = GaneshaServer(stack.config.backend("b1").ganesha)
    old_pid = server.pid()
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: server.pid() not in (None, old_pid) and server.is_running(), 30,
               "the pool to restart NFS-Ganesha")
    wait_until(lambda: client.ls(export).returncode == 0, 30, "the export to be served again")
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")


def test_dead_dbus_is_restarted_with_its_server_and_exports(stack):
    """Ganesha exits when its private bus dies; the pool brings both back,
    the export is served again, and changes go over the new bus."""
    m = stack.manila(stack.token("tenant-dbus"))
    share = m.shares.create("NFS", 1)
    stack.wait_for_share(m, share.id, {"available"})
    client, other = stack.nfs(2), stack.nfs(1)
    rule = m.shares.allow(share, "ip", client.address, "ro")
    wait_until(lambda: m.share_access_rules.get(rule["id"]).state == "active", 30, "the rule to apply")
    export = m.share_export_locations.list(share)[0].path.split(":", 1)[1]
    assert client.ls(export).returncode == 0

    server = GaneshaServer(stack.config.backend("b1").ganesha)
    old_pid, old_bus = server.pid(), server.bus.pid()
    os.kill(old_bus, signal.SIGKILL)
    wait_until(lambda: server.pid() not in (None, old_pid) and server.bus.pid() not in (None, old_bus)
               and server.is_running() and server.on_bus(), 30, "the pool to restart the bus and NFS-Ganesha")
    wait_until(lambda: client.ls(export).returncode == 0, 30, "the export to be served again")
    rule2 = m.shares.allow(share, "ip", other.address, "rw")
    wait_until(lambda: m.share_access_rules.get(rule2["id"]).state == "active", 30, "a rule after the restart")
    assert other.ls(export).returncode == 0
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
