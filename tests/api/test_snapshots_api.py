"""``/snapshots``, shares created from snapshots and the ``revert`` share action,
in-process: Manila's validation, errors and codes, views per microversion,
gating by the share type's extra specs, and what a rejected request leaves
(nothing). No conductor runs: jobs wait on the board; tests move statuses
themselves where a conductor would have."""

from __future__ import annotations

import itertools
import json
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from shareflow.db.models import Job, Pool, Share, ShareSnapshot
from shareflow.services.context import Caller
from tests.api.conftest import POOL_TOTAL_GB, assert_fault, report_pool

#: Another host's pool, roomier than the test pool.
ROOMIER = "roomier@b1#pool0"

ALL_SPECS = {
    "driver_handles_share_servers": "False", "snapshot_support": "True",
    "create_share_from_snapshot_support": "True", "revert_to_snapshot_support": "True",
}


@pytest.fixture(scope="module")
def types(api):
    """Share types by capability: ``full`` has every snapshot capability,
    ``snap_only`` snapshots but no clones or reverts, ``none`` no snapshots."""
    admin = Caller(project_id="adminproj", user_id="root", is_admin=True)
    suffix = uuid.uuid4().hex[:6]
    made = {}
    for key, specs in {
        "full": ALL_SPECS,
        "snap_only": {"driver_handles_share_servers": "False", "snapshot_support": "True"},
        "none": {"driver_handles_share_servers": "False", "snapshot_support": "False"},
    }.items():
        made[key] = api.services.share_types.create(admin, name=f"{key}-{suffix}", extra_specs=specs).name
    return made


def available_share(api, *, token=None, share_type=None, size=1) -> dict:
    extra = {"share_type": share_type} if share_type else {}
    share = api.create_share(token=token or api.tokens["alice"], size=size, **extra)
    api.set_share_status(share["id"], "available")
    return share


def set_snapshot_status(api, snapshot_id: str, status: str) -> None:
    with api.services.db.write() as s:
        s.execute(sa.update(ShareSnapshot).where(ShareSnapshot.id == snapshot_id).values(status=status))


def snapshot_row(api, snapshot_id: str) -> ShareSnapshot | None:
    with api.services.db.read() as s:
        return s.get(ShareSnapshot, snapshot_id)


def create_snapshot(api, share_id: str, *, token=None, available: bool = True, **extra) -> dict:
    result = api.post("/v2/snapshots", {"snapshot": {"share_id": share_id, **extra}},
                      token=token or api.tokens["alice"])
    assert result.status_code == 202, result.text
    snap = result.json["snapshot"]
    if available:
        set_snapshot_status(api, snap["id"], "available")
    return snap


def jobs_of(api, resource_id: str) -> list[Job]:
    with api.services.db.read() as s:
        return list(s.scalars(sa.select(Job).where(Job.resource_id == resource_id).order_by(Job.created_at)))


# --- create ---------------------------------------------------------------------


def test_create_is_202_with_manilas_fields_and_posts_a_job(api, types):
    share = available_share(api, share_type=types["full"], size=2)
    result = api.post("/v2/snapshots", {"snapshot": {"share_id": share["id"], "name": "s1",
                                                     "description": "first", "force": False,
                                                     "metadata": {}}})
    assert result.status_code == 202
    snap = result.json["snapshot"]
    assert set(snap) == {"id", "share_id", "share_size", "created_at", "status", "name", "description",
                         "size", "share_proto", "links", "user_id", "project_id"}
    assert (snap["status"], snap["share_id"], snap["size"], snap["share_size"]) == ("creating", share["id"], 2, 2)
    assert (snap["name"], snap["description"], snap["share_proto"]) == ("s1", "first", "NFS")
    assert (snap["project_id"], snap["user_id"]) == ("proj-a", "alice")
    assert snap["links"][0]["href"].endswith(f"/v2/snapshots/{snap['id']}")
    (job,) = jobs_of(api, snap["id"])
    assert (job.operation, job.resource_type, job.backend) == ("create_snapshot", "snapshot", "testhost@b1")


