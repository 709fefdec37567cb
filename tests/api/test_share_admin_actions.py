"""Share actions ``extend``, ``shrink``, ``reset_status`` and ``force_delete``
(and their ``os-`` names) in-process: Manila's validation, errors and status
changes, and that a rejected request changes nothing. No conductor runs here:
an accepted request leaves the share in its working status with its job on
the board (the real stack runs them in tests/functional)."""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa

from shareflow.auth.tokens import TokenFile
from shareflow.db.models import Job, Message, Share, ShareSnapshot
from shareflow.domain import states
from shareflow.exceptions import ServiceUnavailable
from tests.api.conftest import assert_fault, report_pool

INTEGER = "New share size must be specified as an integer."


def action(api, share_id: str, body, **kw):
    return api.post(f"/v2/shares/{share_id}/action", body, **kw)


@pytest.fixture(scope="module", autouse=True)
def unlimited(api):
    """These tests make many shares in one project; quotas are not what they test."""
    api.put("/v2/quota-sets/proj-a", {"quota_set": {"shares": -1, "gigabytes": -1}}, token=api.tokens["admin"])


@pytest.fixture
def share(api):
    created = api.create_share(token=api.tokens["alice"], size=2)
    api.set_share_status(created["id"], "available")
    return created


def jobs(api, share_id: str, operation: str) -> list[Job]:
    with api.services.db.read() as s:
        return list(s.scalars(sa.select(Job).where(Job.resource_id == share_id, Job.operation == operation)))


# --- extend ---------------------------------------------------------------------------


def test_extend_is_202_and_takes_the_share_with_its_pending_size(api, share):
    result = action(api, share["id"], {"extend": {"new_size": 3}})
    assert result.status_code == 202 and result.text == ""
    row = api.share_row(share["id"])
    assert (row.status, row.size, row.pending_size) == ("extending", 2, 3)
    (job,) = jobs(api, share["id"], "extend_share")
    assert job.project_id == "proj-a"
    assert api.get(f"/v2/shares/{share['id']}").json["share"]["status"] == "extending"
    # Busy now: a second extend, a shrink and a delete are refused.
    message = assert_fault(action(api, share["id"], {"extend": {"new_size": 4}}), 400, "badRequest")
    assert message == (f"Invalid share: Share {share['id']} status must be 'available' to extend, "
                       "but current status is: extending.")
    assert_fault(action(api, share["id"], {"shrink": {"new_size": 1}}), 400)
    assert_fault(api.delete(f"/v2/shares/{share['id']}"), 403)
    assert len(jobs(api, share["id"], "extend_share")) == 1


@pytest.mark.parametrize("info", [{"new_size": "x"}, {"new_size": 1.5}, {"new_size": None}, {"new_size": True},
                                  {"new_size": -3}, {"new_size": "-3"}, {"new_size": " 3"}, {"new_size": []},
                                  {"new_size": 2 ** 31}, {}, {"size": 3}, None, "3", 3, []])
def test_extend_and_shrink_need_an_integer_size(api, share, info):
    for name in ("extend", "shrink"):
        assert assert_fault(action(api, share["id"], {name: info}), 400) == INTEGER
    assert api.share_row(share["id"]).status == "available" and not jobs(api, share["id"], "extend_share")


def test_extend_must_grow_and_accepts_digit_strings(api, share):
    message = assert_fault(action(api, share["id"], {"extend": {"new_size": 2}}), 400)
    assert message == ("Invalid input received: New size for extend must be greater than current size. "
                       "(current: 2, extended: 2).")
    assert_fault(action(api, share["id"], {"extend": {"new_size": 1}}), 400)
    assert action(api, share["id"], {"extend": {"new_size": "5"}}).status_code == 202
    assert api.share_row(share["id"]).pending_size == 5


def test_extend_of_a_share_that_is_not_available_is_400(api):
    creating = api.create_share(token=api.tokens["alice"])
    message = assert_fault(action(api, creating["id"], {"extend": {"new_size": 2}}), 400)
    assert "status must be 'available' to extend, but current status is: creating" in message


def test_names_by_microversion(api, share):
    sid = share["id"]
    for name in ("extend", "shrink", "reset_status", "force_delete"):
        body = {"new_size": 3} if name in ("extend", "shrink") else {"status": "error"}
        assert_fault(action(api, sid, {name: body}, version="2.6"), 404)
        assert_fault(action(api, sid, {f"os-{name}": body}, version="2.7"), 404)
    assert action(api, sid, {"os-extend": {"new_size": 3}}, version="2.6").status_code == 202
    api.set_share_status(sid, "available")
    assert action(api, sid, {"os-shrink": {"new_size": 1}}, version=None).status_code == 202
    admin = api.tokens["admin"]
    assert action(api, sid, {"os-reset_status": {"status": "available"}}, version="2.0",
                  token=admin).status_code == 202
    assert api.share_row(sid).status == "available"
    assert action(api, f"{sid}", {"os-force_delete": None}, version="2.6", token=admin).status_code == 202
    assert api.share_row(sid).status == "deleting"


