"""The HTTP contract around the resources: versions, microversions, auth,
request ids, routing errors, body limits, the ``/{project_id}`` segment."""

from __future__ import annotations

import json

import falcon.testing
import pytest

from shareflow.api.app import create_app
from shareflow.api.errors import INTERNAL_ERROR_MESSAGE
from tests.api.conftest import assert_fault, build_env, check_response
from tests.fixtures.coordination import chroot

HEADER = "X-OpenStack-Manila-API-Version"


def test_root_versions_document_needs_no_token(api):
    result = api.get("/", token=None, version=None)
    assert result.status_code == 300  # Manila's "multiple choices"
    (doc,) = result.json["versions"]
    assert doc["id"] == "v2.0" and doc["status"] == "CURRENT"
    assert doc["version"] == "2.67" and doc["min_version"] == "2.0"
    assert {"rel": "self", "href": "http://falconframework.org/v2/"} in doc["links"]
    assert doc["media-types"][0]["base"] == "application/json"
    # Not versioned: no microversion header on "/", even when one was sent.
    assert HEADER not in api.get("/", token=None, version="2.5").headers


@pytest.mark.parametrize("path", ["/v2", "/v2/"])
def test_v2_versions_document_is_versioned(api, path):
    result = api.get(path, token=None, version="2.7")
    assert result.status_code == 200
    assert result.json["versions"][0]["version"] == "2.67"
    assert result.headers[HEADER] == "2.7"


def test_public_url_is_used_in_links(api):
    import dataclasses

    config = dataclasses.replace(
        api.config, api=dataclasses.replace(api.config.api, public_url="https://shares.example.org/v2"))
    client = falcon.testing.TestClient(create_app(config, api.services))
    doc = client.simulate_get("/").json["versions"][0]
    assert {"rel": "self", "href": "https://shares.example.org/v2/"} in doc["links"]


def test_microversion_absent_means_2_0_and_is_echoed(api):
    result = api.get("/v2/shares", version=None)
    assert result.status_code == 200
    assert result.headers[HEADER] == "2.0"
    assert result.headers["Vary"] == HEADER


@pytest.mark.parametrize("sent, echoed", [("latest", "2.67"), ("2.67", "2.67"), ("2.66", "2.66"), ("2.9", "2.9"),
                                          ("2.0", "2.0")])
def test_microversion_echo(api, sent, echoed):
    result = api.get("/v2/shares", version=sent)
    assert result.status_code == 200 and result.headers[HEADER] == echoed


@pytest.mark.parametrize("sent", ["2", "two", "2.01", "v2.1", "2.1.1", ""])
def test_malformed_microversion_is_400(api, sent):
    message = assert_fault(api.get("/v2/shares", version=sent), 400, "badRequest")
    assert message == f"API Version String {sent} is of invalid format. Must be of format MajorNum.MinorNum."


@pytest.mark.parametrize("sent", ["2.68", "3.0", "1.9"])
def test_out_of_range_microversion_is_406(api, sent):
    message = assert_fault(api.get("/v2/shares", version=sent), 406, "computeFault")
    assert message == f"Version {sent} is not supported by the API. Minimum is 2.0 and maximum is 2.67."


def test_request_ids_are_fresh_per_request(api):
    a, b = api.get("/v2/shares"), api.get("/v2/shares")
    assert a.headers["x-openstack-request-id"] != b.headers["x-openstack-request-id"]
    assert len(a.headers["x-openstack-request-id"]) == len("req-") + 36


@pytest.mark.parametrize("token", [None, "", "wrong", "notused"])
def test_missing_or_unknown_token_is_401(api, token):
    headers = {"X-Auth-Token": token} if token == "" else None
    result = api.get("/v2/shares", token=None if token == "" else token, headers=headers)
    message = assert_fault(result, 401, "unauthorized")
    assert message == "The request you have made requires authentication."
    assert "WWW-Authenticate" in result.headers


def test_401_comes_before_anything_else(api):
    assert_fault(api.post("/v2/shares", body="{not json", token=None, version="9.9"), 401)
    assert_fault(api.get("/no/such/path", token=None), 401)


def test_unknown_path_is_404_with_manila_body(api):
    message = assert_fault(api.get("/v2/no-such-thing"), 404, "itemNotFound")
    assert message == "The resource could not be found."
    assert_fault(api.get("/v3/shares"), 404)
    assert_fault(api.get("/v2/shares/x/y/z"), 404)


@pytest.mark.parametrize("method, path", [("PATCH", "/v2/shares"), ("DELETE", "/v2/shares"),
                                          ("PUT", "/v2/types"), ("GET", "/v2/shares/x/action"),
                                          ("POST", "/v2/share-access-rules")])
def test_wrong_method_is_405_with_manila_body(api, method, path):
    result = api.request(method, path)
    message = assert_fault(result, 405, "badMethod")
    assert method in message
    assert "allow" in {k.lower() for k in result.headers}


def test_body_over_the_limit_is_413(api):
    huge = json.dumps({"share": {"size": 1, "share_proto": "NFS", "name": "x" * (70 * 1024)}})
    message = assert_fault(api.post("/v2/shares", body=huge), 413, "overLimit")
    assert message == "Request is too large."


