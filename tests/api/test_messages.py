"""``/messages`` (2.37+): list with Manila's filters, show, delete; project
isolation; the "allocate host" failure leaves a message the tenant can read."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from shareflow.db import messages as messages_db
from shareflow.db.models import Job, Message
from shareflow.wiring import utcnow
from tests.api.conftest import assert_fault, report_pool
from tests.api.test_manilaclient import _openstack_cli, tokens_server  # noqa: F401 (a fixture)

FIELDS = {"id", "project_id", "action_id", "detail_id", "message_level", "created_at", "expires_at",
          "request_id", "links", "resource_type", "resource_id", "user_message"}


@pytest.fixture
def messages(api):
    """Messages of proj-a (alice) and proj-b (bob), a minute apart, oldest first."""
    start = utcnow() - timedelta(hours=1)
    specs = [
        ("proj-a", "SHARE", "002", "001", "create: step 'create_volume' failed: injected"),
        ("proj-a", "SHARE", "007", "001", "delete: step 'delete_volume' failed: injected"),
        ("proj-a", "SHARE_SNAPSHOT", "002", "001", "create: step 'create_snapshot' failed"),
        ("proj-b", "SHARE", "002", "001", "create: step 'export' failed: the NFS export server failed"),
    ]
    made = []
    with api.services.db.write() as s:
        for i, (project, rtype, action, detail, text) in enumerate(specs):
            msg = messages_db.create(
                s, now=start + timedelta(minutes=i), project_id=project, resource_type=rtype,
                resource_id=str(uuid.uuid4()), action_id=action, detail_id=detail, user_message=text,
                request_id=f"req-{uuid.uuid4()}",
            )
            made.append(msg.id)
    yield made
    with api.services.db.write() as s:
        s.execute(sa.delete(Message).where(Message.id.in_(made)))


def listed(api, *, token=None, version="2.65", **params) -> list[dict]:
    kw = {} if token is None else {"token": token}
    result = api.get("/v2/messages", params=params or None, version=version, **kw)
    assert result.status_code == 200, result.text
    return result.json["messages"]


def ids(api, messages, **kw) -> list[str]:
    """The listed ids among this test's messages, in the order listed."""
    return [m["id"] for m in listed(api, **kw) if m["id"] in messages]


def test_a_member_lists_its_projects_messages_newest_first_with_manilas_fields(api, messages):
    a1, a2, a3, b1 = messages
    got = listed(api)
    mine = [m for m in got if m["id"] in messages]
    assert [m["id"] for m in mine] == [a3, a2, a1]
    assert all(m["project_id"] == "proj-a" for m in got)
    first = mine[-1]
    assert set(first) == FIELDS
    assert first["resource_type"] == "SHARE" and first["action_id"] == "002" and first["detail_id"] == "001"
    assert first["message_level"] == "ERROR" and first["request_id"].startswith("req-")
    assert first["user_message"].startswith("create: step 'create_volume' failed")
    assert first["expires_at"] > first["created_at"]
    assert first["links"][0]["href"].endswith(f"/v2/messages/{a1}")
    assert ids(api, messages, token=api.tokens["bob"]) == [b1]


def test_filters(api, messages):
    a1, a2, a3, _ = messages
    with api.services.db.read() as s:
        rows = {m.id: m for m in s.scalars(sa.select(Message).where(Message.id.in_(messages)))}
    assert ids(api, messages, resource_id=rows[a2].resource_id) == [a2]
    assert ids(api, messages, request_id=rows[a1].request_id) == [a1]
    assert ids(api, messages, action_id="007") == [a2]
    assert ids(api, messages, resource_type="SHARE_SNAPSHOT") == [a3]
    assert ids(api, messages, resource_type=["SHARE", "SHARE_SNAPSHOT"]) == [a3, a2, a1]
    assert ids(api, messages, detail_id="001", message_level="ERROR") == [a3, a2, a1]
    assert ids(api, messages, detail_id="002") == []
    assert ids(api, messages, sort_key="action_id", sort_dir="asc")[-1] == a2
    assert ids(api, messages, sort_key="created_at", sort_dir="asc") == [a1, a2, a3]
    # Unknown query parameters are ignored, as Manila does.
    assert ids(api, messages, whatever="1") == [a3, a2, a1]


def test_limit_offset_and_bad_paging_or_sorting(api, messages):
    a1, a2, a3, _ = messages
    newest_first = [m["id"] for m in listed(api)]
    assert [m["id"] for m in listed(api, limit="2")] == newest_first[:2]
    assert [m["id"] for m in listed(api, limit="1", offset="1")] == newest_first[1:2]
    for params in ({"limit": "x"}, {"limit": "-1"}, {"offset": "-2"}, {"sort_key": "user_message"},
                   {"sort_key": "nope"}, {"sort_dir": "sideways"}):
        assert_fault(api.get("/v2/messages", params=params), 400)


def test_created_since_and_before_from_2_52(api, messages):
    a1, a2, a3, _ = messages
    with api.services.db.read() as s:
        second = s.get(Message, a2).created_at
    since = (second - timedelta(seconds=1)).isoformat()
    assert ids(api, messages, created_since=since) == [a3, a2]
    assert ids(api, messages, created_before=(second + timedelta(seconds=1)).isoformat() + "Z") == [a2, a1]
    assert ids(api, messages, created_since=since, created_before=since) == []
    assert_fault(api.get("/v2/messages", params={"created_since": "yesterday"}), 400)
    # Before 2.52 the filters do not exist and are ignored.
    assert ids(api, messages, created_since=since, version="2.51") == [a3, a2, a1]
    assert api.get("/v2/messages", params={"created_since": "nonsense"}, version="2.51").status_code == 200