def test_views_follow_the_microversion(api, types):
    share = available_share(api, share_type=types["full"])
    snap = create_snapshot(api, share["id"])
    path = f"/v2/snapshots/{snap['id']}"
    old = api.get(path, version="2.0").json["snapshot"]
    assert "project_id" not in old and "user_id" not in old and "provider_location" not in old
    admin = api.tokens["admin"]
    assert "provider_location" not in api.get(path, version="2.11", token=admin).json["snapshot"]
    at_212 = api.get(path, version="2.12", token=admin).json["snapshot"]
    assert "provider_location" in at_212 and "project_id" not in at_212
    assert "provider_location" not in api.get(path, version="2.65").json["snapshot"]  # members never
    assert api.get(path, version="2.17").json["snapshot"]["project_id"] == "proj-a"


def test_name_wins_over_display_name_when_present(api, types):
    share = available_share(api, share_type=types["full"])
    old = create_snapshot(api, share["id"], display_name="old", display_description="od")
    assert (old["name"], old["description"]) == ("old", "od")
    both = create_snapshot(api, share["id"], name="new", display_name="old")
    assert both["name"] == "new"


def test_create_errors(api, types):
    share = available_share(api, share_type=types["full"])
    before = api.count(ShareSnapshot)
    assert_fault(api.post("/v2/snapshots", {"snapshot": {}}), 400)
    assert_fault(api.post("/v2/snapshots", {"snapshot": {"share_id": 7}}), 400)
    assert_fault(api.post("/v2/snapshots", {"share_id": share["id"]}), 400)
    message = assert_fault(api.post("/v2/snapshots", {"snapshot": {"share_id": str(uuid.uuid4())}}), 404)
    assert "could not be found" in message
    # Another project's share does not exist for the caller.
    assert_fault(api.post("/v2/snapshots", {"snapshot": {"share_id": share["id"]}},
                          token=api.tokens["bob"]), 404)
    message = assert_fault(api.post("/v2/snapshots", {"snapshot": {"share_id": share["id"], "name": "x" * 256}}),
                           400)
    assert message == "Invalid input received: name can only be 255 characters long."
    assert api.count(ShareSnapshot) == before


@pytest.mark.parametrize("status", ["creating", "error", "deleting", "extending", "reverting"])
def test_snapshot_of_a_share_not_available_is_400(api, types, status):
    share = available_share(api, share_type=types["full"])
    api.set_share_status(share["id"], status)
    before = api.count(ShareSnapshot)
    message = assert_fault(api.post("/v2/snapshots", {"snapshot": {"share_id": share["id"], "force": True}}), 400)
    assert message == "Invalid share: Source share status must be available."
    assert api.count(ShareSnapshot) == before and api.share_row(share["id"]).status == status


def test_snapshot_of_a_share_type_without_snapshot_support_is_422(api, types):
    share = available_share(api, share_type=types["none"])
    message = assert_fault(api.post("/v2/snapshots", {"snapshot": {"share_id": share["id"]}}), 422,
                           "computeFault")
    assert message == (f"Snapshots cannot be created for share '{share['id']}' since it does not have "
                       "that capability.")


def test_share_view_reports_the_types_snapshot_capabilities(api, types):
    full = api.get(f"/v2/shares/{available_share(api, share_type=types['full'])['id']}").json["share"]
    assert full["snapshot_support"] is True
    assert full["create_share_from_snapshot_support"] is True
    assert full["revert_to_snapshot_support"] is True
    none = api.get(f"/v2/shares/{available_share(api, share_type=types['none'])['id']}").json["share"]
    assert none["snapshot_support"] is False
    assert none["create_share_from_snapshot_support"] is False
    assert none["revert_to_snapshot_support"] is False


# --- list, show, update ------------------------------------------------------------


