"""What clients poll costs one database statement per request, whatever the
microversion: a share's GET, its access rules (``GET /share-access-rules``,
2.45+, and the ``access_list`` action manilaclient polls after allow below
2.45) and its export locations - each outside any transaction (no BEGIN or
COMMIT around it). Counted by a listener on the API's own engine, around the
request alone (the test harness's heartbeat writes are outside it)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from shareflow.domain import states
from tests.api.conftest import MAX, check_response


@pytest.fixture
def share(api) -> dict:
    share = api.create_share(token=api.tokens["alice"], metadata={"k": "v"})
    api.set_share_status(share["id"], states.AVAILABLE)
    api.add_export_location(share["id"], f"127.0.0.1:/shares/{share['id']}")
    result = api.post(f"/v2/shares/{share['id']}/action",
                      {"allow_access": {"access_type": "ip", "access_to": "10.0.0.1", "access_level": "rw",
                                        "metadata": {"a": "b"}}}, version="2.45")
    assert result.status_code == 200, result.text
    return share


def _statements(api, method: str, path: str, version: str, **kwargs) -> tuple[list[tuple[str, bool]], object]:
    """The statements the request sent, each with whether a transaction was open."""
    sent: list[tuple[str, bool]] = []

    def after(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, conn.connection.dbapi_connection.in_transaction))

    api.heartbeat()
    headers = {"X-Auth-Token": api.tokens["alice"], "X-OpenStack-Manila-API-Version": version}
    engine = api.services.db.engine
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        result = api.client.simulate_request(method, path, headers=headers, **kwargs)
    finally:
        sa.event.remove(engine, "after_cursor_execute", after)
    check_response(result)
    assert result.status_code == 200, result.text
    return sent, result


@pytest.mark.parametrize("version", ["2.0", "2.8", "2.9", "2.28", "2.45", MAX])
def test_a_share_get_is_one_statement(api, share, version):
    sent, result = _statements(api, "GET", f"/v2/shares/{share['id']}", version)
    assert result.json["share"]["metadata"] == {"k": "v"}
    assert len(sent) == 1, sent
    assert sent[0][1] is False


@pytest.mark.parametrize("version", ["2.45", MAX])
def test_the_access_rules_poll_is_one_statement(api, share, version):
    sent, result = _statements(api, "GET", "/v2/share-access-rules", version,
                               params={"share_id": share["id"]})
    (rule,) = result.json["access_list"]
    assert rule["access_to"] == "10.0.0.1" and rule["metadata"] == {"a": "b"}
    assert len(sent) == 1, sent
    assert sent[0][1] is False


@pytest.mark.parametrize("version", ["2.28", "2.44"])
def test_the_access_list_action_is_one_statement(api, share, version):
    sent, result = _statements(api, "POST", f"/v2/shares/{share['id']}/action", version,
                               json={"access_list": None})
    (rule,) = result.json["access_list"]
    assert rule["access_to"] == "10.0.0.1"
    assert len(sent) == 1, sent
    assert sent[0][1] is False


@pytest.mark.parametrize("version", ["2.9", MAX])
def test_the_export_locations_poll_is_one_statement(api, share, version):
    sent, result = _statements(api, "GET", f"/v2/shares/{share['id']}/export_locations", version)
    (location,) = result.json["export_locations"]
    assert location["path"] == f"127.0.0.1:/shares/{share['id']}"
    assert len(sent) == 1, sent
    assert sent[0][1] is False


def test_a_create_reads_its_answer_back_in_one_statement(api):
    """The share a create answers is read in the create's transaction by the
    same one statement a GET uses, not four (share, locations, metadata, type)."""
    sent: list[str] = []

    def after(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement.lstrip())

    api.heartbeat()
    headers = {"X-Auth-Token": api.tokens["alice"], "X-OpenStack-Manila-API-Version": MAX}
    engine = api.services.db.engine
    sa.event.listen(engine, "after_cursor_execute", after)
    try:
        result = api.client.simulate_post("/v2/shares", headers=headers, json={
            "share": {"size": 1, "share_proto": "NFS", "name": "read-back", "metadata": {"k": "v"}}})
    finally:
        sa.event.remove(engine, "after_cursor_execute", after)
    check_response(result)
    assert result.status_code == 200, result.text
    assert result.json["share"]["metadata"] == {"k": "v"}
    reads_of_shares = [st for st in sent if st.startswith("SELECT shares.")]
    assert len(reads_of_shares) == 1, sent
    assert not [st for st in sent if st.startswith(("SELECT export_locations", "SELECT share_metadata"))], sent
