"""The built-in identity's routes in-process (``[auth] strategy = "identity"``):
Keystone v3's discovery, ``/v3/auth/tokens`` with the password and
application credential methods, validation and revocation, and the share
API accepting its tokens (and the static ones beside them). Every error is
Keystone's body. Time is the environment's clock, moved by the tests."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import falcon.testing
import pytest

from shareflow.api.app import create_app
from shareflow.auth.tokens import TokenFile
from shareflow.db.engine import Database
from shareflow.db.migrate import upgrade
from shareflow.services.context import Caller
from shareflow.services.identity import IdentityService
from shareflow.wiring import Services, utcnow
from tests.api.conftest import DEFAULT_TYPE_SPECS, make_config, report_pool
from tests.fixtures.coordination import chroot

TOKENS = "/identity/v3/auth/tokens"
PASSWORD = "correct horse battery staple"


class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Env:
    def __init__(self, config, services: Services, clock: Clock):
        self.config = config
        self.services = services
        self.clock = clock
        self.client = falcon.testing.TestClient(create_app(config, services))
        self.identity = IdentityService(config.identity, services.db, clock=clock)

    def request(self, method: str, path: str, *, token: str | None = None, subject: str | None = None,
                json_body=None, headers: dict | None = None):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["X-Auth-Token"] = token
        if subject is not None:
            hdrs["X-Subject-Token"] = subject
        if path.startswith("/v2"):
            hdrs.setdefault("X-OpenStack-Manila-API-Version", "2.65")
        kwargs = {"json": json_body} if json_body is not None else {}
        result = self.client.simulate_request(method, path, headers=hdrs, **kwargs)
        assert result.status_code < 500, result.text
        if result.status_code >= 400 and path.startswith("/identity") and method != "HEAD":
            assert_keystone_error(result, result.status_code)
        return result

    def login(self, user: str, password: str = PASSWORD, project: str | None = None, *,
              by_id: bool = False, project_by_id: bool = False):
        user_ref = {"id": user} if by_id else {"name": user, "domain": {"name": "Default"}}
        auth = {"identity": {"methods": ["password"], "password": {"user": {**user_ref, "password": password}}}}
        if project is not None:
            auth["scope"] = {"project": {"id": project} if project_by_id
                             else {"name": project, "domain": {"id": "default"}}}
        return self.request("POST", TOKENS, json_body={"auth": auth})

    def token(self, user: str, project: str) -> str:
        result = self.login(user, project=project)
        assert result.status_code == 201, result.text
        return result.headers["X-Subject-Token"]

    def user(self, project: str, *roles: str) -> str:
        name = f"u-{uuid.uuid4().hex[:8]}"
        self.identity.create_user(name, PASSWORD)
        for role in roles:
            self.identity.add_role(name, project, role)
        return name


def assert_keystone_error(result, status: int) -> str:
    assert result.status_code == status, result.text
    body = json.loads(result.text)
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == status and body["error"]["title"] and body["error"]["message"]
    assert "Traceback" not in body["error"]["message"]
    return body["error"]["message"]


@pytest.fixture(scope="module")
def env(zookeeper_server, tmp_path_factory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("identity")
    with chroot(zookeeper_server.hosts) as zk_root:
        config = make_config(tmp, zookeeper_server.hosts, zk_root, strategy="identity")
        db = Database(config.database.url)
        try:
            upgrade(db)
        finally:
            db.dispose()
        clock = Clock()
        services = Services(config, clock=clock)
        try:
            report_pool(services.db)
            services.share_types.create(Caller(project_id="x", user_id="root", is_admin=True),
                                        name=config.default_share_type, extra_specs=DEFAULT_TYPE_SPECS)
            e = Env(config, services, clock)
            for name in ("proj-a", "proj-b", "admin"):
                e.identity.create_project(name)
            yield e
        finally:
            services.close()


@pytest.fixture(autouse=True)
def _clock_at_now(env):
    """Every test starts at the real time (one that moved the clock does not leak)."""
    env.clock.now = utcnow()


def test_version_discovery_in_the_shapes_keystoneauth_reads(env):
    root = env.request("GET", "/identity")
    assert root.status_code == 300
    (version,) = root.json["versions"]["values"]
    assert version["id"].startswith("v3.") and version["status"] == "stable"
    assert version["links"][0]["href"] == "http://falconframework.org/identity/v3/"
    v3 = env.request("GET", "/identity/v3")
    assert v3.status_code == 200 and v3.json["version"]["id"] == version["id"]
    # The share API's own versions document is unchanged: exactly one version.
    assert len(env.request("GET", "/").json["versions"]) == 1


def test_password_token_by_names_has_keystones_body_and_a_catalog(env):
    user = env.user("proj-a", "member")
    result = env.login(user, project="proj-a")
    assert result.status_code == 201, result.text
    token = result.headers["X-Subject-Token"]
    body = result.json["token"]
    assert body["methods"] == ["password"]
    assert body["user"]["name"] == user and body["user"]["domain"]["id"] == "default"
    assert body["project"]["name"] == "proj-a"
    assert sorted(r["name"] for r in body["roles"]) == ["member", "reader"]
    issued = datetime.strptime(body["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    expires = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert expires - issued == timedelta(seconds=env.config.identity.token_expiration)
    by_type = {s["type"]: s for s in body["catalog"]}
    for kind in ("sharev2", "shared-file-system"):
        endpoints = by_type[kind]["endpoints"]
        assert sorted(e["interface"] for e in endpoints) == ["admin", "internal", "public"]
        assert all(e["region"] == "RegionOne" and e["region_id"] == "RegionOne" for e in endpoints)
        assert all(e["url"] == "http://falconframework.org/v2" for e in endpoints)
    assert by_type["identity"]["endpoints"][0]["url"] == "http://falconframework.org/identity"
    # The token is the user's on the share API.
    shares = env.request("GET", "/v2/shares", token=token)
    assert shares.status_code == 200, shares.text
    project_id = body["project"]["id"]
    assert env.request("GET", f"/v2/{project_id}/shares", token=token).status_code == 200


def test_password_token_by_ids_and_without_a_catalog(env):
    user = env.user("proj-a", "member")
    user_id = env.identity.user(user).id
    project_id = env.identity.project("proj-a").id
    result = env.login(user_id, by_id=True, project=project_id, project_by_id=True)
    assert result.status_code == 201, result.text
    assert result.json["token"]["project"]["id"] == project_id
    nocatalog = env.client.simulate_post(TOKENS, params={"nocatalog": ""}, json={"auth": {
        "identity": {"methods": ["password"], "password": {"user": {"id": user_id, "password": PASSWORD}}},
        "scope": {"project": {"id": project_id}}}})
    assert nocatalog.status_code == 201 and "catalog" not in nocatalog.json["token"]


@pytest.mark.parametrize("case", ["wrong password", "unknown user", "unknown project", "no role",
                                  "other domain", "disabled user"])
def test_bad_credentials_or_scope_are_401_with_keystones_body(env, case):
    user = env.user("proj-a", "member")
    if case == "wrong password":
        result = env.login(user, "nope", project="proj-a")
    elif case == "unknown user":
        result = env.login("nobody-" + uuid.uuid4().hex, project="proj-a")
    elif case == "unknown project":
        result = env.login(user, project="no-such-project")
    elif case == "no role":
        result = env.login(user, project="proj-b")
    elif case == "disabled user":
        env.identity.update_user(user, enabled=False)
        result = env.login(user, project="proj-a")
    else:
        result = env.request("POST", TOKENS, json_body={"auth": {"identity": {"methods": ["password"], "password": {
            "user": {"name": user, "domain": {"name": "Elsewhere"}, "password": PASSWORD}}}}})
    message = assert_keystone_error(result, 401)
    assert message == "The request you have made requires authentication."
    assert result.json["error"]["title"] == "Unauthorized"


@pytest.mark.parametrize("body", [
    {}, {"auth": "x"}, {"auth": {}}, {"auth": {"identity": {"methods": ["kerberos"]}}},
    {"auth": {"identity": {"methods": ["password"], "password": {"user": {"password": PASSWORD}}}}},
    {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "a", "password": 1}}}}},
    {"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "a", "password": "p"}}}}},
    {"auth": {"identity": {"methods": ["application_credential"], "application_credential": {"id": "x"}}}},
])
def test_malformed_auth_requests_are_400_with_keystones_body(env, body):
    assert_keystone_error(env.request("POST", TOKENS, json_body=body), 400)


def test_unknown_identity_routes_answer_keystones_body(env):
    assert_keystone_error(env.request("GET", "/identity/v3/nothing"), 404)
    assert_keystone_error(env.request("PUT", TOKENS), 405)


def test_unscoped_token_is_issued_but_not_accepted_by_the_share_api(env):
    user = env.user("proj-a", "member")
    result = env.login(user)
    assert result.status_code == 201 and "project" not in result.json["token"]
    assert env.request("GET", "/v2/shares", token=result.headers["X-Subject-Token"]).status_code == 401


def test_expired_token_is_401_on_the_share_api_and_404_when_validated(env):
    user = env.user("proj-a", "member")
    token = env.token(user, "proj-a")
    assert env.request("GET", "/v2/shares", token=token).status_code == 200
    env.clock.advance(env.config.identity.token_expiration + 1)
    assert env.request("GET", "/v2/shares", token=token).status_code == 401
    admin = env.token(env.user("admin", "admin"), "admin")
    assert_keystone_error(env.request("GET", TOKENS, token=admin, subject=token), 404)


def test_validate_head_and_revoke(env):
    user = env.user("proj-a", "member")
    token = env.token(user, "proj-a")
    other = env.token(env.user("proj-a", "member"), "proj-a")
    own = env.request("GET", TOKENS, token=token, subject=token)
    assert own.status_code == 200 and own.headers["X-Subject-Token"] == token
    assert own.json["token"]["user"]["name"] == user
    assert env.request("HEAD", TOKENS, token=token, subject=token).status_code == 200
    # Another member's token is not this user's to read or revoke.
    assert_keystone_error(env.request("GET", TOKENS, token=other, subject=token), 403)
    assert_keystone_error(env.request("DELETE", TOKENS, token=other, subject=token), 403)
    assert_keystone_error(env.request("GET", TOKENS, subject=token), 401)
    assert_keystone_error(env.request("GET", TOKENS, token=token), 400)
    # An admin may validate anyone's token.
    admin = env.token(env.user("admin", "admin"), "admin")
    assert env.request("GET", TOKENS, token=admin, subject=token).status_code == 200
    assert env.request("DELETE", TOKENS, token=token, subject=token).status_code == 204
    assert env.request("GET", "/v2/shares", token=token).status_code == 401
    assert_keystone_error(env.request("GET", TOKENS, token=admin, subject=token), 404)
    assert env.request("GET", "/v2/shares", token=other).status_code == 200


def test_tampered_token_is_401(env):
    token = env.token(env.user("proj-a", "member"), "proj-a")
    middle = len(token) // 2
    tampered = token[:middle] + ("A" if token[middle] != "A" else "B") + token[middle + 1:]
    assert env.request("GET", "/v2/shares", token=tampered).status_code == 401
    assert env.request("GET", "/v2/shares", token="gAAAAA" + "x" * 100).status_code == 401


def test_token_of_project_a_does_not_see_project_bs_share(env):
    a = env.token(env.user("proj-a", "member"), "proj-a")
    b = env.token(env.user("proj-b", "member"), "proj-b")
    created = env.request("POST", "/v2/shares", token=b,
                          json_body={"share": {"size": 1, "share_proto": "NFS", "name": "b-share"}})
    assert created.status_code == 200, created.text
    share_id = created.json["share"]["id"]
    assert env.request("GET", f"/v2/shares/{share_id}", token=b).status_code == 200
    assert env.request("GET", f"/v2/shares/{share_id}", token=a).status_code == 404
    assert env.request("DELETE", f"/v2/shares/{share_id}", token=a).status_code == 404


def test_removing_the_role_ends_the_users_tokens(env):
    user = env.user("proj-a", "member")
    token = env.token(user, "proj-a")
    env.identity.remove_role(user, "proj-a", "member")
    assert env.request("GET", "/v2/shares", token=token).status_code == 401


def test_admin_role_makes_an_admin_caller_and_reader_is_carried(env):
    admin = env.token(env.user("admin", "admin"), "admin")
    body = env.request("GET", TOKENS, token=admin, subject=admin).json["token"]
    assert sorted(r["name"] for r in body["roles"]) == ["admin", "member", "reader"]
    # Admin-only route of the share API: the admin role is its admin, a member is not.
    assert env.request("GET", "/v2/services", token=admin).status_code == 200
    member = env.token(env.user("proj-a", "member"), "proj-a")
    assert env.request("GET", "/v2/services", token=member).status_code == 403
    reader = env.token(env.user("proj-a", "reader"), "proj-a")
    body = env.request("GET", TOKENS, token=reader, subject=reader).json["token"]
    assert [r["name"] for r in body["roles"]] == ["reader"]


def test_failed_attempts_back_off_without_checking_the_password(env):
    user = env.user("proj-a", "member")
    attempts = env.config.identity.lockout_failure_attempts
    for _ in range(attempts):
        assert_keystone_error(env.login(user, "wrong", project="proj-a"), 401)
    # Locked: the right password is refused too, until the delay has passed.
    assert_keystone_error(env.login(user, project="proj-a"), 401)
    env.clock.advance(env.config.identity.lockout_duration + 1)
    assert env.login(user, project="proj-a").status_code == 201
    # A success resets the count: one failure does not lock again.
    assert_keystone_error(env.login(user, "wrong", project="proj-a"), 401)
    assert env.login(user, project="proj-a").status_code == 201


def test_the_back_off_doubles_with_each_further_failure(env):
    user = env.user("proj-a", "member")
    duration = env.config.identity.lockout_duration
    for _ in range(env.config.identity.lockout_failure_attempts):
        env.login(user, "wrong", project="proj-a")
    env.clock.advance(duration + 1)
    assert_keystone_error(env.login(user, "wrong", project="proj-a"), 401)  # locked for 2x now
    env.clock.advance(duration + 1)
    assert_keystone_error(env.login(user, project="proj-a"), 401)
    env.clock.advance(duration)
    assert env.login(user, project="proj-a").status_code == 201


def _app_credential_auth(**credential) -> dict:
    return {"auth": {"identity": {"methods": ["application_credential"],
                                  "application_credential": credential}}}


def test_application_credential_by_id_and_by_name(env):
    user = env.user("proj-a", "member")
    credential, secret = env.identity.create_app_credential(user, "proj-a", "ci", roles=["reader"])
    by_id = env.request("POST", TOKENS, json_body=_app_credential_auth(id=credential.id, secret=secret))
    assert by_id.status_code == 201, by_id.text
    body = by_id.json["token"]
    assert body["methods"] == ["application_credential"] and body["project"]["name"] == "proj-a"
    assert [r["name"] for r in body["roles"]] == ["reader"]
    assert body["application_credential"]["id"] == credential.id
    by_name = env.request("POST", TOKENS, json_body=_app_credential_auth(
        name="ci", secret=secret, user={"name": user, "domain": {"name": "Default"}}))
    assert by_name.status_code == 201, by_name.text
    token = by_name.headers["X-Subject-Token"]
    assert env.request("GET", "/v2/shares", token=token).status_code == 200
    assert_keystone_error(env.request("POST", TOKENS, json_body=_app_credential_auth(id=credential.id,
                                                                                   secret="wrong")), 401)
    # Scoped elsewhere than its project: refused.
    other = _app_credential_auth(id=credential.id, secret=secret)
    other["auth"]["scope"] = {"project": {"name": "proj-b", "domain": {"name": "Default"}}}
    assert_keystone_error(env.request("POST", TOKENS, json_body=other), 401)
    # Deleting the credential ends its tokens.
    env.identity.delete_app_credential(credential.id)
    assert env.request("GET", "/v2/shares", token=token).status_code == 401


def test_application_credential_roles_are_a_subset_and_it_expires(env):
    user = env.user("proj-a", "reader")
    with pytest.raises(Exception, match="does not hold"):
        env.identity.create_app_credential(user, "proj-a", "too-much", roles=["member"])
    credential, secret = env.identity.create_app_credential(
        user, "proj-a", "short", expires_at=env.clock.now + timedelta(seconds=600))
    result = env.request("POST", TOKENS, json_body=_app_credential_auth(id=credential.id, secret=secret))
    assert result.status_code == 201
    # The token does not outlive its credential.
    assert result.json["token"]["expires_at"].startswith(
        (env.clock.now + timedelta(seconds=600)).strftime("%Y-%m-%dT%H:%M"))
    env.clock.advance(601)
    assert_keystone_error(env.request("POST", TOKENS, json_body=_app_credential_auth(
        id=credential.id, secret=secret)), 401)
    assert env.request("GET", "/v2/shares", token=result.headers["X-Subject-Token"]).status_code == 401


def test_tokens_survive_key_rotations_until_their_key_is_gone(env):
    token = env.token(env.user("proj-a", "member"), "proj-a")
    keys = env.identity.keys
    for _ in range(env.config.identity.max_active_keys - 1):
        keys.rotate()
        assert env.request("GET", "/v2/shares", token=token).status_code == 200
    fresh = env.token(env.user("proj-a", "member"), "proj-a")
    keys.rotate()
    assert env.request("GET", "/v2/shares", token=token).status_code == 401
    assert env.request("GET", "/v2/shares", token=fresh).status_code == 200
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in keys.path.iterdir() if p.name.isdigit())
    assert oct(keys.path.stat().st_mode & 0o777) == "0o700"


def test_static_tokens_work_beside_the_identitys(env):
    static, _ = TokenFile(env.config.auth.tokens_file).issue("scripts", "robot")
    assert env.request("GET", "/v2/shares", token=static).status_code == 200
    assert env.request("GET", "/v2/shares", token="not-a-token").status_code == 401
    assert env.request("GET", "/v2/shares").status_code == 401


V3 = "/identity/v3"


def test_admin_routes_answer_admins_and_refuse_members(env):
    admin = env.token(env.user("admin", "admin"), "admin")
    member_name = env.user("proj-a", "member")
    member = env.token(member_name, "proj-a")
    made = env.request("POST", V3 + "/users", token=admin, json_body={"user": {"name": "via-api", "password": "p"}})
    assert made.status_code == 201 and made.json["user"]["domain_id"] == "default"
    user_id = made.json["user"]["id"]
    assert_keystone_error(env.request("POST", V3 + "/users", token=admin,
                                      json_body={"user": {"name": "via-api", "password": "p"}}), 409)
    assert_keystone_error(env.request("POST", V3 + "/users", token=admin, json_body={"nope": {}}), 400)
    assert_keystone_error(env.request("POST", V3 + "/users", token=admin,
                                      json_body={"user": {"name": "x", "domain_id": "other"}}), 400)
    for method, path in (("GET", "/users"), ("POST", "/users"), ("DELETE", f"/users/{user_id}"),
                         ("GET", "/projects"), ("GET", "/role_assignments"),
                         ("PUT", f"/projects/proj-a/users/{member_name}/roles/admin")):
        assert_keystone_error(env.request(method, V3 + path, token=member, json_body={"user": {"name": "y"}}), 403)
    assert_keystone_error(env.request("GET", V3 + "/users"), 401)
    assert_keystone_error(env.request("GET", V3 + "/users/nobody", token=admin), 404)
    listed = env.request("GET", V3 + "/users", token=admin, headers={}).json["users"]
    assert "via-api" in {u["name"] for u in listed}
    assert [u["name"] for u in env.client.simulate_get(V3 + "/users", params={"name": "via-api"},
                                                       headers={"X-Auth-Token": admin}).json["users"]] == ["via-api"]
    # Role assignment by the routes, as `openstack role add` makes it.
    put = env.request("PUT", f"{V3}/projects/proj-b/users/{user_id}/roles/member", token=admin)
    assert put.status_code == 204
    assert env.request("HEAD", f"{V3}/projects/proj-b/users/{user_id}/roles/member", token=admin).status_code == 204
    assert env.login("via-api", "p", project="proj-b").status_code == 201
    assert env.request("DELETE", f"{V3}/projects/proj-b/users/{user_id}/roles/member", token=admin).status_code == 204
    assert env.request("HEAD", f"{V3}/projects/proj-b/users/{user_id}/roles/member", token=admin).status_code == 404
    assert_keystone_error(env.request("DELETE", f"{V3}/projects/proj-b/users/{user_id}/roles/member",
                                      token=admin), 404)
    # A member sees itself, not others.
    me = env.identity.user(member_name).id
    assert env.request("GET", f"{V3}/users/{me}", token=member).status_code == 200
    assert_keystone_error(env.request("GET", f"{V3}/users/{user_id}", token=member), 403)
    assert env.request("DELETE", f"{V3}/users/{user_id}", token=admin).status_code == 204
    assert_keystone_error(env.request("DELETE", f"{V3}/users/{user_id}", token=admin), 404)


def test_application_credentials_by_the_routes_are_their_owners(env):
    name = env.user("proj-a", "member")
    user_id = env.identity.user(name).id
    token = env.token(name, "proj-a")
    path = f"{V3}/users/{user_id}/application_credentials"
    made = env.request("POST", path, token=token, json_body={"application_credential": {
        "name": "mine", "roles": [{"name": "reader"}]}})
    assert made.status_code == 201, made.text
    credential = made.json["application_credential"]
    assert credential["secret"] and [r["name"] for r in credential["roles"]] == ["reader"]
    # Not more than the token holds.
    assert_keystone_error(env.request("POST", path, token=token, json_body={"application_credential": {
        "name": "more", "roles": [{"name": "admin"}]}}), 403)
    # A token from an application credential cannot make another.
    restricted = env.request("POST", TOKENS, json_body=_app_credential_auth(
        id=credential["id"], secret=credential["secret"])).headers["X-Subject-Token"]
    assert_keystone_error(env.request("POST", path, token=restricted,
                                      json_body={"application_credential": {"name": "again"}}), 403)
    # Another member can neither list nor make them for this user.
    other = env.token(env.user("proj-a", "member"), "proj-a")
    assert_keystone_error(env.request("GET", path, token=other), 403)
    assert_keystone_error(env.request("POST", path, token=other,
                                      json_body={"application_credential": {"name": "x"}}), 403)
    listed = env.request("GET", path, token=token).json["application_credentials"]
    assert [c["name"] for c in listed] == ["mine"] and "secret" not in listed[0]
    assert env.request("DELETE", f"{path}/{credential['id']}", token=token).status_code == 204
    assert_keystone_error(env.request("GET", f"{path}/{credential['id']}", token=token), 404)


def test_token_method_rescopes_an_unscoped_token_and_static_admins_validate(env):
    user = env.user("proj-a", "member")
    unscoped = env.login(user).headers["X-Subject-Token"]
    rescoped = env.request("POST", TOKENS, json_body={"auth": {
        "identity": {"methods": ["token"], "token": {"id": unscoped}},
        "scope": {"project": {"name": "proj-a", "domain": {"id": "default"}}}}})
    assert rescoped.status_code == 201, rescoped.text
    assert rescoped.json["token"]["methods"] == ["token"] and rescoped.json["token"]["project"]["name"] == "proj-a"
    token = rescoped.headers["X-Subject-Token"]
    assert env.request("GET", "/v2/shares", token=token).status_code == 200
    # Not onto a project the user has no role on, nor from a token that is not valid.
    assert_keystone_error(env.request("POST", TOKENS, json_body={"auth": {
        "identity": {"methods": ["token"], "token": {"id": unscoped}},
        "scope": {"project": {"name": "proj-b", "domain": {"id": "default"}}}}}), 401)
    assert_keystone_error(env.request("POST", TOKENS, json_body={"auth": {
        "identity": {"methods": ["token"], "token": {"id": unscoped + "x"}}}}), 401)
    # A static admin token (a service's) validates the identity's tokens.
    static, _ = TokenFile(env.config.auth.tokens_file).issue("services", "validator", admin=True)
    checked = env.request("GET", TOKENS, token=static, subject=token, headers={})
    assert checked.status_code == 200 and checked.json["token"]["user"]["name"] == user


def test_a_readers_identity_token_reads_and_is_refused_writes(env):
    """The reader role of a built-in identity token reaches the share API's policy."""
    reader = env.token(env.user("proj-a", "reader"), "proj-a")
    assert env.request("GET", "/v2/shares", token=reader).status_code == 200
    refused = env.request("POST", "/v2/shares", token=reader,
                          json_body={"share": {"size": 1, "share_proto": "NFS", "name": "by-reader"}})
    assert refused.status_code == 403, refused.text
    member = env.token(env.user("proj-a", "member"), "proj-a")
    names = {s["name"] for s in env.request("GET", "/v2/shares", token=member).json["shares"]}
    assert "by-reader" not in names


