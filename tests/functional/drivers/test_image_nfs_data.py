"""The image driver's shares seen by real NFS clients through NFS-Ganesha:
data written over NFS lands in the share's own XFS image, the image's size is
a hard limit over NFS too, a snapshot holds what clients wrote before it, a
share made from it is independent of its origin, an extend is seen by a
client that keeps its export, and a shrink is refused without disturbing it.

Ganesha runs in a test namespace on 192.0.2.1:2049; clients are libnfs tools
in their own namespaces (their NFSv4 writes stop at ~3.9 KB a file, so bulk
data is written on the storage host).
"""

from __future__ import annotations

import errno
import uuid
from pathlib import Path

import pytest

from shareflow.exceptions import NotSupportedByBackend
from tests.fixtures.export_env import export_env as make_export_env
from tests.fixtures.export_env import pseudo, ro, rw
from tests.fixtures.storage import SMALL, fill_until_full

ENOSPC = (errno.ENOSPC,)


@pytest.fixture
def env(image_share_driver, ganesha_server, nfs_clients):
    # The driver first: the server stops before the share images go.
    return make_export_env(image_share_driver, ganesha_server, nfs_clients)


def new_id() -> str:
    return str(uuid.uuid4())


def exported(env, size_gb: int = 1, sid: str | None = None, *, from_snapshot: str | None = None):
    """A new share (or one from a snapshot), exported rw to client 0 and ro to client 1."""
    exports, server, shares, (c0, c1, _) = env
    sid = sid or new_id()
    if from_snapshot is None:
        path = shares.create_volume(sid, size_gb)
    else:
        path = shares.create_volume_from_snapshot(sid, from_snapshot, size_gb)
    exports.add_export(server, sid, path)
    exports.update_access(server, sid, [rw(c0), ro(c1)])
    return sid, Path(path)


def put(client, sid: str, name: str, data: bytes) -> None:
    done = client.put(pseudo(sid, name), data)
    assert done.returncode == 0, done.stderr


def cat(client, sid: str, name: str) -> bytes:
    done = client.cat(pseudo(sid, name))
    assert done.returncode == 0, done.stderr
    return done.stdout.encode()


def test_writes_over_nfs_land_in_the_shares_own_image(env):
    _, _, shares, (c0, c1, c2) = env
    sid, path = exported(env)
    put(c0, sid, "hello", b"written over nfs\n")
    assert (path / "hello").read_bytes() == b"written over nfs\n"
    assert cat(c1, sid, "hello") == b"written over nfs\n"
    assert c1.put(pseudo(sid, "no"), b"ro client").returncode != 0
    assert c2.ls(pseudo(sid)).returncode != 0
    assert shares.used_bytes(sid) > 0


def test_the_image_size_is_a_hard_limit_over_nfs(env):
    _, _, _, (c0, *_) = env
    sid, path = exported(env)
    put(c0, sid, "small", b"x" * SMALL)
    fill_until_full(path, full=ENOSPC)
    refused = c0.put(pseudo(sid, "over"), b"y" * SMALL)
    assert refused.returncode != 0, "a write past the image's size was accepted"
    assert not (path / "over").exists() or (path / "over").stat().st_size < SMALL


def test_a_snapshot_holds_what_clients_wrote_before_it(env):
    _, _, shares, (c0, c1, _) = env
    sid, path = exported(env)
    put(c0, sid, "data", b"v1")
    snap = new_id()
    shares.create_snapshot(sid, snap)
    (path / "data").write_bytes(b"v2")  # libnfs's nfs-cp does not overwrite
    put(c0, sid, "later", b"after the snapshot")
    clone, _ = exported(env, from_snapshot=snap)
    assert cat(c0, clone, "data") == b"v1"
    assert c0.cat(pseudo(clone, "later")).returncode != 0
    assert cat(c1, sid, "data") == b"v2"  # the origin is unchanged


def test_a_share_from_a_snapshot_is_independent_of_its_origin(env):
    exports, server, shares, (c0, *_) = env
    origin, _ = exported(env)
    put(c0, origin, "data", b"kept")
    snap = new_id()
    shares.create_snapshot(origin, snap)
    clone, clone_path = exported(env, 2, from_snapshot=snap)
    put(c0, clone, "mine", b"only in the clone")
    assert c0.cat(pseudo(origin, "mine")).returncode != 0
    # Origin and snapshot gone: the clone keeps its data and its export.
    exports.remove_export(server, origin)
    shares.delete_volume(origin)
    shares.delete_snapshot(snap)
    assert cat(c0, clone, "data") == b"kept"
    put(c0, clone, "more", b"still writable")
    assert (clone_path / "more").read_bytes() == b"still writable"


def test_an_extend_is_seen_by_a_client_that_keeps_its_export(env):
    _, _, shares, (c0, *_) = env
    sid, path = exported(env)
    put(c0, sid, "before", b"b")
    fill_until_full(path, full=ENOSPC)
    assert c0.put(pseudo(sid, "full"), b"z" * SMALL).returncode != 0
    shares.resize_volume(sid, 2)
    # Same mount, same export: the client now has room, and its data is there.
    put(c0, sid, "after", b"a" * SMALL)
    assert cat(c0, sid, "before") == b"b"
    assert (path / "after").stat().st_size == SMALL


def test_a_shrink_is_refused_and_the_export_keeps_working(env):
    _, _, shares, (c0, *_) = env
    sid, path = exported(env, 2)
    put(c0, sid, "data", b"d")
    with pytest.raises(NotSupportedByBackend):
        shares.resize_volume(sid, 1)
    assert path.stat().st_dev and (Path(shares.volume_path(sid)) == path)
    assert cat(c0, sid, "data") == b"d"
    put(c0, sid, "more", b"m")
