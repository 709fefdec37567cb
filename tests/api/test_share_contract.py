"""Two Manila contract points in process: the share migration actions
(answered as Manila answers them: by microversion, experimental header,
policy, share existence, then 400 as no migration can run here) and another
project's public share (visible, listed only with ``is_public=true``, never
through a member's ``all_tenants``, and 403 on update and delete)."""

from __future__ import annotations

import pytest

from tests.api.conftest import assert_fault

EXPERIMENTAL = {"X-OpenStack-Manila-API-Experimental": "True"}
START_BODY = {"host": "elsewhere@b#p", "writable": True, "preserve_metadata": True,
              "nondisruptive": False, "preserve_snapshots": False}
#: action -> (Manila's first microversion, a valid body)
MIGRATION = {
    "migration_start": ("2.29", START_BODY),
    "migration_complete": ("2.22", None),
    "migration_cancel": ("2.22", None),
    "migration_get_progress": ("2.22", None),
}
BELOW = {"2.29": "2.28", "2.22": "2.21"}


def action(api, share_id, name, info, **kw):
    return api.post(f"/v2/shares/{share_id}/action", {name: info}, **kw)


@pytest.fixture
def share(api):
    created = api.create_share(token=api.tokens["alice"])
    api.set_share_status(created["id"], "available")
    return created


@pytest.mark.parametrize("name", sorted(MIGRATION))
def test_migration_action_below_its_version_or_not_experimental_is_a_bare_404(api, share, name):
    first, info = MIGRATION[name]
    admin = api.tokens["admin"]
    below = action(api, share["id"], name, info, token=admin, version=BELOW[first], headers=EXPERIMENTAL)
    assert assert_fault(below, 404, "itemNotFound") == "The resource could not be found."
    plain = action(api, share["id"], name, info, token=admin, version=first)
    assert assert_fault(plain, 404, "itemNotFound") == "The resource could not be found."


@pytest.mark.parametrize("name", sorted(MIGRATION))
@pytest.mark.parametrize("at", ["first", "2.65"])
def test_migration_action_at_its_version_is_manilas_answer(api, share, name, at):
    first, info = MIGRATION[name]
    ver = first if at == "first" else at
    admin = api.tokens["admin"]
    # A member: Manila's admin-only policy, before anything else.
    member = action(api, share["id"], name, info, version=ver, headers=EXPERIMENTAL)
    assert assert_fault(member, 403, "forbidden") == f"Policy doesn't allow share:{name} to be performed."
    # No such share: Manila's 404 message.
    missing = action(api, "00000000-0000-4000-8000-000000000000", name, info, token=admin, version=ver,
                     headers=EXPERIMENTAL)
    assert assert_fault(missing, 404, "itemNotFound") == (
        "Share 00000000-0000-4000-8000-000000000000 not found.")
    # The share exists: the operation cannot be done here, a clear 400 that changes nothing.
    result = action(api, share["id"], name, info, token=admin, version=ver, headers=EXPERIMENTAL)
    message = assert_fault(result, 400, "badRequest")
    assert result.headers.get("X-OpenStack-Manila-API-Experimental") == "True"
    assert message.startswith("Invalid share: ") and share["id"] in message
    if name == "migration_start":
        assert "does not migrate shares" in message
    else:
        assert message == f"Invalid share: There is no migration being performed for share {share['id']} at this moment."
    row = api.share_row(share["id"])
    assert (row.status, row.task_state) == ("available", None)


@pytest.mark.parametrize("info", [{}, {"host": "h"}, {**START_BODY, "host": 5}, {**START_BODY, "writable": "maybe"},
                                  "x", None])
def test_migration_start_checks_its_body_as_manilas_schema(api, share, info):
    result = action(api, share["id"], "migration_start", info, token=api.tokens["admin"], version="2.29",
                    headers=EXPERIMENTAL)
    assert assert_fault(result, 400, "badRequest").startswith("Invalid input for field/attribute ")


