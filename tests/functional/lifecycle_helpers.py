"""What the resize, admin and read-only tests share: a tenant that cleans up
its own shares, and looks at the backend (the limit btrfs enforces, the
export, the volume) and at the user messages."""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from pathlib import Path

import sqlalchemy as sa
from manilaclient import exceptions as mexc

from shareflow.db import pools as pools_db
from shareflow.db.models import Message, Pool
from shareflow.system import btrfs, netns
from shareflow.system.process import run
from tests.fixtures.stack import BACKEND, wait_until
from tests.fixtures.storage import NFS_WRITE_MAX, SMALL, fill_until_full  # noqa: F401 (re-exported)

GiB = 1 << 30
MiB = 1 << 20


def race(stack, calls: dict, *, hold: tuple[str, ...]) -> dict:
    """Send the requests ``calls`` (name -> call) at once; name -> "accepted"
    or the manilaclient error's class name. Whichever job is accepted is held
    inside the driver calls ``hold`` until every request has answered, so a
    later request cannot come after that job finished (a serial order, which
    is legitimate but not the race under test)."""
    stack.set_faults({call: "hang" for call in hold})
    try:
        outcomes: dict[str, str] = {}
        barrier = threading.Barrier(len(calls))

        def send(name, call):
            barrier.wait()
            try:
                call()
                outcomes[name] = "accepted"
            except mexc.ClientException as e:
                outcomes[name] = type(e).__name__

        threads = [threading.Thread(target=send, args=item) for item in calls.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return outcomes
    finally:
        stack.clear_faults()


class Tenant:
    """A project with its own member client; deletes its shares at the end
    (force-deleting as admin whatever a test left them in)."""

    def __init__(self, stack, name: str):
        self.stack = stack
        self.project = f"{name}-{uuid.uuid4().hex[:6]}"
        self.m = stack.manila(stack.token(self.project))
        self.admin = stack.manila()
        self.share_ids: list[str] = []

    def create(self, size: int = 1, **kw):
        wait_for_room(self.stack, size)
        share = self.m.shares.create("NFS", size, **kw)
        self.share_ids.append(share.id)
        share = self.stack.wait_for_share(self.m, share.id, {"available", "error"})
        assert share.status == "available", self.stack.log("pool")[-3000:]
        return share

    def wait(self, share_id: str, statuses: set[str], timeout: float = 30):
        return self.stack.wait_for_share(self.admin, share_id, statuses, timeout=timeout)

    def allow(self, share, client, level: str = "rw") -> dict:
        """Allow an NFS client (or an address or network given as text) and
        wait for the rule to be active."""
        address = client if isinstance(client, str) else client.address
        rule = self.m.shares.allow(share, "ip", address, level)
        wait_until(lambda: self.m.share_access_rules.get(rule["id"]).state == "active", 30,
                   f"rule {rule['id']} to become active")
        return rule

    def export_path(self, share) -> str:
        return self.m.share_export_locations.list(share)[0].path.split(":", 1)[1]

    def cleanup(self) -> None:
        self.stack.clear_faults()
        for share_id in self.share_ids:
            row = self.stack.share_row(share_id)
            if row is None or row.deleted_at is not None:
                continue
            # Whatever status a test left it in: no job of its own may still run.
            wait_until(lambda sid=share_id: self.stack.share_row(sid).status not in TRANSITIONAL, 60,
                       f"{share_id} to settle")
            try:
                self.admin.shares.force_delete(share_id)
            except mexc.NotFound:
                continue
            wait_until(lambda sid=share_id: self.stack.share_row(sid).deleted_at is not None, 60,
                       f"{share_id} to be deleted")
            assert share_id not in self.stack.backend().share.list_volumes()
        # The space of deleted volumes comes back when btrfs has cleaned them:
        # wait for that, so the next test (whose pool is the same) finds it.
        run(["btrfs", "subvolume", "sync", str(self.stack.btrfs.mount_point)], timeout=60)


def wait_for_room(stack, size_gb: int, timeout: float = 60) -> None:
    """Wait until the pool's latest capacity report has room for a share of
    ``size_gb`` by the scheduler's measure (the session's pool is shared by
    every test module, and space a test freed is reported a moment later)."""
    def room() -> bool:
        with stack.db.read() as s:
            pool = s.get(Pool, f"{stack.config.host}@{BACKEND}#{stack.config.backend(BACKEND).pool}")
            promised = pools_db.allocated_gb(s, pool.host) if pool is not None else 0
        return pool is not None and min(pool.free_capacity_gb, pool.total_capacity_gb - promised) >= size_gb

    wait_until(room, timeout, f"the pool to have room for {size_gb} GiB")


TRANSITIONAL = {"creating", "deleting", "extending", "shrinking", "reverting"}


def subvolume(stack, share_id: str) -> Path:
    return Path(stack.btrfs.mount_point) / "shares" / share_id


def limit_of(stack, share_id: str) -> int | None:
    """The size limit btrfs enforces on the share's volume, in bytes."""
    return btrfs.subvolume_qgroup(subvolume(stack, share_id), timeout=10).max_referenced


def volume_dir(stack, share_id: str) -> Path:
    return Path(stack.btrfs.exports_dir) / share_id


def prefill(stack, share_id: str, size: int, name: str = "prefill") -> None:
    """Take ``size`` bytes of the share's space directly on the storage host
    (fast: preallocated, not copied), so that a short write over NFS can
    cross the size limit."""
    fd = os.open(volume_dir(stack, share_id) / name, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def fill_to_limit(stack, share_id: str, name: str = "fill") -> int:
    """Take the share's remaining space on the storage host, until its size
    limit refuses more. Returns the bytes taken."""
    return fill_until_full(volume_dir(stack, share_id), name)


def read_bytes(client, path: str) -> bytes:
    """A file's content read over NFS (nfs-cat to a file: binary-safe)."""
    with tempfile.NamedTemporaryFile(prefix="sf-nfs-read-") as f:
        done = run(["sh", "-c", 'exec "$@" > "$0"', f.name, *netns.exec_argv(client.ns, ["nfs-cat", client.url(path)])],
                   timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        return Path(f.name).read_bytes()


def messages_for(stack, share_id: str) -> list[Message]:
    with stack.db.read() as s:
        return list(s.scalars(sa.select(Message).where(Message.resource_id == share_id)
                              .order_by(Message.created_at)))


def exported(stack, share_id: str) -> bool:
    backend = stack.backend()
    return share_id in backend.export.list_exports(backend.server.server_for(share_id))