def test_list_detail_filters_sorting_and_paging(api, types):
    share = available_share(api, share_type=types["full"], token=api.tokens["bob"])
    tag = uuid.uuid4().hex[:8]
    snaps = [create_snapshot(api, share["id"], token=api.tokens["bob"], name=f"{tag}-{i}") for i in range(3)]
    set_snapshot_status(api, snaps[0]["id"], "error")
    bob = api.tokens["bob"]
    summary = api.get("/v2/snapshots", token=bob, params={"share_id": share["id"]}).json["snapshots"]
    assert {s["id"] for s in summary} == {s["id"] for s in snaps}
    assert all(set(s) == {"id", "name", "links"} for s in summary)
    detail = api.get("/v2/snapshots/detail", token=bob, params={"share_id": share["id"]}).json["snapshots"]
    assert [s["id"] for s in detail] == [s["id"] for s in reversed(snaps)]  # newest first
    assert {s["status"] for s in detail} == {"available", "error"}
    errored = api.get("/v2/snapshots/detail", token=bob, params={"status": "error"}).json["snapshots"]
    assert [s["id"] for s in errored if s["share_id"] == share["id"]] == [snaps[0]["id"]]
    named = api.get("/v2/snapshots", token=bob, params={"name": f"{tag}-1"}).json["snapshots"]
    assert [s["id"] for s in named] == [snaps[1]["id"]]
    like = api.get("/v2/snapshots", token=bob, params={"name~": tag}).json["snapshots"]
    assert len(like) == 3
    asc = api.get("/v2/snapshots", token=bob, params={"share_id": share["id"], "sort_key": "name",
                                                      "sort_dir": "asc", "limit": "2", "offset": "1"})
    assert [s["name"] for s in asc.json["snapshots"]] == [f"{tag}-1", f"{tag}-2"]
    assert_fault(api.get("/v2/snapshots", token=bob, params={"sort_key": "nope"}), 400)
    assert_fault(api.get("/v2/snapshots", token=bob, params={"size": "big"}), 400)
    assert_fault(api.get("/v2/snapshots", token=bob, params={"limit": "-1"}), 400)
    # Other projects see none of them; an admin sees them with all_tenants.
    assert not {s["id"] for s in api.get("/v2/snapshots").json["snapshots"]} & {s["id"] for s in snaps}
    admin_all = api.get("/v2/snapshots", token=api.tokens["admin"], params={"all_tenants": "1"})
    assert {s["id"] for s in snaps} <= {s["id"] for s in admin_all.json["snapshots"]}
    # Routes with the project id in the path answer the same.
    project_path = api.get("/v2/proj-b/snapshots/detail", token=bob, params={"share_id": share["id"]})
    assert [s["id"] for s in project_path.json["snapshots"]] == [s["id"] for s in reversed(snaps)]
    assert project_path.json["snapshots"][0]["links"][0]["href"].startswith("http://") and \
        "/v2/proj-b/snapshots/" in project_path.json["snapshots"][0]["links"][0]["href"]


def test_snapshot_pages_link_to_the_next_and_a_marker_continues_them(api, types):
    share = available_share(api, share_type=types["full"], token=api.tokens["bob"])
    bob = api.tokens["bob"]
    snaps = [create_snapshot(api, share["id"], token=bob)["id"] for _ in range(5)]
    newest_first = list(reversed(snaps))
    seen, params = [], {"share_id": share["id"], "limit": "2"}
    while True:
        body = api.get("/v2/snapshots/detail", token=bob, params=params).json
        seen += [s["id"] for s in body["snapshots"]]
        links = body.get("share_snapshots_links")  # Manila's key for the snapshots' links
        if not links:
            break
        (link,) = links
        url = urlsplit(link["href"])
        assert link["rel"] == "next" and url.path == "/v2/snapshots/detail"
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        assert params["marker"] == seen[-1] and params["share_id"] == share["id"]
    assert seen == newest_first
    assert_fault(api.get("/v2/snapshots", token=bob, params={"marker": str(uuid.uuid4())}), 400)