@pytest.mark.parametrize("raw", [
    "{", "not json", "{'share': {}}", "[1,", "\xff\xfe", "NaN", '{"share": {"size": Infinity}}',
    '{"share": {"size": 1e999}}', "[" * 20000 + "]" * 20000,
])
def test_malformed_json_is_400(api, raw):
    message = assert_fault(api.post("/v2/shares", body=raw), 400, "badRequest")
    assert message == "Malformed request body"


def test_project_in_path_must_be_the_callers(api):
    own = api.get("/v2/proj-a/shares")
    assert own.status_code == 200
    assert_fault(api.get("/v2/proj-b/shares"), 400)
    # Admins too: Manila compares the URL's project with the token's.
    message = assert_fault(api.get("/v2/proj-a/shares", token=api.tokens["admin"]), 400)
    assert message == "Malformed request url"


def test_links_keep_the_project_segment_when_the_url_had_it(api):
    share = api.create_share(token=api.tokens["alice"])
    result = api.get(f"/v2/proj-a/shares/{share['id']}")
    links = {link["rel"]: link["href"] for link in result.json["share"]["links"]}
    assert links["self"].endswith(f"/v2/proj-a/shares/{share['id']}")
    assert links["bookmark"].endswith(f"/proj-a/shares/{share['id']}")
    plain = api.get(f"/v2/shares/{share['id']}").json["share"]["links"][0]["href"]
    assert plain.endswith(f"/v2/shares/{share['id']}")


def test_an_unexpected_error_is_a_bare_500(api):
    class Broken:
        def __getattr__(self, name):
            raise RuntimeError("secret detail /etc/passwd")

    client = falcon.testing.TestClient(create_app(api.config, Broken()))
    result = client.simulate_get("/v2/shares", headers={"X-Auth-Token": api.tokens["alice"]})
    assert result.status_code == 500
    assert result.json == {"computeFault": {"code": 500, "message": INTERNAL_ERROR_MESSAGE}}
    assert result.headers["x-openstack-request-id"].startswith("req-")


@pytest.fixture(scope="module")
def noauth_api(zookeeper_server, tmp_path_factory):
    with chroot(zookeeper_server.hosts) as zk_root:
        env = build_env(tmp_path_factory.mktemp("noauth"), zookeeper_server.hosts, zk_root,
                        strategy="noauth")
        try:
            yield env
        finally:
            env.close()


def test_noauth_mode_follows_manila(noauth_api, caplog):
    share = noauth_api.create_share(token="alice:demo")
    assert share["project_id"] == "demo" and share["user_id"] == "alice"
    # Everyone is an admin: admins see the host (the API's scheduler chose it in the create).
    assert share["host"] == "testhost@b1#pool0"
    assert noauth_api.get(f"/v2/shares/{share['id']}", token="alice:demo").json["share"]["host"] == \
        "testhost@b1#pool0"
    only_project = noauth_api.get("/v2/shares", token="demo").json["shares"]
    assert [s["id"] for s in only_project] == [share["id"]]
    # keystoneauth's "none" plugin sends this token: project "notused".
    assert noauth_api.get("/v2/shares", token="notused").json["shares"] == []
    # No token at all: Manila's admin:admin.
    created = noauth_api.create_share(token=None)
    assert created["project_id"] == "admin"


def test_noauth_start_up_warns(api, caplog):
    import dataclasses

    config = dataclasses.replace(api.config, auth=dataclasses.replace(api.config.auth, strategy="noauth"))
    with caplog.at_level("WARNING"):
        create_app(config, api.services)
    assert any("noauth" in r.getMessage() for r in caplog.records)


def test_zookeeper_down_is_503_and_changes_nothing(tmp_path):
    from shareflow.db.models import Job, Share
    from shareflow.system.ports import free_port

    env = build_env(tmp_path, f"127.0.0.1:{free_port()}", "/nowhere", zk_connect_timeout=1.0)
    try:
        result = env.client.simulate_post(
            "/v2/shares", json={"share": {"size": 1, "share_proto": "NFS"}},
            headers={"X-Auth-Token": env.tokens["alice"]})
        message = assert_fault(result, 503, "serviceUnavailable")
        assert "Nothing was changed" in message
        assert env.count(Share) == 0 and env.count(Job) == 0
        # Reads do not need ZooKeeper.
        listed = env.client.simulate_get("/v2/shares", headers={"X-Auth-Token": env.tokens["alice"]})
        assert listed.status_code == 200 and listed.json == {"shares": []}
    finally:
        env.close()


@pytest.mark.parametrize("path", ["/shares", "/shares/detail", "/types", "/types/default"])
def test_every_route_also_answers_under_the_project(api, path):
    assert api.get("/v2/proj-a" + path).status_code == 200


def test_check_response_rejects_500():
    class Fake:
        status_code = 500
        text = "boom"
        headers: dict = {}

    with pytest.raises(AssertionError):
        check_response(Fake())
