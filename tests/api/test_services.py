"""Manila's ``GET /services`` and ``PUT /services/enable|disable`` (admins):
shareflow's share services (``manila-share``, ``host@backend``), the
schedulers in the conductors of each host (``manila-scheduler``) and the API
nodes (``manila-api``), with Manila's fields, filters, versions and errors;
a share service disabled through the API gets no new shares. Also through
python-manilaclient and ``openstack share service list | set``."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from shareflow.api.heartbeat import ApiHeartbeat
from shareflow.db import share_services
from shareflow.db.models import Pool, Service
from shareflow.services.backends import BackendService
from shareflow.wiring import utcnow
from tests.api.conftest import POOL_HOST, assert_fault, report_pool
from tests.api.test_manilaclient import _openstack_cli, manila, tokens_server  # noqa: F401 (a fixture)

SHARE_SERVICE = POOL_HOST.partition("#")[0]          # testhost@b1
OTHER_POOL = "otherhost@b1#pool0"
OTHER = "otherhost@b1"
FIELDS = {"id", "binary", "host", "zone", "status", "state", "updated_at"}


@pytest.fixture
def other(api):
    """A second, roomier host; removed afterwards."""
    report_pool(api.services.db, host=OTHER_POOL, total_gb=500_000)
    yield OTHER
    with api.services.db.write() as s:
        s.execute(sa.delete(Pool).where(Pool.host == OTHER_POOL))
        s.execute(sa.delete(Service).where(Service.host == OTHER))


def listed(api, version="2.65", path="/v2/services", **params) -> list[dict]:
    result = api.get(path, token=api.tokens["admin"], params=params, version=version)
    assert result.status_code == 200, result.text
    return result.json["services"]


def keys(services: list[dict]) -> list[tuple[str, str]]:
    return [(s["binary"], s["host"]) for s in services]


def put(api, action: str, body, *, token=None, version="2.65"):
    return api.put(f"/v2/services/{action}", body, token=token or api.tokens["admin"], version=version)


def test_the_list_is_manilas_and_shows_every_process(api):
    services = listed(api)
    assert keys(services) == [("manila-api", "testhost"), ("manila-scheduler", "testhost"),
                              ("manila-share", SHARE_SERVICE)]
    for service in services:
        assert set(service) == FIELDS
        assert isinstance(service["id"], int) and service["id"] > 0
        assert (service["zone"], service["status"], service["state"]) == ("nova", "enabled", "up")
        assert service["updated_at"].startswith(str(utcnow().year))
    assert len({s["id"] for s in services}) == 3
    # Stable ids: the same on the next request.
    assert [s["id"] for s in listed(api)] == [s["id"] for s in services]
    # The project segment of the path, as every v2 route.
    assert keys(listed(api, path="/v2/adminproj/services")) == keys(services)


def test_versions_and_the_legacy_url(api):
    assert keys(listed(api, version="2.6", path="/v2/os-services")) == keys(listed(api, version="2.7"))
    assert keys(listed(api, version="2.0", path="/v2/os-services")) == keys(listed(api))
    assert_fault(api.get("/v2/services", token=api.tokens["admin"], version="2.6"), 404)
    assert_fault(api.get("/v2/os-services", token=api.tokens["admin"], version="2.7"), 404)
    assert_fault(put(api, "enable", {"host": SHARE_SERVICE, "binary": "manila-share"}, version="2.6"), 404)
    result = api.put("/v2/os-services/enable", {"host": SHARE_SERVICE, "binary": "manila-share"},
                     token=api.tokens["admin"], version="2.6")
    assert result.status_code == 200, result.text


def test_members_are_refused_with_manilas_policy_error(api):
    for path in ("/v2/services", "/v2/proj-a/services"):
        message = assert_fault(api.get(path, token=api.tokens["alice"]), 403)
        assert message == "Policy doesn't allow service:index to be performed."
    message = assert_fault(put(api, "disable", {"host": SHARE_SERVICE, "binary": "manila-share"},
                               token=api.tokens["alice"]), 403)
    assert message == "Policy doesn't allow service:update to be performed."
    # Policy first: a member's malformed body is still a 403.
    assert_fault(put(api, "disable", {"nope": 1}, token=api.tokens["alice"]), 403)
    assert listed(api, status="disabled") == []


def test_every_filter_and_unknown_values_list_nothing(api, other):
    # The other host's conductors went quiet two minutes ago (beyond the 90 s of pool_stale_after).
    with api.services.db.write() as s:
        s.execute(sa.update(Service).where(Service.host == OTHER).values(updated_at=utcnow() - timedelta(minutes=2)))
    with api.services.db.write() as s:
        share_services.set_disabled(s, OTHER, True, reason="disk swap", now=utcnow())
    everything = listed(api)
    assert keys(everything) == [("manila-api", "testhost"), ("manila-scheduler", "otherhost"),
                                ("manila-scheduler", "testhost"), ("manila-share", OTHER),
                                ("manila-share", SHARE_SERVICE)]
    down = {(s["binary"], s["host"]) for s in everything if s["state"] == "down"}
    assert down == {("manila-share", OTHER), ("manila-scheduler", "otherhost")}

    assert keys(listed(api, host=OTHER)) == [("manila-share", OTHER)]
    assert keys(listed(api, host="testhost")) == [("manila-api", "testhost"), ("manila-scheduler", "testhost")]
    assert keys(listed(api, binary="manila-share")) == [("manila-share", OTHER), ("manila-share", SHARE_SERVICE)]
    assert keys(listed(api, binary="manila-scheduler", host="otherhost")) == [("manila-scheduler", "otherhost")]
    assert len(listed(api, zone="nova")) == 5
    assert keys(listed(api, state="down")) == [("manila-scheduler", "otherhost"), ("manila-share", OTHER)]
    assert len(listed(api, state="up")) == 3
    assert keys(listed(api, status="disabled")) == [("manila-share", OTHER)]
    assert len(listed(api, status="enabled")) == 4
    assert keys(listed(api, binary="manila-share", state="up", status="enabled")) == [
        ("manila-share", SHARE_SERVICE)]
    # Exact values only, and an unknown one lists nothing (never a 404).
    for params in ({"host": "other"}, {"host": "nosuchhost"}, {"binary": "manila-data"}, {"zone": "az9"},
                   {"state": "sideways"}, {"status": "DISABLED"}, {"host": OTHER, "status": "enabled"}):
        assert listed(api, **params) == [], params
    # Keys that are not Manila's filters are ignored, as Manila ignores them.
    assert len(listed(api, colour="blue")) == 5


def test_disable_and_enable_answer_manilas_shape_and_steer_placement(api, other):
    # The roomier other host gets a share while enabled.
    assert api.share_row(api.create_share(token=api.tokens["alice"])["id"]).host == OTHER_POOL

    result = put(api, "disable", {"host": OTHER, "binary": "manila-share"})
    assert result.status_code == 200, result.text
    assert result.json == {"service": {"host": OTHER, "binary": "manila-share", "disabled": True}}
    (row,) = listed(api, host=OTHER)
    assert (row["status"], row["state"]) == ("disabled", "up")
    # No new shares on it: the scheduler places on the other, smaller pool.
    placed = api.create_share(token=api.tokens["alice"])
    assert api.share_row(placed["id"]).host == POOL_HOST
    # The same flag as ``shareflow backend disable`` (one service method for both).
    backends = BackendService(api.services.db, stale_after=90)
    assert backends.get(OTHER).disabled is True

    result = put(api, "enable", {"host": OTHER, "binary": "manila-share"})
    assert result.status_code == 200, result.text
    assert result.json == {"service": {"host": OTHER, "binary": "manila-share", "disabled": False}}
    assert listed(api, host=OTHER)[0]["status"] == "enabled"
    assert api.share_row(api.create_share(token=api.tokens["alice"])["id"]).host == OTHER_POOL

    # What the CLI disables, the API shows (with its reason kept for the CLI).
    backends.disable(OTHER, reason="disk swap")
    assert listed(api, host=OTHER)[0]["status"] == "disabled"
    put(api, "enable", {"host": OTHER, "binary": "manila-share"})
    assert backends.get(OTHER).disabled is False and backends.get(OTHER).disabled_reason is None


def test_bad_requests_unknown_services_and_actions(api):
    good = {"host": SHARE_SERVICE, "binary": "manila-share"}
    for bad in ({"host": SHARE_SERVICE}, {"binary": "manila-share"}, {}, [good], "enable", None, 7):
        assert_fault(put(api, "disable", bad), 400)
    assert_fault(put(api, "enable", {"host": 5, "binary": "manila-share"}), 400)
    assert_fault(api.request("PUT", "/v2/services/disable", body=b"{nope", token=api.tokens["admin"]), 400)
    # 2.83's reason, below it: Manila's 400, and nothing changed.
    message = assert_fault(put(api, "disable", {**good, "disabled_reason": "maintenance"}), 400)
    assert "Use 2.83 or greater microversion" in message
    assert listed(api, host=SHARE_SERVICE)[0]["status"] == "enabled"
    # A host or binary no service has: 404, as Manila's HostBinaryNotFound.
    for unknown in ({"host": "nosuchhost@b1", "binary": "manila-share"},
                    {"host": SHARE_SERVICE, "binary": "manila-scheduler"},
                    {"host": "testhost", "binary": "manila-share"}):
        message = assert_fault(put(api, "disable", unknown), 404)
        assert message == f"Could not find binary {unknown['binary']} on host {unknown['host']}."
    # Not a share service: there is nothing separate to disable; said so, nothing changed.
    for binary in ("manila-scheduler", "manila-api"):
        message = assert_fault(put(api, "disable", {"host": "testhost", "binary": binary}), 400)
        assert "Only share services (manila-share)" in message
    assert listed(api, status="disabled") == []
    message = assert_fault(put(api, "reboot", good), 404)
    assert message == "Unknown action 'reboot'"
    # No single service to show (Manila has no such route).
    assert_fault(api.get(f"/v2/services/{SHARE_SERVICE}", token=api.tokens["admin"]), 404)


def test_an_api_node_is_down_when_its_heartbeat_is_old_and_up_when_it_beats(api):
    with api.services.db.write() as s:
        s.execute(sa.update(Service).where(Service.binary == "manila-api")
                  .values(updated_at=utcnow() - timedelta(minutes=5)))
    # (This process's own heartbeat is not due yet: the row stays old.)
    assert keys(listed(api, state="down")) == [("manila-api", "testhost")]
    ApiHeartbeat(api.services.db, host="testhost", availability_zone="nova", interval=0).beat()
    assert keys(listed(api, state="down")) == []
    # A second API node with its own zone.
    ApiHeartbeat(api.services.db, host="apinode2", availability_zone="az2").beat()
    try:
        (node,) = listed(api, zone="az2")
        assert (node["binary"], node["host"], node["state"]) == ("manila-api", "apinode2", "up")
        # An API row is no share service: not a backend, never a pool's service.
        assert "apinode2" not in {b.host for b in BackendService(api.services.db).list()}
    finally:
        with api.services.db.write() as s:
            s.execute(sa.delete(Service).where(Service.host == "apinode2"))


def test_manilaclient_and_openstack_cli_list_and_set_services(tokens_server, tmp_path):
    env, server = tokens_server
    client = manila(server, env.tokens["admin"])
    services = client.services.list()
    assert {(s.binary, s.host, s.state, s.status) for s in services} == {
        ("manila-api", "testhost", "up", "enabled"), ("manila-scheduler", "testhost", "up", "enabled"),
        ("manila-share", SHARE_SERVICE, "up", "enabled")}
    (share,) = client.services.list(search_opts={"binary": "manila-share"})
    assert share.host == SHARE_SERVICE and share.zone == "nova"
    client.services.disable(SHARE_SERVICE, "manila-share")
    assert [s.status for s in client.services.list(search_opts={"host": SHARE_SERVICE})] == ["disabled"]
    client.services.enable(SHARE_SERVICE, "manila-share")
    assert [s.status for s in client.services.list(search_opts={"host": SHARE_SERVICE})] == ["enabled"]
    legacy = manila(server, env.tokens["admin"], version="2.6").services.list()
    assert len(legacy) == 3

    auth = ["--os-auth-type", "admin_token", "--os-endpoint", f"{server.url}/v2",
            "--os-token=" + env.tokens["admin"], "--os-share-api-version", "2.65"]
    done = _openstack_cli(*auth, "share", "service", "set", "--disable", SHARE_SERVICE, "manila-share",
                          home=tmp_path)
    assert done.returncode == 0, done.stderr
    shown = _openstack_cli(*auth, "share", "service", "list", "--binary", "manila-share", "-f", "json",
                           home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    (row,) = json.loads(shown.stdout)
    assert (row["Host"], row["Status"], row["State"], row["Zone"]) == (SHARE_SERVICE, "disabled", "up", "nova")
    done = _openstack_cli(*auth, "share", "service", "set", "--enable", SHARE_SERVICE, "manila-share",
                          home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [s.status for s in client.services.list(search_opts={"host": SHARE_SERVICE})] == ["enabled"]