def test_show_and_update(api, types):
    share = available_share(api, share_type=types["full"])
    snap = create_snapshot(api, share["id"], name="before")
    assert api.get(f"/v2/snapshots/{snap['id']}").json["snapshot"]["name"] == "before"
    assert_fault(api.get(f"/v2/snapshots/{snap['id']}", token=api.tokens["bob"]), 404)
    assert_fault(api.get(f"/v2/snapshots/{uuid.uuid4()}"), 404)
    updated = api.put(f"/v2/snapshots/{snap['id']}", {"snapshot": {"display_name": "after",
                                                                   "display_description": "d",
                                                                   "status": "error"}})
    assert updated.status_code == 200
    body = updated.json["snapshot"]
    assert (body["name"], body["description"], body["status"]) == ("after", "d", "available")
    assert api.put(f"/v2/snapshots/{snap['id']}", {"snapshot": {"name": "n2"}}).json["snapshot"]["name"] == "n2"
    assert_fault(api.put(f"/v2/snapshots/{snap['id']}", {"snapshot": {"display_name": "x" * 256}}), 400)
    assert_fault(api.put(f"/v2/snapshots/{snap['id']}", {"snapshot": {"name": "x"}},
                         token=api.tokens["bob"]), 404)
    assert_fault(api.put(f"/v2/snapshots/{snap['id']}", {"nothing": {}}), 400)
    assert snapshot_row(api, snap["id"]).name == "n2"


# --- delete and admin actions ------------------------------------------------------


@pytest.mark.parametrize("status", ["creating", "deleting", "error_deleting", "restoring"])
def test_delete_in_a_busy_status_is_400_and_changes_nothing(api, types, status):
    share = available_share(api, share_type=types["full"])
    snap = create_snapshot(api, share["id"])
    set_snapshot_status(api, snap["id"], status)
    message = assert_fault(api.delete(f"/v2/snapshots/{snap['id']}"), 400)
    assert message == "Invalid share snapshot: Share Snapshot status must be one of ('available', 'error')."
    assert snapshot_row(api, snap["id"]).status == status
    assert [j.operation for j in jobs_of(api, snap["id"])] == ["create_snapshot"]


@pytest.mark.parametrize("status", ["available", "error"])
def test_delete_is_202_and_posts_a_job(api, types, status):
    share = available_share(api, share_type=types["full"])
    snap = create_snapshot(api, share["id"])
    set_snapshot_status(api, snap["id"], status)
    assert_fault(api.delete(f"/v2/snapshots/{snap['id']}", token=api.tokens["bob"]), 404)
    result = api.delete(f"/v2/snapshots/{snap['id']}")
    assert result.status_code == 202 and result.text == ""
    assert snapshot_row(api, snap["id"]).status == "deleting"
    assert [j.operation for j in jobs_of(api, snap["id"])] == ["create_snapshot", "delete_snapshot"]


def test_reset_status_is_for_admins_with_manilas_names_per_version(api, types):
    share = available_share(api, share_type=types["full"])
    snap = create_snapshot(api, share["id"])
    path = f"/v2/snapshots/{snap['id']}/action"
    admin = api.tokens["admin"]
    message = assert_fault(api.post(path, {"reset_status": {"status": "error"}}), 403)
    assert message == "Policy doesn't allow share_snapshot:reset_status to be performed."
    assert_fault(api.post(path, {"reset_status": {}}, token=admin), 400)
    assert_fault(api.post(path, {"reset_status": None}, token=admin), 400)
    message = assert_fault(api.post(path, {"reset_status": {"status": "bogus"}}, token=admin), 400)
    assert message.startswith("Invalid state. Valid states: available, error")
    assert_fault(api.post(path, {"os-reset_status": {"status": "error"}}, token=admin), 404)
    assert_fault(api.post(path, {"reset_status": {"status": "error"}}, token=admin, version="2.6"), 404)
    assert_fault(api.post(f"/v2/snapshots/{uuid.uuid4()}/action", {"reset_status": {"status": "error"}},
                          token=admin), 404)
    assert snapshot_row(api, snap["id"]).status == "available"
    assert api.post(path, {"reset_status": {"status": "error"}}, token=admin).status_code == 202
    assert snapshot_row(api, snap["id"]).status == "error"
    assert api.post(path, {"os-reset_status": {"status": "creating"}}, token=admin,
                    version="2.6").status_code == 202
    assert snapshot_row(api, snap["id"]).status == "creating"