def test_a_tokens_payload_is_decrypted_once_and_still_checked_each_time(env, monkeypatch):
    """The payload of a token a client sends with every request is decrypted
    once per set of keys; its expiry and revocation are still checked at each
    request, and a rotation that removes its key ends it."""
    from shareflow.identity import tokens as token_format

    decoded = []
    real = token_format.decode
    monkeypatch.setattr(token_format, "decode", lambda fernet, token: decoded.append(token) or real(fernet, token))
    identity = IdentityService(env.config.identity, env.services.db, clock=env.clock)
    token = env.token(env.user("proj-a", "member"), "proj-a")
    for _ in range(3):
        assert identity.validate(token).project.name == "proj-a"
    assert decoded == [token]
    with pytest.raises(Exception, match="not a valid token"):
        identity.validate(token[:-4] + "AAAA")
    with pytest.raises(Exception, match="not a valid token"):
        identity.validate(token[:-4] + "AAAA")
    assert len(decoded) == 3  # a token that does not decrypt is tried each time, never kept
    env.clock.advance(env.config.identity.token_expiration + 1)
    with pytest.raises(Exception, match="expired"):
        identity.validate(token)
    fresh = env.token(env.user("proj-a", "member"), "proj-a")
    assert identity.validate(fresh).project.name == "proj-a"
    identity.revoke(identity.validate(fresh))
    with pytest.raises(Exception, match="revoked"):
        identity.validate(fresh)
    newer = env.token(env.user("proj-a", "member"), "proj-a")
    assert identity.validate(newer).project.name == "proj-a"
    for _ in range(env.config.identity.max_active_keys):
        identity.keys.rotate()
    with pytest.raises(Exception, match="not a valid token"):
        identity.validate(newer)
