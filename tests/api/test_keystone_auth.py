"""``[auth] strategy = "keystone"``: the API (in process) trusts tokens a real
Keystone issued (tests/fixtures/keystone.py: Keystone 30 on SQLite under
gunicorn), as keystonemiddleware does in front of Manila.

What is shown: a project-scoped token is the caller (its project, its user,
its roles: Keystone's ``admin`` is an admin here, ``member`` is not); a
token Keystone does not know, a tampered one, an unscoped one and a revoked
one are 401 with Manila's body; a validated token is remembered for
``cache_seconds`` (a revoked token keeps working until then, as with
keystonemiddleware), and never asked about again meanwhile; Keystone
unreachable, or refusing shareflow's service user, is 503, never 500 and
never 401.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import falcon.testing
import pytest

from shareflow.api.app import create_app
from shareflow.auth.keystone import KeystoneAuth
from shareflow.config import AuthConfig, ConfigError, KeystoneConfig, parse
from shareflow.exceptions import NotAuthenticated, ServiceUnavailable
from shareflow.system.ports import free_port
from shareflow.wiring import Services
from tests.api.conftest import ApiEnv, assert_fault, build_env
from tests.fixtures.coordination import chroot


def keystone_config(server, users, **overrides) -> KeystoneConfig:
    settings = dict(auth_url=server.url, username=users.service.user_name, password=users.service.password,
                    project_name=users.service.project_name, cache_seconds=0.0)
    settings.update(overrides)
    return KeystoneConfig(**settings)


@pytest.fixture(scope="module")
def base_env(zookeeper_server, tmp_path_factory) -> Iterator[ApiEnv]:
    with chroot(zookeeper_server.hosts) as zk_root:
        env = build_env(tmp_path_factory.mktemp("api-keystone"), zookeeper_server.hosts, zk_root)
        try:
            yield env
        finally:
            env.services.close()


def env_with(base: ApiEnv, authenticator) -> ApiEnv:
    """The module's database and ZooKeeper behind an app that authenticates with ``authenticator``."""
    config = dataclasses.replace(base.config, auth=AuthConfig(
        strategy="keystone", tokens_file=base.config.auth.tokens_file, keystone=authenticator.config))
    return ApiEnv(config=config, services=base.services,
                  client=falcon.testing.TestClient(create_app(config, base.services, authenticator=authenticator)))


@pytest.fixture(scope="module")
def api(base_env, keystone_server, keystone_users) -> ApiEnv:
    return env_with(base_env, KeystoneAuth(keystone_config(keystone_server, keystone_users)))


def unchecked_get(env: ApiEnv, path: str, token: str):
    """A GET whose answer may be a 503 (``ApiEnv.request`` refuses any 5xx)."""
    return env.client.simulate_get(path, headers={"X-Auth-Token": token,
                                                  "X-OpenStack-Manila-API-Version": "2.65"})


def token_of(server, principal) -> str:
    return server.token(principal.user_name, principal.password, principal.project_name)


def test_a_members_token_is_its_project_and_user(api, keystone_server, keystone_users):
    alice, bob = keystone_users.alice, keystone_users.bob
    share = api.create_share(token=token_of(keystone_server, alice))
    row = api.share_row(share["id"])
    assert (row.project_id, row.user_id) == (alice.project_id, alice.user_id)
    # Another project's member does not see it, through any list or by id.
    bob_token = token_of(keystone_server, bob)
    assert share["id"] not in [s["id"] for s in api.get("/v2/shares", token=bob_token).json["shares"]]
    assert_fault(api.get(f"/v2/shares/{share['id']}", token=bob_token), 404)
    # Its own member does, with the project in the path too (Manila's old URLs).
    alice_token = token_of(keystone_server, alice)
    assert api.get(f"/v2/{alice.project_id}/shares/{share['id']}", token=alice_token).status_code == 200


def test_keystones_admin_role_is_admin_and_member_is_not(api, keystone_server, keystone_users):
    admin = api.get("/v2/services", token=token_of(keystone_server, keystone_users.admin))
    assert admin.status_code == 200 and admin.json["services"]
    assert_fault(api.get("/v2/services", token=token_of(keystone_server, keystone_users.alice)), 403)


def test_keystones_reader_reads_and_never_writes(api, keystone_server, keystone_users):
    """Manila's reader persona through a real Keystone role assignment."""
    share = api.create_share(token=token_of(keystone_server, keystone_users.alice))
    rita = token_of(keystone_server, keystone_users.rita)
    assert api.get(f"/v2/shares/{share['id']}", token=rita).status_code == 200
    refused = api.post("/v2/shares", {"share": {"size": 1, "share_proto": "NFS"}}, token=rita)
    assert "share:create" in assert_fault(refused, 403)
    assert_fault(api.delete(f"/v2/shares/{share['id']}", token=rita), 403)
    assert api.share_row(share["id"]).status == "creating"