def test_force_delete_is_for_admins_and_deletes_from_any_status(api, types):
    share = available_share(api, share_type=types["full"])
    snap = create_snapshot(api, share["id"], available=False)  # still creating
    path = f"/v2/snapshots/{snap['id']}/action"
    message = assert_fault(api.post(path, {"force_delete": None}), 403)
    assert message == "Policy doesn't allow share_snapshot:force_delete to be performed."
    assert_fault(api.post(path, {"os-force_delete": None}, token=api.tokens["admin"]), 404)
    assert api.post(path, {"force_delete": None}, token=api.tokens["admin"]).status_code == 202
    assert snapshot_row(api, snap["id"]).status == "deleting"
    assert [j.operation for j in jobs_of(api, snap["id"])] == ["create_snapshot", "delete_snapshot"]


def test_unknown_and_unsupported_snapshot_actions_are_400(api, types):
    share = available_share(api, share_type=types["full"])
    snap = create_snapshot(api, share["id"])
    path = f"/v2/snapshots/{snap['id']}/action"
    assert "no such action" in assert_fault(api.post(path, {"explode": {}}), 400)
    assert "not supported" in assert_fault(api.post(path, {"unmanage": None}), 400)
    assert_fault(api.post(path, {"force_delete": None, "reset_status": {}}), 400)


def test_share_with_snapshots_cannot_be_deleted(api, types):
    share = available_share(api, share_type=types["full"])
    snap = create_snapshot(api, share["id"])
    message = assert_fault(api.delete(f"/v2/shares/{share['id']}"), 403, "forbidden")
    assert message == "Invalid share: Share still has 1 dependent snapshots."
    assert api.share_row(share["id"]).status == "available"
    assert [j.operation for j in jobs_of(api, share["id"])] == ["create_share"]
    set_snapshot_status(api, snap["id"], "error")  # in any status
    assert_fault(api.delete(f"/v2/shares/{share['id']}"), 403)
    # Once the snapshot is gone (soft-deleted), the share can go.
    with api.services.db.write() as s:
        s.execute(sa.update(ShareSnapshot).where(ShareSnapshot.id == snap["id"])
                  .values(status="deleted", deleted_at=sa.func.now()))
    assert api.delete(f"/v2/shares/{share['id']}").status_code == 202


# --- a new share from a snapshot ----------------------------------------------------


def test_share_from_snapshot_inherits_size_type_zone_and_backend(api, types):
    parent = available_share(api, share_type=types["full"], size=2)
    snap = create_snapshot(api, parent["id"])
    # A roomier pool elsewhere: the clone still goes where its snapshot is
    # (CreateFromSnapshotFilter, in the API's scheduler).
    report_pool(api.services.db, host=ROOMIER, total_gb=10 * POOL_TOTAL_GB)
    try:
        result = api.post("/v2/shares", {"share": {"share_proto": "NFS", "snapshot_id": snap["id"],
                                                   "name": "clone"}})
    finally:
        with api.services.db.write() as s:
            s.execute(sa.delete(Pool).where(Pool.host == ROOMIER))
            s.execute(sa.text("DELETE FROM services WHERE host = 'roomier@b1'"))
    assert result.status_code == 200, result.text
    clone = result.json["share"]
    assert (clone["size"], clone["snapshot_id"], clone["status"]) == (2, snap["id"], "creating")
    assert clone["share_type"] == parent["share_type"]
    assert clone["availability_zone"] == parent["availability_zone"]
    parent_row, clone_row = api.share_row(parent["id"]), api.share_row(clone["id"])
    assert (clone_row.backend, clone_row.host) == (parent_row.backend, parent_row.host)
    (job,) = jobs_of(api, clone["id"])
    assert (job.operation, job.retry_of, job.backend) == ("create_share", None, parent_row.backend)
    assert json.loads(job.factory_kwargs)["from_snapshot"] is True
    assert json.loads(job.store)["snapshot_id"] == snap["id"]
    bigger = api.post("/v2/shares", {"share": {"share_proto": "NFS", "size": 3, "snapshot_id": snap["id"],
                                               "share_type": types["full"]}})
    assert bigger.json["share"]["size"] == 3


