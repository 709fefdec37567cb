"""``/quota-sets``, ``/os-quota-sets`` and ``/limits``; quotas enforced on share
create (413 overLimit, nothing written) and usage counted from the live rows.

No conductor runs here: a created share stays ``creating`` and counts; tests
move shares to ``error`` or set ``pending_size`` themselves, as a job would.
Each test uses projects of its own, so quotas and usage do not leak between tests.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from shareflow.auth.tokens import TokenFile
from shareflow.config import QuotaConfig
from shareflow.db.models import Job, Quota, Share, ShareSnapshot
from shareflow.exceptions import OverLimit
from shareflow.services import quotas as quotas_service
from shareflow.wiring import utcnow
from tests.api.conftest import assert_fault

DEFAULTS = {"shares": 50, "gigabytes": 1000, "snapshots": 50, "snapshot_gigabytes": 1000}
SHARES_OVER = "Maximum number of shares allowed (2) either per project/user or share type quota is exceeded."
GIGABYTES_OVER = "Requested share exceeds allowed project/user or share type gigabytes quota."


@pytest.fixture
def project(api):
    """A fresh project and a member token for it."""
    project_id = f"q-{uuid.uuid4().hex[:10]}"
    token, _ = TokenFile(api.config.auth.tokens_file).issue(project_id, f"user-{project_id}")
    yield project_id, token
    with api.services.db.write() as s:
        s.execute(sa.delete(Quota).where(Quota.project_id == project_id))


def admin(api):
    return api.tokens["admin"]


def set_quota(api, project_id: str, **values) -> dict:
    result = api.put(f"/v2/quota-sets/{project_id}", {"quota_set": {"tenant_id": project_id, **values}},
                     token=admin(api))
    assert result.status_code == 200, result.text
    return result.json["quota_set"]


def show(api, project_id: str, **kw) -> dict:
    result = api.get(f"/v2/quota-sets/{project_id}", token=admin(api), **kw)
    assert result.status_code == 200, result.text
    return result.json["quota_set"]


def limits(api, token: str, version: str = "2.65") -> dict:
    result = api.get("/v2/limits", token=token, version=version)
    assert result.status_code == 200, result.text
    assert result.json["limits"]["rate"] == []
    return result.json["limits"]["absolute"]


def create(api, token: str, size: int = 1):
    return api.post("/v2/shares", {"share": {"size": size, "share_proto": "NFS"}}, token=token)


def shares_of(api, project_id: str) -> int:
    return api.count(Share, project_id=project_id)


# --- quota-sets: show, defaults, detail ---------------------------------------------------


def test_a_new_project_has_the_configured_defaults_and_manilas_fields(api, project):
    project_id, token = project
    result = api.get(f"/v2/quota-sets/{project_id}", token=token)
    quota_set = result.json["quota_set"]
    assert {k: quota_set[k] for k in DEFAULTS} == DEFAULTS
    assert quota_set["id"] == project_id
    # What this service does not limit is unlimited, at Manila's microversions.
    for key in ("share_networks", "share_groups", "share_group_snapshots", "share_replicas",
                "replica_gigabytes", "per_share_gigabytes"):
        assert quota_set[key] == -1
    assert "backups" not in quota_set and "encryption_keys" not in quota_set

    defaults = api.get(f"/v2/quota-sets/{project_id}/defaults", token=token).json["quota_set"]
    assert {k: defaults[k] for k in DEFAULTS} == DEFAULTS and defaults["id"] == project_id
    early = api.get(f"/v2/quota-sets/{project_id}", token=token, version="2.7").json["quota_set"]
    assert set(early) == {*DEFAULTS, "id", "share_networks"}


def test_defaults_come_from_the_configuration(api, project):
    project_id, _ = project
    assert api.config.quotas == QuotaConfig()
    assert api.services.quotas.defaults() == DEFAULTS


def test_members_read_only_their_own_projects_quotas(api, project):
    project_id, token = project
    message = assert_fault(api.get("/v2/quota-sets/proj-b", token=token), 403)
    assert message == "Access was denied to this resource."
    # Admins read any project's; defaults are not secret.
    assert api.get(f"/v2/quota-sets/{project_id}", token=admin(api)).status_code == 200
    assert api.get("/v2/quota-sets/proj-b/defaults", token=token).status_code == 200


def test_detail_shows_usage_from_2_25(api, project):
    project_id, token = project
    assert create(api, token, size=3).status_code == 200
    assert_fault(api.get(f"/v2/quota-sets/{project_id}/detail", token=token, version="2.24"), 404)
    detail = api.get(f"/v2/quota-sets/{project_id}/detail", token=token).json["quota_set"]
    assert detail["shares"] == {"limit": 50, "in_use": 1, "reserved": 0}
    assert detail["gigabytes"] == {"limit": 1000, "in_use": 3, "reserved": 0}
    assert detail["snapshots"] == {"limit": 50, "in_use": 0, "reserved": 0}
    assert detail["share_networks"] == {"limit": -1, "in_use": 0, "reserved": 0}


def test_routes_by_microversion_and_with_the_project_in_the_path(api, project):
    project_id, token = project
    legacy = api.get(f"/v2/os-quota-sets/{project_id}", token=token, version="2.6")
    assert legacy.json["quota_set"]["shares"] == 50
    assert api.get(f"/v2/os-quota-sets/{project_id}/defaults", token=token, version=None).status_code == 200
    assert_fault(api.get(f"/v2/os-quota-sets/{project_id}", token=token, version="2.7"), 404)
    assert_fault(api.get(f"/v2/quota-sets/{project_id}", token=token, version="2.6"), 404)
    assert_fault(api.get(f"/v2/quota-sets/{project_id}/defaults", token=token, version="2.6"), 404)
    in_path = api.get(f"/v2/{project_id}/quota-sets/{project_id}", token=token)
    assert in_path.json["quota_set"]["id"] == project_id
    # The legacy route takes updates too (at its own microversions).
    updated = api.put(f"/v2/os-quota-sets/{project_id}", {"quota_set": {"shares": 7}},
                      token=admin(api), version="2.6")
    assert updated.json["quota_set"]["shares"] == 7
    assert api.delete(f"/v2/os-quota-sets/{project_id}", token=admin(api), version="2.6").status_code == 202
    assert show(api, project_id)["shares"] == 50


def test_user_id_and_share_type_arguments(api, project):
    project_id, token = project
    base = f"/v2/quota-sets/{project_id}"
    message = assert_fault(api.get(base, token=token, params={"share_type": "default"}, version="2.38"), 400)
    assert "Use 2.39 or greater microversion" in message
    message = assert_fault(api.get(base, token=token, params={"share_type": "nope"}), 404)
    assert message == "Share type with name or id 'nope' not found."
    assert_fault(api.get(base, token=token, params={"share_type": "default", "user_id": "u"}), 400)
    # Reading with either shows the project's quotas (the only ones that bind here).
    by_type = api.get(base, token=token, params={"share_type": "default"}).json["quota_set"]
    assert by_type["shares"] == 50 and "share_networks" not in by_type
    assert api.get(base, token=token, params={"user_id": "someone"}).json["quota_set"]["shares"] == 50
    # Setting them is refused; deleting them deletes nothing (there are none).
    set_quota(api, project_id, shares=9)
    message = assert_fault(api.put(base, {"quota_set": {"shares": 3}}, token=admin(api),
                                   params={"user_id": "someone"}), 400)
    assert "not supported" in message
    assert api.delete(base, token=admin(api), params={"user_id": "someone"}).status_code == 202
    assert api.delete(base, token=admin(api), params={"share_type": "default"}).status_code == 202
    assert show(api, project_id)["shares"] == 9


# --- quota-sets: update and delete ------------------------------------------------------


def test_admin_updates_and_deletes_a_projects_quotas(api, project):
    project_id, token = project
    result = api.put(f"/v2/quota-sets/{project_id}",
                     {"quota_set": {"tenant_id": project_id, "shares": 2, "gigabytes": "20",
                                    "snapshots": -1, "share_networks": -1}},
                     token=admin(api))
    quota_set = result.json["quota_set"]
    assert quota_set["shares"] == 2 and quota_set["gigabytes"] == 20 and quota_set["snapshots"] == -1
    assert quota_set["snapshot_gigabytes"] == 1000 and "id" not in quota_set  # as Manila answers
    assert api.get(f"/v2/quota-sets/{project_id}", token=token).json["quota_set"]["shares"] == 2
    assert limits(api, token)["maxTotalShares"] == 2

    deleted = api.delete(f"/v2/quota-sets/{project_id}", token=admin(api))
    assert deleted.status_code == 202 and deleted.text == ""
    assert {k: show(api, project_id)[k] for k in DEFAULTS} == DEFAULTS
    assert api.count(Quota, project_id=project_id) == 0


def test_members_may_not_change_quotas(api, project):
    project_id, token = project
    message = assert_fault(api.put(f"/v2/quota-sets/{project_id}", {"quota_set": {"shares": 500}},
                                   token=token), 403)
    assert message == "Policy doesn't allow quota_set:update to be performed."
    assert_fault(api.put(f"/v2/quota-sets/{project_id}", body="not json", token=token), 400)
    assert_fault(api.delete(f"/v2/quota-sets/{project_id}", token=token), 403)
    assert api.count(Quota, project_id=project_id) == 0


@pytest.mark.parametrize(
    "quota_set,message",
    [
        ({"shares": -2}, "Quota limit must be -1 or greater."),
        ({"gigabytes": -100}, "Quota limit must be -1 or greater."),
        ({"shares": "many"}, "Quota 'many' for shares should be integer."),
        ({"shares": 1.5}, "Quota '1.5' for shares should be integer."),
        ({"shares": True}, "should be integer"),
        ({"shares": [3]}, "should be integer"),
        ({"shares": {"a": 1}}, "should be integer"),
        ({"shares": 2 ** 31}, "Quota limit must be less than 2147483648."),
        ({"shares": 3, "bogus": 1}, "Bad key(s) bogus in quota_set."),
        ({}, "Must supply at least one quota field to update."),
        ({"tenant_id": "x", "force": True}, "Must supply at least one quota field to update."),
        ({"bogus": 1}, "Must supply at least one quota field to update."),
        ({"shares": None}, "Must supply at least one quota field to update."),
        ({"share_networks": 5}, "not limited by this service"),
        ({"per_share_gigabytes": 10}, "not limited by this service"),
        ({"shares": 3, "force": "perhaps"}, "force must be a boolean"),
        ({"shares": 3, "snapshots": -7}, "Quota limit must be -1 or greater."),
    ],
)
def test_bad_updates_are_400_and_change_nothing(api, project, quota_set, message):
    project_id, _ = project
    result = api.put(f"/v2/quota-sets/{project_id}", {"quota_set": quota_set}, token=admin(api))
    assert message in assert_fault(result, 400)
    assert api.count(Quota, project_id=project_id) == 0


@pytest.mark.parametrize("body", [[], "quota", {"quota_set": []}, {"quota_set": "x"}, {"quota_set": None}])
def test_malformed_update_bodies_are_400(api, project, body):
    project_id, _ = project
    assert_fault(api.put(f"/v2/quota-sets/{project_id}", body, token=admin(api)), 400)
    assert api.count(Quota, project_id=project_id) == 0


def test_keys_newer_than_the_microversion_are_400(api, project):
    project_id, _ = project
    message = assert_fault(api.put(f"/v2/quota-sets/{project_id}", {"quota_set": {"share_groups": 5}},
                                   token=admin(api), version="2.39"), 400)
    assert message == ("'share_groups' key is not supported by this microversion. Use 2.40 or greater "
                       "microversion to be able to use 'share_groups' quotas.")
    message = assert_fault(api.put(f"/v2/quota-sets/{project_id}", {"quota_set": {"backups": 5}},
                                   token=admin(api)), 400)
    assert "Use 2.80 or greater" in message


@pytest.mark.parametrize("bad", ["%00", "x" * 300])
def test_impossible_project_ids_are_400(api, bad):
    assert_fault(api.get(f"/v2/quota-sets/{bad}", token=admin(api)), 400)
    assert_fault(api.put(f"/v2/quota-sets/{bad}", {"quota_set": {"shares": 1}}, token=admin(api)), 400)
    assert_fault(api.delete(f"/v2/quota-sets/{bad}", token=admin(api)), 400)


def test_lowering_below_usage_is_refused_unless_forced(api, project):
    project_id, token = project
    for _ in range(2):
        assert create(api, token).status_code == 200
    message = assert_fault(api.put(f"/v2/quota-sets/{project_id}", {"quota_set": {"shares": 1}},
                                   token=admin(api)), 400)
    assert message == "Quota value 1 for shares is smaller than already used and reserved 2."
    # From unlimited, Manila's other check and message.
    set_quota(api, project_id, shares=-1)
    message = assert_fault(api.put(f"/v2/quota-sets/{project_id}", {"quota_set": {"shares": 1}},
                                   token=admin(api)), 400)
    assert message == "Quota limit must be greater than 2."
    assert show(api, project_id)["shares"] == -1
    # Equal to the usage is fine; force may go below it, and then nothing more fits.
    assert set_quota(api, project_id, shares=2)["shares"] == 2
    assert set_quota(api, project_id, shares=1, gigabytes=1, force=True)["shares"] == 1
    before = shares_of(api, project_id)
    assert_fault(create(api, token), 413, "overLimit")
    assert shares_of(api, project_id) == before


# --- enforcement on create ------------------------------------------------------------


def test_the_share_over_the_count_is_413_and_nothing_is_written(api, project):
    project_id, token = project
    set_quota(api, project_id, shares=2, gigabytes=10)
    first = create(api, token).json["share"]
    create(api, token)
    jobs = api.count(Job)
    result = create(api, token)
    assert assert_fault(result, 413, "overLimit") == SHARES_OVER
    assert shares_of(api, project_id) == 2 and api.count(Job) == jobs
    # Another project is not affected.
    assert api.post("/v2/shares", {"share": {"size": 1, "share_proto": "NFS"}},
                    token=api.tokens["bob"]).status_code == 200
    # A failed create (status error) gives its share back.
    api.set_share_status(first["id"], "error")
    assert create(api, token).status_code == 200
    assert_fault(create(api, token), 413, "overLimit")


def test_the_share_over_the_gigabytes_is_413_with_manilas_message(api, project):
    project_id, token = project
    set_quota(api, project_id, shares=10, gigabytes=2)
    assert assert_fault(create(api, token, size=3), 413, "overLimit") == GIGABYTES_OVER
    assert shares_of(api, project_id) == 0
    assert create(api, token, size=2).status_code == 200
    # Size is checked before count, as Manila does.
    set_quota(api, project_id, shares=1)
    assert assert_fault(create(api, token), 413) == GIGABYTES_OVER
    assert shares_of(api, project_id) == 1


def test_unlimited_and_zero(api, project):
    project_id, token = project
    set_quota(api, project_id, shares=0)
    assert_fault(create(api, token), 413)
    set_quota(api, project_id, shares=-1, gigabytes=-1)
    assert create(api, token, size=2000).status_code == 200  # over the default 1000: unlimited now


def test_an_extend_in_progress_holds_its_new_size_until_it_settles(api, project):
    project_id, token = project
    share = create(api, token, size=1).json["share"]
    with api.services.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == share["id"]).values(status="extending", pending_size=5))
    assert limits(api, token)["totalShareGigabytesUsed"] == 5
    set_quota(api, project_id, gigabytes=6)
    assert_fault(create(api, token, size=2), 413)
    # The job ended (either way): pending_size cleared, the share counts its size again.
    with api.services.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == share["id"]).values(status="extending_error",
                                                                         pending_size=None))
    assert limits(api, token)["totalShareGigabytesUsed"] == 1
    assert create(api, token, size=2).status_code == 200


def test_deleted_shares_do_not_count(api, project):
    project_id, token = project
    share = create(api, token, size=4).json["share"]
    assert limits(api, token)["totalSharesUsed"] == 1
    with api.services.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == share["id"]).values(deleted_at=utcnow()))
    absolute = limits(api, token)
    assert absolute["totalSharesUsed"] == 0 and absolute["totalShareGigabytesUsed"] == 0


def test_snapshots_are_counted_and_enforced(api, project):
    project_id, token = project
    share = create(api, token, size=3).json["share"]
    now = utcnow()
    rows = [("available", None), ("creating", None), ("error", None), ("available", now)]
    with api.services.db.write() as s:
        for status, deleted_at in rows:
            s.add(ShareSnapshot(id=str(uuid.uuid4()), share_id=share["id"], project_id=project_id, size=3,
                                share_size=3, share_proto="NFS", status=status, deleted_at=deleted_at,
                                created_at=now))
    absolute = limits(api, token)
    assert absolute["totalShareSnapshotsUsed"] == 2 and absolute["totalSnapshotGigabytesUsed"] == 6
    # What the snapshot service calls before it inserts a snapshot.
    defaults = QuotaConfig(snapshots=3, snapshot_gigabytes=8)
    with pytest.raises(OverLimit) as over:
        with api.services.db.write() as s:
            quotas_service.enforce(s, defaults, project_id, snapshots=1, snapshot_gigabytes=3)
    assert over.value.user_message == (
        "Requested snapshot exceeds allowed project/user or share type gigabytes quota.")
    with pytest.raises(OverLimit) as over:
        with api.services.db.write() as s:
            quotas_service.enforce(s, QuotaConfig(snapshots=2), project_id, snapshots=1, snapshot_gigabytes=3)
    assert over.value.user_message == (
        "Maximum number of snapshots allowed (2) either per project/user or share type quota is exceeded.")
    with api.services.db.write() as s:
        quotas_service.enforce(s, defaults, project_id, snapshots=1, snapshot_gigabytes=2)
        # A shrink (negative amount) is never refused, even over the limit.
        quotas_service.enforce(s, QuotaConfig(gigabytes=0), project_id, gigabytes=-2)


# --- limits -----------------------------------------------------------------------------


def test_limits_are_the_callers_projects_limits_and_usage(api, project):
    project_id, token = project
    set_quota(api, project_id, shares=5, gigabytes=7)
    create(api, token, size=2)
    absolute = limits(api, token)
    assert absolute["maxTotalShares"] == 5 and absolute["totalSharesUsed"] == 1
    assert absolute["maxTotalShareGigabytes"] == 7 and absolute["totalShareGigabytesUsed"] == 2
    assert absolute["maxTotalShareSnapshots"] == 50 and absolute["totalShareSnapshotsUsed"] == 0
    assert absolute["maxTotalSnapshotGigabytes"] == 1000 and absolute["totalSnapshotGigabytesUsed"] == 0
    assert absolute["maxTotalShareNetworks"] == -1 and absolute["maxTotalShareGroups"] == -1
    old = limits(api, token, version=None)
    assert set(old) == {"maxTotalShares", "totalSharesUsed", "maxTotalShareGigabytes",
                        "totalShareGigabytesUsed", "maxTotalShareSnapshots", "totalShareSnapshotsUsed",
                        "maxTotalSnapshotGigabytes", "totalSnapshotGigabytesUsed",
                        "maxTotalShareNetworks", "totalShareNetworksUsed"}
    assert "maxTotalShareReplicas" in limits(api, token, version="2.53")
    assert "maxTotalShareGroups" not in limits(api, token, version="2.57")
    # Another project's limits are its own.
    assert limits(api, api.tokens["bob"])["maxTotalShares"] == 50
    assert api.get(f"/v2/{project_id}/limits", token=token).status_code == 200