def test_roles_reach_the_caller_lowercased(keystone_server, keystone_users):
    auth = KeystoneAuth(keystone_config(keystone_server, keystone_users))
    rita = auth.authenticate(token_of(keystone_server, keystone_users.rita), {})
    assert (rita.project_id, rita.user_id, rita.roles) == (
        keystone_users.rita.project_id, keystone_users.rita.user_id, ("reader",))
    admin = auth.authenticate(token_of(keystone_server, keystone_users.admin), {})
    assert admin.is_admin and "admin" in admin.roles


@pytest.mark.parametrize("token", ["not-a-token", "gAAAAAB" + "x" * 180, None])
def test_unknown_tampered_or_missing_tokens_are_401(api, token):
    assert_fault(api.get("/v2/shares", token=token), 401)


def test_a_tampered_real_token_is_401(api, keystone_server, keystone_users):
    token = token_of(keystone_server, keystone_users.alice)
    flipped = token[:40] + ("A" if token[40] != "A" else "B") + token[41:]
    assert_fault(api.get("/v2/shares", token=flipped), 401)
    assert api.get("/v2/shares", token=token).status_code == 200


def test_an_unscoped_token_is_401(api, keystone_server):
    # A user without a default project gets an unscoped token when it names no scope.
    user = keystone_server._create("/users", "user", {"name": "drifter", "domain_id": "default",
                                                       "password": "pw-drifter"})
    status, headers, body = keystone_server.request("POST", "/auth/tokens", {"auth": {"identity": {
        "methods": ["password"], "password": {"user": {"id": user["id"], "password": "pw-drifter"}}}}},
        token=False)
    assert status == 201 and "project" not in body["token"]
    assert_fault(api.get("/v2/shares", token=headers["X-Subject-Token"]), 401)


def test_a_revoked_token_is_401_without_cache(api, keystone_server, keystone_users):
    token = token_of(keystone_server, keystone_users.alice)
    assert api.get("/v2/shares", token=token).status_code == 200
    keystone_server.revoke(token)
    assert_fault(api.get("/v2/shares", token=token), 401)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_validated_token_is_remembered_for_cache_seconds(base_env, keystone_server, keystone_users):
    """Revocation is how the cache is seen from outside: while the answer is
    remembered Keystone is not asked, so a revoked token still works; once
    ``cache_seconds`` have passed it is asked again and the token is refused."""
    clock = Clock()
    auth = KeystoneAuth(keystone_config(keystone_server, keystone_users, cache_seconds=300.0), monotonic=clock)
    env = env_with(base_env, auth)
    token = token_of(keystone_server, keystone_users.alice)
    assert env.get("/v2/shares", token=token).status_code == 200
    keystone_server.revoke(token)
    clock.now += 299
    assert env.get("/v2/shares", token=token).status_code == 200
    clock.now += 2
    assert_fault(env.get("/v2/shares", token=token), 401)
    # Refusals are not remembered: a token Keystone refused is asked about again
    # (and refused again), never served from the cache.
    assert_fault(env.get("/v2/shares", token=token), 401)


def test_keystone_unreachable_is_503(base_env, keystone_server, keystone_users):
    auth = KeystoneAuth(keystone_config(keystone_server, keystone_users,
                                        auth_url=f"http://127.0.0.1:{free_port()}/v3", timeout=2.0))
    env = env_with(base_env, auth)
    message = assert_fault(unchecked_get(env, "/v2/shares", "whatever"), 503)
    assert "identity service" in message
    with pytest.raises(ServiceUnavailable):
        auth.authenticate("whatever", {})


def test_keystone_refusing_shareflows_service_user_is_503_not_401(base_env, keystone_server, keystone_users):
    auth = KeystoneAuth(keystone_config(keystone_server, keystone_users, password="wrong"))
    env = env_with(base_env, auth)
    # The caller's token is fine: telling it "401" would send it to re-authenticate in vain.
    assert_fault(unchecked_get(env, "/v2/shares", token_of(keystone_server, keystone_users.alice)), 503)


def test_a_service_user_without_the_right_to_validate_is_503(base_env, keystone_server, keystone_users):
    """A service user Keystone's policy does not allow to validate others'
    tokens (a plain member) is a deployment error: 503, logged."""
    member = keystone_users.bob
    auth = KeystoneAuth(keystone_config(keystone_server, keystone_users, username=member.user_name,
                                        password=member.password, project_name=member.project_name))
    with pytest.raises(ServiceUnavailable):
        auth.authenticate(token_of(keystone_server, keystone_users.alice), {})
    # Its own token, which any subject may validate, works: the 503 was policy, not connectivity.
    assert auth.authenticate(token_of(keystone_server, member), {}).user_id == member.user_id


def test_no_token_at_all_is_401_before_keystone_is_asked(base_env):
    auth = KeystoneAuth(KeystoneConfig(auth_url=f"http://127.0.0.1:{free_port()}/v3", username="u",
                                       password="p", project_name="p"))
    with pytest.raises(NotAuthenticated):
        auth.authenticate(None, {})


# --- unmodified clients, finding shareflow in Keystone's catalog ---------------------