def test_share_from_snapshot_errors(api, types):
    parent = available_share(api, share_type=types["full"], size=2)
    snap = create_snapshot(api, parent["id"])

    def create(**fields):
        return api.post("/v2/shares", {"share": {"share_proto": "NFS", "snapshot_id": snap["id"], **fields}})

    before = api.count(Share)
    message = assert_fault(create(size=1), 400)
    assert message == "Invalid input received: Share size '1' must be equal or greater than snapshot size."
    message = assert_fault(create(share_type=types["snap_only"]), 400)
    assert message.startswith("Invalid input received: Invalid share type specified: the requested share "
                              "type must match the type of the source share.")
    assert_fault(create(share_type="no-such-type"), 404)
    assert "availability zone" in assert_fault(create(availability_zone="elsewhere"), 400)
    assert_fault(create(share_network_id=str(uuid.uuid4())), 400)
    assert_fault(api.post("/v2/shares", {"share": {"share_proto": "NFS", "size": 2,
                                                   "snapshot_id": str(uuid.uuid4())}}), 404)
    assert_fault(create(size=2, share_proto="CIFS"), 400)
    # Another project's snapshot does not exist for the caller.
    assert_fault(api.post("/v2/shares", {"share": {"share_proto": "NFS", "snapshot_id": snap["id"]}},
                          token=api.tokens["bob"]), 404)
    set_snapshot_status(api, snap["id"], "creating")
    assert assert_fault(create(), 400) == "Invalid share snapshot: status must be 'available'."
    # A parent whose type does not allow it.
    plain = available_share(api, share_type=types["snap_only"])
    plain_snap = create_snapshot(api, plain["id"])
    message = assert_fault(api.post("/v2/shares", {"share": {"share_proto": "NFS", "size": 1,
                                                             "snapshot_id": plain_snap["id"]}}), 400)
    assert message == (f"A new share may not be created from snapshot '{plain_snap['id']}', because the "
                       "snapshot's parent share does not have that capability.")
    assert api.count(Share) == before + 1  # only the plain parent


# --- revert -------------------------------------------------------------------------


def revert(api, share_id, snapshot_id, **kw):
    return api.post(f"/v2/shares/{share_id}/action", {"revert": {"snapshot_id": snapshot_id}}, **kw)


def test_revert_sets_share_reverting_and_snapshot_restoring_and_posts_a_job(api, types):
    share = available_share(api, share_type=types["full"])
    create_snapshot(api, share["id"])
    latest = create_snapshot(api, share["id"])
    result = revert(api, share["id"], latest["id"])
    assert result.status_code == 202 and result.text == ""
    assert api.share_row(share["id"]).status == "reverting"
    assert snapshot_row(api, latest["id"]).status == "restoring"
    assert [j.operation for j in jobs_of(api, share["id"])] == ["create_share", "revert_to_snapshot"]
    # A second revert meanwhile: the share is busy.
    assert "must be in 'available' state" in assert_fault(revert(api, share["id"], latest["id"]), 409)