@pytest.mark.parametrize("name", ["os-migrate_share", "migrate_share"])
@pytest.mark.parametrize("ver", ["2.5", "2.7", "2.14", "2.65"])
def test_removed_migrate_share_actions_are_unknown_as_in_manila(api, share, name, ver):
    for share_id in (share["id"], "00000000-0000-4000-8000-000000000000"):
        result = action(api, share_id, name, {"host": "h"}, token=api.tokens["admin"], version=ver,
                        headers=EXPERIMENTAL)
        assert assert_fault(result, 400, "badRequest") == f"There is no such action: {name}"


# --- another project's public share ---------------------------------------------------


@pytest.fixture
def public_share(api):
    body = {"share": {"size": 1, "share_proto": "NFS", "is_public": True, "name": "everyones"}}
    created = api.post("/v2/shares", body, token=api.tokens["admin"]).json["share"]
    api.set_share_status(created["id"], "available")
    return created


def test_members_cannot_update_or_delete_another_projects_public_share(api, public_share):
    sid = public_share["id"]
    bob = api.tokens["bob"]
    assert api.get(f"/v2/shares/{sid}", token=bob).json["share"]["is_public"] is True
    put = api.put(f"/v2/shares/{sid}", {"share": {"name": "mine"}}, token=bob)
    assert assert_fault(put, 403, "forbidden") == "Policy doesn't allow share:update to be performed."
    delete = api.delete(f"/v2/shares/{sid}", token=bob)
    assert assert_fault(delete, 403, "forbidden") == "Policy doesn't allow share:delete to be performed."
    row = api.share_row(sid)
    assert (row.name, row.status, row.deleted_at) == ("everyones", "available", None)
    # The owner still can.
    assert api.put(f"/v2/shares/{sid}", {"share": {"name": "renamed"}},
                   token=api.tokens["admin"]).json["share"]["name"] == "renamed"


@pytest.mark.parametrize("route", ["/v2/shares", "/v2/shares/detail"])
def test_public_shares_of_others_are_listed_only_with_is_public(api, public_share, share, route):
    bob, alice = api.tokens["bob"], api.tokens["alice"]

    def ids(token, **params):
        result = api.get(route, token=token, params=params)
        assert result.status_code == 200
        return {s["id"] for s in result.json["shares"]}

    assert public_share["id"] not in ids(bob)
    assert public_share["id"] not in ids(bob, is_public="false")
    assert public_share["id"] in ids(bob, is_public="true")
    assert public_share["id"] in ids(bob, is_public="True")
    # A member's all_tenants is ignored (Manila's share:list_all_projects is
    # admin-only and not raised): neither the public share nor alice's private one.
    for flag in ("true", "1", ""):
        listed = ids(bob, all_tenants=flag)
        assert public_share["id"] not in listed and share["id"] not in listed
    both = ids(bob, all_tenants="true", is_public="true")
    assert public_share["id"] in both and share["id"] not in both
    assert share["id"] in ids(alice) and public_share["id"] not in ids(alice)
    # The admin's all_tenants lists every project's shares.
    everything = ids(api.tokens["admin"], all_tenants="true")
    assert {public_share["id"], share["id"]} <= everything
    assert_fault(api.get(route, token=bob, params={"is_public": "sometimes"}), 400)


def test_with_count_follows_is_public(api, public_share):
    bob = api.tokens["bob"]
    without = api.get("/v2/shares", token=bob, version="2.42", params={"with_count": "true"}).json
    with_public = api.get("/v2/shares", token=bob, version="2.42",
                          params={"with_count": "true", "is_public": "true"}).json
    assert without["count"] == len(without["shares"]) and public_share["id"] not in {
        s["id"] for s in without["shares"]}
    assert with_public["count"] == len(with_public["shares"]) > without["count"]
    assert public_share["id"] in {s["id"] for s in with_public["shares"]}
