"""A share create's scheduler_hints (Manila 2.65 same_host / different_host,
2.67 only_host), through the API over two reported pools, placed by the
API (``[scheduler] placement = "api"``) and by a conductor's scheduling job
run in process (``placement = "conductor"``, ``ApiEnv.schedule``): every
test runs with both, and the hints must act the same.

Own environment (own database) for each placement: each test reports
exactly the two pools.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from shareflow.db.models import Pool, Share
from tests.api.conftest import ApiEnv, build_env, report_pool
from tests.api.test_manilaclient import _Server, manila
from tests.fixtures.coordination import chroot

A = "testhost@b1#pool0"
B = "otherhost@b2#pool0"
SAME, DIFFERENT = "__affinity_same_host", "__affinity_different_host"


@pytest.fixture(scope="module", params=["api", "conductor"])
def env(request, zookeeper_server, tmp_path_factory) -> Iterator[ApiEnv]:
    with chroot(zookeeper_server.hosts) as zk_root:
        e = build_env(tmp_path_factory.mktemp("hints"), zookeeper_server.hosts, zk_root, placement=request.param)
        try:
            yield e
        finally:
            e.close()


@pytest.fixture
def pools(env) -> Iterator[None]:
    """The two pools, equal: without a hint the weigher spreads shares."""
    def clear():
        with env.services.db.write() as s:
            s.execute(sa.text("DELETE FROM share_metadata"))
            s.execute(sa.delete(Share))
            s.execute(sa.text("DELETE FROM pool_allocations"))
            s.execute(sa.delete(Pool))
    clear()
    report_pool(env.services.db, host=A, total_gb=100)
    report_pool(env.services.db, host=B, total_gb=100)
    yield
    clear()


def host_of(env, share: dict) -> str | None:
    return env.share_row(share["id"]).host


def metadata(env, share: dict, token=None) -> dict:
    result = env.get(f"/v2/shares/{share['id']}/metadata", token=token or env.tokens["alice"])
    assert result.status_code == 200, result.text
    return result.json["metadata"]


def share_count(env) -> int:
    with env.services.db.read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(Share))


def test_same_host_follows_and_different_host_avoids_the_named_share(env, pools):
    alice = env.tokens["alice"]
    first = env.create_share(token=alice, size=10)
    where = host_of(env, first)
    other = B if where == A else A
    # Without a hint the emptier pool would be chosen: the other one.
    for _ in range(2):
        near = env.create_share(token=alice, scheduler_hints={"same_host": first["id"]})
        assert host_of(env, near) == where
    far = env.create_share(token=alice, size=1, scheduler_hints={"different_host": first["id"]})
    assert host_of(env, far) == other
    # Kept as Manila keeps them, and shown: both ways.
    assert metadata(env, near) == {SAME: first["id"]}
    assert metadata(env, far) == {DIFFERENT: first["id"]}
    shown = metadata(env, first)
    assert shown[DIFFERENT] == far["id"] and len(shown[SAME].split(",")) == 2
    assert near["id"] in shown[SAME].split(",")
    # Deleting a share takes it out of its partners' lists.
    env.set_share_status(far["id"], "available")
    assert env.delete(f"/v2/shares/{far['id']}", token=alice).status_code == 202
    assert DIFFERENT not in metadata(env, first)
    # And so does an admin's force-delete (the share still creating).
    result = env.post(f"/v2/shares/{near['id']}/action", {"force_delete": None}, token=env.tokens["admin"])
    assert result.status_code == 202, result.text
    assert metadata(env, first)[SAME].split(",") == [i for i in shown[SAME].split(",") if i != near["id"]]


def test_hints_no_pool_can_satisfy_leave_the_share_in_error(env, pools):
    alice = env.tokens["alice"]
    a = env.create_share(token=alice, size=10)
    b = env.create_share(token=alice)
    assert {host_of(env, a), host_of(env, b)} == {A, B}
    share = env.create_share(token=alice, scheduler_hints={"same_host": f"{a['id']},{b['id']}"})
    assert env.share_row(share["id"]).status == "error" and host_of(env, share) is None
    share = env.create_share(token=alice, scheduler_hints={"different_host": f"{a['id']},{b['id']}"})
    assert env.share_row(share["id"]).status == "error" and host_of(env, share) is None


@pytest.mark.parametrize("hints, status, message", [
    ({"same_host": "not-a-uuid"}, 400, "not-a-uuid is not a valid uuid."),
    ({"different_host": "{known},nope"}, 400, "nope is not a valid uuid."),
    ({"same_host": "{unknown}"}, 404, "Share {unknown} could not be found."),
    ({"different_host": "{known},{unknown}"}, 404, "Share {unknown} could not be found."),
    # Another project's share does not exist for the caller.
    ({"same_host": "{bobs}"}, 404, "Share {bobs} could not be found."),
    ("same_host", 400, None),
])
def test_bad_hints_are_refused_before_anything_is_created(env, pools, hints, status, message):
    known = env.create_share(token=env.tokens["alice"])["id"]
    bobs = env.create_share(token=env.tokens["bob"])["id"]
    ids = {"known": known, "unknown": str(uuid.uuid4()), "bobs": bobs}
    if isinstance(hints, dict):
        hints = {k: v.format(**ids) for k, v in hints.items()}
    before = share_count(env)
    result = env.post("/v2/shares", {"share": {"size": 1, "share_proto": "NFS", "scheduler_hints": hints}},
                      token=env.tokens["alice"])
    assert result.status_code == status, result.text
    name = "badRequest" if status == 400 else "itemNotFound"
    assert result.json[name]["code"] == status
    if message is not None:
        assert result.json[name]["message"] == message.format(**ids)
    assert share_count(env) == before
    assert metadata(env, {"id": known}) == {}


def test_hints_below_2_65_are_ignored(env, pools):
    alice = env.tokens["alice"]
    first = env.create_share(token=alice, size=10)
    body = {"share": {"size": 1, "share_proto": "NFS",
                      "scheduler_hints": {"same_host": first["id"], "different_host": "not-a-uuid"}}}
    result = env.post("/v2/shares", body, token=alice, version="2.64")
    assert result.status_code == 200, result.text
    env.schedule()
    share = result.json["share"]
    # The weigher alone: the emptier pool, not the named share's.
    assert host_of(env, share) != host_of(env, first)
    assert metadata(env, share) == {} and metadata(env, first) == {}
    # At 2.65 the same body is read (and its bad value refused).
    assert env.post("/v2/shares", body, token=alice, version="2.65").status_code == 400


def test_manilaclient_passes_scheduler_hints_unmodified(env, pools):
    server = _Server(env.client.app)
    try:
        alice = manila(server, env.tokens["alice"], "2.65")
        first = alice.shares.create("NFS", 10, name="first")
        env.schedule()
        near = alice.shares.create("NFS", 1, name="near", scheduler_hints={"same_host": first.id})
        env.schedule()
        far = alice.shares.create("NFS", 1, name="far", scheduler_hints={"different_host": first.id})
        env.schedule()
        assert host_of(env, {"id": near.id}) == host_of(env, {"id": first.id})
        assert host_of(env, {"id": far.id}) != host_of(env, {"id": first.id})
        assert alice.shares.get(near.id).metadata == {SAME: first.id}
    finally:
        server.close()


def test_only_host_from_2_67_for_admins(env, pools):
    admin, alice = env.tokens["admin"], env.tokens["alice"]
    # Against the weigher: every share goes to A, however full it gets.
    assert host_of(env, env.create_share(token=admin, size=10, scheduler_hints={"only_host": A})) == A
    for named in (A, "testhost@b1"):  # the pool, or its backend
        share = env.create_share(token=admin, scheduler_hints={"only_host": named})
        assert host_of(env, share) == A
    # One below, it is not read (the same request spreads to the emptier pool),
    # and a member's is ignored (Manila's OnlyHostFilter skips non-admins).
    body = {"share": {"size": 1, "share_proto": "NFS", "scheduler_hints": {"only_host": A}}}
    result = env.post("/v2/shares", body, token=admin, version="2.66")
    assert result.status_code == 200, result.text
    env.schedule()
    assert host_of(env, result.json["share"]) == B
    assert host_of(env, env.create_share(token=alice, scheduler_hints={"only_host": A})) == B
    # A pool nobody reports: no valid host; a malformed one: 400 before anything.
    share = env.create_share(token=admin, scheduler_hints={"only_host": "nohost@nob#p"})
    assert env.share_row(share["id"]).status == "error"
    before = share_count(env)
    bad = {"share": {"size": 1, "share_proto": "NFS", "scheduler_hints": {"only_host": "nohost"}}}
    result = env.post("/v2/shares", bad, token=admin, version="2.67")
    assert result.status_code == 400 and result.json["badRequest"]["code"] == 400
    assert share_count(env) == before


@pytest.mark.parametrize("version, status", [("2.65", 400), ("2.66", 200), ("2.67", 200)])
def test_group_specs_filter_on_group_type_list_from_2_66(env, version, status):
    from tests.api.test_share_groups import new_group_type, new_share_type

    marker = uuid.uuid4().hex[:8]
    wanted = new_group_type(env, [new_share_type(env)["id"]], group_specs={"m": marker})
    new_group_type(env, [new_share_type(env)["id"]], group_specs={"m": "other"})
    result = env.get("/v2/share-group-types", params={"group_specs": repr({"m": marker})},
                     token=env.tokens["admin"], version=version)
    assert result.status_code == status, result.text
    if status == 200:
        assert [t["id"] for t in result.json["share_group_types"]] == [wanted["id"]]