def test_revert_errors_in_manilas_order_and_codes(api, types):
    share = available_share(api, share_type=types["full"])
    older = create_snapshot(api, share["id"])
    latest = create_snapshot(api, share["id"])
    sid, other = share["id"], available_share(api, share_type=types["full"])
    other_snap = create_snapshot(api, other["id"])

    assert_fault(revert(api, sid, latest["id"], version="2.26"), 404)
    assert_fault(api.post(f"/v2/shares/{sid}/action", {"revert": {}}), 400)
    assert_fault(api.post(f"/v2/shares/{sid}/action", {"revert": {"snapshot_id": "not-a-uuid"}}), 400)
    assert_fault(api.post(f"/v2/shares/{sid}/action", {"revert": None}), 400)
    assert_fault(revert(api, str(uuid.uuid4()), latest["id"]), 404)
    message = assert_fault(revert(api, sid, str(uuid.uuid4())), 400)  # Manila: a missing snapshot is 400
    assert message.endswith("could not be found.")
    message = assert_fault(revert(api, sid, other_snap["id"]), 400)
    assert message == f"Snapshot {other_snap['id']} is not associated with share {sid}."
    message = assert_fault(revert(api, sid, older["id"]), 409)
    assert message == (f"Snapshot {older['id']} may not be restored because it is not the most recent "
                       f"snapshot of share {sid}. Currently the latest snapshot is {latest['id']}.")
    set_snapshot_status(api, latest["id"], "error")
    message = assert_fault(revert(api, sid, latest["id"]), 409)
    assert message == (f"Snapshot {latest['id']} is in 'error' state, but it must be in 'available' "
                       "state to be restored.")
    set_snapshot_status(api, latest["id"], "available")
    api.set_share_status(sid, "error")
    message = assert_fault(revert(api, sid, latest["id"]), 409)
    assert message == (f"Share {sid} is in 'error' state, but it must be in 'available' state to be "
                       "reverted to a snapshot.")
    api.set_share_status(sid, "available")
    with api.services.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == sid).values(access_rules_status="syncing"))
    assert "access rules that are not active" in assert_fault(revert(api, sid, latest["id"]), 409)
    with api.services.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == sid).values(access_rules_status="active"))
    # Nothing changed on the way.
    assert api.share_row(sid).status == "available"
    assert {snapshot_row(api, x["id"]).status for x in (older, latest)} == {"available"}
    assert [j.operation for j in jobs_of(api, sid)] == ["create_share"]


def test_revert_needs_the_types_capability(api, types):
    share = available_share(api, share_type=types["snap_only"])
    snap = create_snapshot(api, share["id"])
    message = assert_fault(revert(api, share["id"], snap["id"]), 400)
    assert message == (f"Share {share['id']} may not be reverted to snapshot {snap['id']}, because the "
                       "share does not have that capability.")


def test_manilaclient_action_names_reach_the_right_handler(api, types):
    """``revert`` is no longer in the unsupported list, and others still are."""
    share = available_share(api, share_type=types["full"])
    assert "not supported" in assert_fault(api.post(f"/v2/shares/{share['id']}/action",
                                                    {"unmanage": None}), 400)


# --- malformed input ------------------------------------------------------------------


JUNK = [None, True, 0, -1, 10 ** 100, 1.5, "", "x" * 5000, "\x00", "☃", "../../etc", [], {}, {"a": [1]}]