def test_force_extend_is_for_admins_from_2_64(api, share):
    sid = share["id"]
    body = {"extend": {"new_size": 3, "force": True}}
    message = assert_fault(action(api, sid, body), 403, "forbidden")
    assert message == "Policy doesn't allow share:force_extend to be performed."
    assert_fault(action(api, sid, {"extend": {"new_size": 3, "force": "maybe"}}, token=api.tokens["admin"]), 400)
    # Before 2.64 force is not part of the request: ignored.
    assert action(api, sid, body, version="2.63").status_code == 202
    api.set_share_status(sid, "available")
    with api.services.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == sid).values(size=3, pending_size=None))
    assert action(api, sid, {"extend": {"new_size": 4, "force": "true"}}, token=api.tokens["admin"]).status_code == 202


def test_extend_without_room_leaves_the_share_available_with_a_message(api, share):
    report_pool(api.services.db, total_gb=4)
    try:
        # Promised on the pool: every live share's size; 4 GiB cannot take 3 more.
        result = action(api, share["id"], {"extend": {"new_size": 50}})
        assert result.status_code == 202
        row = api.share_row(share["id"])
        assert (row.status, row.size, row.pending_size) == ("available", 2, None)
        assert not jobs(api, share["id"], "extend_share")
        with api.services.db.read() as s:
            (msg,) = s.scalars(sa.select(Message).where(Message.resource_id == share["id"])).all()
        assert (msg.action_id, msg.detail_id, msg.project_id) == ("008", "002", "proj-a")
        assert msg.user_message.startswith("extend: No storage could be allocated")
        # force skips the check (the driver still refuses what cannot fit at all).
        forced = action(api, share["id"], {"extend": {"new_size": 50, "force": True}}, token=api.tokens["admin"])
        assert forced.status_code == 202 and api.share_row(share["id"]).status == "extending"
    finally:
        report_pool(api.services.db)


def test_extend_over_quota_is_403_and_changes_nothing(api):
    token, _ = TokenFile(api.config.auth.tokens_file).issue("proj-quota", "q")
    created = api.create_share(token=token, size=1)
    api.set_share_status(created["id"], "available")
    api.put("/v2/quota-sets/proj-quota", {"quota_set": {"gigabytes": 2}}, token=api.tokens["admin"])
    message = assert_fault(action(api, created["id"], {"extend": {"new_size": 3}}, token=token), 403)
    assert message == "Requested share exceeds allowed project/user or share type gigabytes quota."
    row = api.share_row(created["id"])
    assert (row.status, row.pending_size) == ("available", None)
    assert action(api, created["id"], {"extend": {"new_size": 2}}, token=token).status_code == 202


def test_a_job_that_cannot_be_posted_is_undone(api, share, monkeypatch):
    def refuse(*args, **kwargs):
        raise ServiceUnavailable("board down", user_message="the coordination service is unavailable")

    def unchecked(body, token):
        # 503 is the right answer here, which check_response (no 5xx) would refuse.
        return api.client.simulate_post(f"/v2/shares/{share['id']}/action", json=body, headers={
            "X-Auth-Token": token, "X-OpenStack-Manila-API-Version": "2.65"})

    monkeypatch.setattr(api.services.poster, "post", refuse)
    assert_fault(unchecked({"extend": {"new_size": 3}}, api.tokens["alice"]), 503)
    assert_fault(unchecked({"shrink": {"new_size": 1}}, api.tokens["alice"]), 503)
    row = api.share_row(share["id"])
    assert (row.status, row.size, row.pending_size) == ("available", 2, None)
    api.set_share_status(share["id"], "error")
    assert_fault(unchecked({"force_delete": None}, api.tokens["admin"]), 503)
    assert api.share_row(share["id"]).status == "error"
    assert not jobs(api, share["id"], "extend_share") and not jobs(api, share["id"], "delete_share")


def test_other_projects_share_is_404(api):
    bobs = api.create_share(token=api.tokens["bob"])
    api.set_share_status(bobs["id"], "available")
    for body in ({"extend": {"new_size": 3}}, {"shrink": {"new_size": 1}}):
        assert_fault(action(api, bobs["id"], body), 404)
    assert api.share_row(bobs["id"]).status == "available"


# --- shrink ---------------------------------------------------------------------------


def test_shrink_is_202_and_must_stay_positive_and_smaller(api, share):
    sid = share["id"]
    for size in (2, 3, 0):
        message = assert_fault(action(api, sid, {"shrink": {"new_size": size}}), 400)
        assert message == ("Invalid input received: New size for shrink must be less than current size and "
                           f"greater than 0 (current: 2, new: {size}).")
    assert action(api, sid, {"shrink": {"new_size": 1}}).status_code == 202
    row = api.share_row(sid)
    assert (row.status, row.size, row.pending_size) == ("shrinking", 2, 1)
    assert len(jobs(api, sid, "shrink_share")) == 1