@pytest.fixture(scope="module")
def served(api, keystone_server) -> Iterator[str]:
    """The keystone-authenticated app over real HTTP, registered in Keystone's catalog."""
    from tests.api.test_manilaclient import _Server

    server = _Server(api.client.app)
    try:
        with keystone_server.share_service(f"{server.url}/v2"):
            yield server.url
    finally:
        server.close()


def test_openstack_cli_with_a_keystone_password(served, keystone_server, keystone_users, tmp_path):
    from tests.api.test_manilaclient import _openstack_cli

    alice = keystone_users.alice
    auth = ["--os-auth-url", keystone_server.url, "--os-identity-api-version", "3",
            "--os-username", alice.user_name, "--os-password", alice.password,
            "--os-project-name", alice.project_name, "--os-user-domain-name", "Default",
            "--os-project-domain-name", "Default", "--os-region-name", "RegionOne"]
    made = _openstack_cli(*auth, "share", "create", "NFS", "1", "--name", "ks-made", "-f", "value", "-c", "id",
                          home=tmp_path)
    assert made.returncode == 0, made.stderr
    share_id = made.stdout.strip()
    listed = _openstack_cli(*auth, "share", "list", "-f", "value", "-c", "ID", "-c", "Name", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert f"{share_id} ks-made" in listed.stdout
    wrong = _openstack_cli(*auth[:7], "wrong", *auth[8:], "share", "list", home=tmp_path)
    assert wrong.returncode != 0 and "401" in wrong.stderr + wrong.stdout


def test_manilaclient_with_a_keystoneauth_session(served, keystone_server, keystone_users):
    """How Python programs (Horizon, scripts, tempest's clients) use Manila:
    a keystoneauth1 session; the client finds the endpoint in the catalog."""
    from keystoneauth1 import session
    from keystoneauth1.identity import v3
    from manilaclient import client as manila_client

    bob = keystone_users.bob
    sess = session.Session(auth=v3.Password(
        auth_url=keystone_server.url, username=bob.user_name, password=bob.password,
        project_name=bob.project_name, user_domain_name="Default", project_domain_name="Default"))
    manila = manila_client.Client("2.65", session=sess, service_type="sharev2", region_name="RegionOne")
    share = manila.shares.create("NFS", 1, name="session-made")
    assert share.project_id == bob.project_id
    assert "session-made" in [s.name for s in manila.shares.list()]
    # Alice's shares are not Bob's.
    assert "ks-made" not in [s.name for s in manila.shares.list()]


# --- configuration ----------------------------------------------------------------


def parse_auth(tmp_path: Path, auth: dict):
    return parse({"state_dir": str(tmp_path), "auth": auth}, tmp_path / "shareflow.toml")


def test_configuration_is_read_and_checked(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    config = parse_auth(tmp_path, {"strategy": "keystone", "keystone": {
        "auth_url": "http://keystone.example:5000/v3/", "username": "manila", "password_file": "pw",
        "project_name": "service", "cache_seconds": 0}}).auth.keystone
    assert (config.auth_url, config.password, config.cache_seconds, config.timeout) == (
        "http://keystone.example:5000/v3", "s3cret", 0.0, 5.0)
    assert "s3cret" not in repr(config)


@pytest.mark.parametrize("keystone, message", [
    ({}, "auth.keystone.auth_url: required"),
    ({"auth_url": "keystone:5000/v3"}, "is not an http(s) URL"),
    ({"auth_url": "http://k:5000"}, "must be Keystone's v3 endpoint"),
    ({"auth_url": "http://k:5000/v3", "username": "u", "project_name": "p"}, "exactly one of password"),
    ({"auth_url": "http://k:5000/v3", "username": "u", "project_name": "p", "password": "x",
      "cache_seconds": -1}, "must not be negative"),
    ({"auth_url": "http://k:5000/v3", "username": "u", "project_name": "p", "password": "x",
      "domain": "d"}, "unknown setting(s): domain"),
])
def test_bad_configuration_stops_the_service(tmp_path, keystone, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_auth(tmp_path, {"strategy": "keystone", "keystone": keystone})


def test_keystone_settings_with_another_strategy_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="applies only with auth.strategy"):
        parse_auth(tmp_path, {"strategy": "tokens", "keystone": {"auth_url": "http://k:5000/v3"}})


def test_services_need_no_keystone_to_start(tmp_path, zookeeper_server):
    """The API starts even while Keystone is down (it is asked per request):
    an API and a Keystone restarted together must not depend on their order."""
    with chroot(zookeeper_server.hosts) as zk_root:
        env = build_env(tmp_path, zookeeper_server.hosts, zk_root)
        try:
            config = dataclasses.replace(env.config, auth=AuthConfig(
                strategy="keystone", tokens_file=env.config.auth.tokens_file,
                keystone=KeystoneConfig(auth_url=f"http://127.0.0.1:{free_port()}/v3", username="u",
                                        password="p", project_name="p")))
            app = falcon.testing.TestClient(create_app(config, Services(config)))
            assert app.simulate_get("/").status_code in (200, 300)
        finally:
            env.services.close()