def test_malformed_snapshot_requests_are_4xx_and_change_nothing(api, types):
    share = available_share(api, share_type=types["full"])
    snap = create_snapshot(api, share["id"])
    before = (api.count(ShareSnapshot), api.count(Job))
    fields = {"share_id": share["id"], "name": "n", "description": "d"}
    for field, junk in itertools.product(["share_id", "name", "description"], JUNK):
        result = api.post("/v2/snapshots", {"snapshot": {**fields, field: junk}})
        if result.status_code == 202:  # junk that is a valid name or description (None, "")
            assert field != "share_id", (junk, result.text)
            set_snapshot_status(api, result.json["snapshot"]["id"], "available")
            before = (before[0] + 1, before[1] + 1)
        else:
            assert 400 <= result.status_code < 500
    for junk in JUNK:
        for path, method in ((f"/v2/snapshots/{snap['id']}", "PUT"), ("/v2/snapshots", "POST"),
                             (f"/v2/snapshots/{snap['id']}/action", "POST"),
                             (f"/v2/shares/{share['id']}/action", "POST")):
            body = {"snapshot": junk} if not path.endswith("action") else {"revert": junk}
            result = api.request(method, path, json_body=body)
            assert result.status_code < 500
            if path.endswith("/snapshots") and result.status_code == 202:
                raise AssertionError(junk)
        for action in ("reset_status", "force_delete"):
            api.request("POST", f"/v2/snapshots/{snap['id']}/action", json_body={action: junk})
    assert (api.count(ShareSnapshot), api.count(Job)) == before
    for raw in ("", "null", "[]", "{", '"x"', "{}"):
        for path in ("/v2/snapshots", f"/v2/snapshots/{snap['id']}/action"):
            assert 400 <= api.request("POST", path, body=raw, headers={"Content-Type": "application/json"}
                                      ).status_code < 500
    assert snapshot_row(api, snap["id"]).status == "available"


def test_a_revert_job_that_never_runs_gives_the_snapshot_back(api, types):
    """The conductor's safety net (a flow that cannot be loaded, a job never
    posted): the share ends reverting_error with a message, and the snapshot
    is available again rather than stuck restoring."""
    from shareflow.db.models import Message
    from shareflow.engine.outcomes import OutcomeRecorder
    from shareflow.wiring import utcnow

    share = available_share(api, share_type=types["full"])
    snap = create_snapshot(api, share["id"])
    assert revert(api, share["id"], snap["id"]).status_code == 202
    job = next(j for j in jobs_of(api, share["id"]) if j.operation == "revert_to_snapshot")
    recorder = OutcomeRecorder(api.services.db, utcnow)
    assert recorder.resource_failed(job.id, None, "an internal error occurred")
    assert not recorder.resource_failed(job.id, None, "an internal error occurred")  # once only
    assert api.share_row(share["id"]).status == "reverting_error"
    assert snapshot_row(api, snap["id"]).status == "available"
    with api.services.db.read() as s:
        texts = [m.user_message for m in s.scalars(sa.select(Message).where(Message.resource_id == share["id"]))]
    assert texts == ["revert to snapshot: the job could not be run: an internal error occurred"]


def test_revert_to_a_larger_snapshot_counts_the_growth_against_the_quota(api, types):
    """Manila reserves the growth when a revert makes the share larger (the
    share was shrunk after the snapshot); over quota it answers 403."""
    from shareflow.auth.tokens import TokenFile

    project = f"proj-q-{uuid.uuid4().hex[:6]}"
    token = TokenFile(api.config.auth.tokens_file).issue(project, "carol")[0]
    admin = Caller(project_id="adminproj", user_id="root", is_admin=True)
    share = available_share(api, token=token, share_type=types["full"], size=2)
    snap = create_snapshot(api, share["id"], token=token)
    with api.services.db.write() as s:  # as after a shrink to 1 GiB
        s.execute(sa.update(Share).where(Share.id == share["id"]).values(size=1))
    api.services.quotas.update(admin, project, {"gigabytes": 1})
    message = assert_fault(revert(api, share["id"], snap["id"], token=token), 403)
    assert message == (f"Quota exceeded for {project}. Reverting share {share['id']} to snapshot "
                       f"{snap['id']} will increase the share's size by 1G.")
    assert api.share_row(share["id"]).status == "available"
    api.services.quotas.update(admin, project, {"gigabytes": 2})
    assert revert(api, share["id"], snap["id"], token=token).status_code == 202
    row = api.share_row(share["id"])
    assert (row.status, row.size, row.pending_size) == ("reverting", 1, 2)