def test_show_and_delete_own_messages(api, messages):
    a1, a2, _, b1 = messages
    shown = api.get(f"/v2/messages/{a1}").json["message"]
    assert set(shown) == FIELDS and shown["id"] == a1 and shown["project_id"] == "proj-a"
    deleted = api.delete(f"/v2/messages/{a1}")
    assert deleted.status_code == 204 and deleted.text == ""
    assert assert_fault(api.get(f"/v2/messages/{a1}"), 404) == f"Message {a1} could not be found."
    assert_fault(api.delete(f"/v2/messages/{a1}"), 404)
    assert ids(api, messages) == [messages[2], a2]


def test_another_projects_messages_do_not_exist_for_a_member(api, messages):
    _, _, _, b1 = messages
    assert_fault(api.get(f"/v2/messages/{b1}"), 404)
    assert_fault(api.delete(f"/v2/messages/{b1}"), 404)
    assert api.get(f"/v2/messages/{b1}", token=api.tokens["bob"]).status_code == 200
    assert b1 not in [m["id"] for m in listed(api, all_tenants="1")]  # not for members


def test_admin_lists_all_projects_with_all_tenants_and_reads_any(api, messages):
    a1, a2, a3, b1 = messages
    admin = api.tokens["admin"]
    assert ids(api, messages, token=admin) == []
    assert set(ids(api, messages, token=admin, all_tenants="")) == {a1, a2, a3, b1}
    assert set(ids(api, messages, token=admin, all_tenants="true")) == {a1, a2, a3, b1}
    assert ids(api, messages, token=admin, all_tenants="false") == []
    assert api.get(f"/v2/messages/{b1}", token=admin).json["message"]["project_id"] == "proj-b"
    assert api.delete(f"/v2/messages/{b1}", token=admin).status_code == 204
    assert_fault(api.get(f"/v2/messages/{b1}", token=api.tokens["bob"]), 404)


def test_expired_messages_are_gone(api, messages):
    a1 = messages[0]
    with api.services.db.write() as s:
        s.get(Message, a1).expires_at = utcnow() - timedelta(seconds=1)
    assert a1 not in ids(api, messages)
    assert_fault(api.get(f"/v2/messages/{a1}"), 404)


def test_messages_need_2_37(api, messages):
    assert_fault(api.get("/v2/messages", version="2.36"), 404)
    assert_fault(api.get(f"/v2/messages/{messages[0]}", version="2.36"), 404)
    assert_fault(api.delete(f"/v2/messages/{messages[0]}", version="2.36"), 404)
    assert api.get(f"/v2/messages/{messages[0]}", version="2.37").status_code == 200


@pytest.mark.parametrize("bad", ["nope", "%00", "x" * 400, str(uuid.uuid4())])
def test_unknown_or_impossible_ids_are_404(api, bad):
    assert_fault(api.get(f"/v2/messages/{bad}"), 404)
    assert_fault(api.delete(f"/v2/messages/{bad}"), 404)


def test_no_pool_for_the_share_leaves_an_allocate_host_message(api):
    """The API's scheduler found no pool: the share is ``error`` in the
    create's answer already, with Manila's message, and no job."""
    report_pool(api.services.db, total_gb=4)
    try:
        share = api.create_share(token=api.tokens["alice"], size=500)
    finally:
        report_pool(api.services.db)
    assert share["status"] == "error"  # the API's answer: placed (or not) in the create
    assert api.count(Job, resource_id=share["id"]) == 0
    assert api.get(f"/v2/shares/{share['id']}").json["share"]["status"] == "error"
    (msg,) = listed(api, resource_id=share["id"])
    # Manila's detail for the filter that removed the last pool (009: Capacity).
    assert msg["resource_type"] == "SHARE" and msg["action_id"] == "001" and msg["detail_id"] == "009"
    assert msg["user_message"] == (
        "allocate host: No storage could be allocated for this share request, "
        "Capacity filter didn't succeed.")
    # A share in error holds no storage and no quota.
    assert api.get("/v2/limits").json["limits"]["absolute"]["totalShareGigabytesUsed"] < 500
    assert api.delete(f"/v2/messages/{msg['id']}").status_code == 204


def test_openstacksdk_and_the_openstack_cli_read_messages_and_limits(tokens_server, tmp_path):  # noqa: F811
    """Served by gunicorn: openstacksdk's user messages, ``openstack share limits show``."""
    import openstack

    env, server = tokens_server
    endpoint = f"{server.url}/v2"
    with env.services.db.write() as s:
        made = messages_db.create(s, now=utcnow(), project_id="proj-b", resource_type="SHARE",
                                  resource_id=str(uuid.uuid4()), action_id="002", detail_id="001",
                                  user_message="create: step 'export' failed: the NFS export server failed")
    conn = openstack.connect(auth_type="admin_token", auth={"endpoint": endpoint, "token": env.tokens["bob"]},
                             shared_file_system_endpoint_override=endpoint)
    fs = conn.shared_file_system
    assert made.id in [m.id for m in fs.user_messages()]
    got = fs.get_user_message(made.id)
    assert got.user_message == made.user_message and got.resource_type == "SHARE"
    fs.delete_user_message(made.id)
    assert made.id not in [m.id for m in fs.user_messages()]

    auth = ["--os-auth-type", "admin_token", "--os-endpoint", endpoint, "--os-token=" + env.tokens["bob"]]
    shown = _openstack_cli(*auth, "share", "limits", "show", "--absolute", "-f", "json", home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    absolute = {row["Name"]: row["Value"] for row in json.loads(shown.stdout)}
    assert absolute["maxTotalShares"] == 50 and absolute["maxTotalShareGigabytes"] == 1000