def test_a_refused_shrink_may_be_retried(api, share):
    api.set_share_status(share["id"], "shrinking_possible_data_loss_error")
    assert action(api, share["id"], {"shrink": {"new_size": 1}}).status_code == 202
    for status in ("extending_error", "error", "creating"):
        api.set_share_status(share["id"], status)
        message = assert_fault(action(api, share["id"], {"shrink": {"new_size": 1}}), 400)
        assert message == (f"Invalid share: Share {share['id']} status must in (available, "
                           f"shrinking_possible_data_loss_error) to shrink, but current status is: {status}.")


# --- reset_status -----------------------------------------------------------------------


def test_reset_status_is_for_admins(api, share):
    message = assert_fault(action(api, share["id"], {"reset_status": {"status": "error"}}), 403, "forbidden")
    assert message == "Policy doesn't allow share:reset_status to be performed."
    assert_fault(action(api, share["id"], {"os-reset_status": {"status": "error"}}, version="2.6"), 403)
    assert api.share_row(share["id"]).status == "available"


@pytest.mark.parametrize("status", sorted(states.SHARE_RESETTABLE))
def test_reset_status_sets_any_share_status(api, share, status):
    admin = api.tokens["admin"]
    with api.services.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == share["id"]).values(status="extending", pending_size=9))
    assert action(api, share["id"], {"reset_status": {"status": status}}, token=admin).status_code == 202
    row = api.share_row(share["id"])
    assert row.status == status
    # Only a status some job finishes keeps the size that job asks for.
    assert row.pending_size == (9 if status in ("extending", "shrinking") else None)


@pytest.mark.parametrize("info,expected", [
    ({}, "Must specify 'status'"), (None, "Must specify 'status'"), ("error", "Must specify 'status'"),
    ({"state": "error"}, "Must specify 'status'"), ({"status": "deleted"}, "Invalid state"),
    ({"status": "bogus"}, "Invalid state"), ({"status": "ERROR"}, "Invalid state"),
    ({"status": None}, "Invalid state"), ({"status": ["error"]}, "Invalid state"),
])
def test_reset_status_checks_the_value(api, share, info, expected):
    message = assert_fault(action(api, share["id"], {"reset_status": info}, token=api.tokens["admin"]), 400)
    assert message.startswith(expected)
    if expected == "Invalid state":
        assert "available" in message and "shrinking_possible_data_loss_error" in message
    assert api.share_row(share["id"]).status == "available"


def test_reset_status_of_an_unknown_share_is_404(api):
    assert_fault(action(api, str(uuid.uuid4()), {"reset_status": {"status": "error"}}, token=api.tokens["admin"]),
                 404)


# --- force_delete -----------------------------------------------------------------------


def test_force_delete_is_for_admins(api, share):
    message = assert_fault(action(api, share["id"], {"force_delete": None}), 403)
    assert message == "Policy doesn't allow share:force_delete to be performed."
    assert api.share_row(share["id"]).status == "available" and not jobs(api, share["id"], "delete_share")


@pytest.mark.parametrize("status", ["creating", "extending", "shrinking_possible_data_loss_error",
                                    "error_deleting", "deleting", "reverting_error"])
def test_force_delete_posts_a_delete_job_whatever_the_status(api, share, status):
    with api.services.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == share["id"]).values(status=status, pending_size=4))
    result = action(api, share["id"], {"force_delete": {}}, token=api.tokens["admin"])
    assert result.status_code == 202 and result.text == ""
    row = api.share_row(share["id"])
    assert (row.status, row.pending_size) == ("deleting", None)
    (job,) = jobs(api, share["id"], "delete_share")
    assert job.project_id == "proj-a"  # the owner's: any failure message is for them


def test_force_delete_of_a_share_that_never_reached_a_backend(api):
    huge = api.create_share(token=api.tokens["alice"])
    # What a share no pool could hold looks like (tests/functional has the real one).
    with api.services.db.write() as s:
        s.execute(sa.update(Share).where(Share.id == huge["id"]).values(status="error", backend=None, host=None))
        s.execute(sa.delete(Job).where(Job.resource_id == huge["id"]))
    assert action(api, huge["id"], {"force_delete": None}, token=api.tokens["admin"]).status_code == 202
    assert api.share_row(huge["id"]).deleted_at is not None
    assert not jobs(api, huge["id"], "delete_share")
    assert_fault(api.get(f"/v2/shares/{huge['id']}"), 404)


def test_force_delete_refuses_a_share_with_snapshots(api, share):
    with api.services.db.write() as s:
        s.add(ShareSnapshot(id=str(uuid.uuid4()), share_id=share["id"], project_id="proj-a", size=2,
                            share_size=2, share_proto="NFS", status="available", created_at=datetime.utcnow()))
    message = assert_fault(action(api, share["id"], {"force_delete": None}, token=api.tokens["admin"]), 400)
    assert message == "Invalid share: Share still has 1 dependent snapshots."
    assert api.share_row(share["id"]).status == "available"
