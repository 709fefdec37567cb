"""The OpenStack clients, unmodified, against the built-in identity on the real
stack (gunicorn API, conductors, btrfs, NFS-Ganesha): what ``shareflow run``
prepares (an admin user, ``var/admin.password``, ``var/clouds.yaml``) is all
they need. keystoneauth1's Password plugin finds the share service in the
catalog; ``openstack --os-cloud shareflow`` creates, lists, grants access to
and deletes a share, and manages users, projects, roles and application
credentials; an application credential and openstacksdk work too; so do
gophercloud and manila-csi's request sequence (as against a real Keystone in
test_keystone_clients.py)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
import requests
import yaml

from shareflow.identity import bootstrap
from shareflow.services.identity import IdentityService
from shareflow.wiring import utcnow
from tests.fixtures.manila_csi import replay_manila_csi
from tests.fixtures.stack import ServiceStack, wait_until


@pytest.fixture(scope="module")
def identity_stack(zookeeper_server, btrfs_pool, tmp_path_factory) -> Iterator[tuple[ServiceStack, object]]:
    with ServiceStack(tmp_path_factory.mktemp("identity-stack"), zk_hosts=zookeeper_server.hosts,
                      btrfs_pool=btrfs_pool, auth={"strategy": "identity"}) as stack:
        identity = IdentityService(stack.config.identity, stack.db, clock=utcnow)
        login = bootstrap.prepare(stack.config, identity)
        yield stack, identity, login


def _openstack(*argv: str, clouds, home) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = str(home)  # no clouds.yaml of the machine's user
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    return subprocess.run([sys.executable, "-m", "openstackclient.shell", *argv],
                          capture_output=True, text=True, timeout=120, env=env)


def _share_status(stack, share_id: str, token: str) -> str | None:
    from manilaclient import exceptions

    try:
        return stack.manila(token=token).shares.get(share_id).status
    except exceptions.NotFound:
        return None


def test_run_prepares_an_admin_password_and_a_clouds_yaml(identity_stack):
    stack, identity, login = identity_stack
    assert login.created and login.password
    assert stat.S_IMODE(login.password_file.stat().st_mode) == 0o600
    assert login.password_file.read_text().strip() == login.password
    cloud = yaml.safe_load(login.clouds_file.read_text())["clouds"]["shareflow"]
    assert cloud["auth"]["auth_url"] == f"http://127.0.0.1:{stack.api_port}/identity/v3"
    assert cloud["auth"]["password"] == login.password and cloud["region_name"] == "RegionOne"
    # A second start keeps the user and its password.
    again = bootstrap.prepare(stack.config, identity)
    assert not again.created and again.password == login.password


def test_keystoneauth_password_finds_the_share_service_in_the_catalog(identity_stack):
    from keystoneauth1 import session
    from keystoneauth1.identity import v3

    stack, _identity, login = identity_stack
    auth = v3.Password(auth_url=f"http://127.0.0.1:{stack.api_port}/identity/v3", username="admin",
                       password=login.password, project_name="admin", user_domain_name="Default",
                       project_domain_name="Default")
    sess = session.Session(auth=auth)
    for service_type in ("sharev2", "shared-file-system"):
        assert sess.get_endpoint(service_type=service_type, interface="public",
                                 region_name="RegionOne") == stack.url
    token = sess.get_token()
    listed = sess.get(stack.url + "/shares", headers={"X-OpenStack-Manila-API-Version": "2.65"})
    assert listed.status_code == 200 and "shares" in listed.json()
    # The generic plugin (what clouds.yaml's "password" is) discovers the version first.
    from keystoneauth1.identity.generic import Password

    generic = Password(auth_url=f"http://127.0.0.1:{stack.api_port}/identity", username="admin",
                       password=login.password, project_name="admin", user_domain_name="Default",
                       project_domain_name="Default")
    assert session.Session(auth=generic).get_token() != token


def test_openstack_cli_with_the_generated_clouds_yaml(identity_stack, tmp_path):
    stack, _identity, login = identity_stack
    cloud = ["--os-cloud", "shareflow"]
    made = _openstack(*cloud, "share", "create", "NFS", "1", "--name", "osc-identity", "-f", "value", "-c", "id",
                      clouds=login.clouds_file, home=tmp_path)
    assert made.returncode == 0, made.stderr
    share_id = made.stdout.strip()
    token = stack.tokens.issue("admin-check", "root", admin=True)[0]
    wait_until(lambda: _share_status(stack, share_id, token) == "available", 60, "the share to be available")
    listed = _openstack(*cloud, "share", "list", "-f", "json", clouds=login.clouds_file, home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert share_id in {s["ID"] for s in json.loads(listed.stdout)}
    granted = _openstack(*cloud, "share", "access", "create", share_id, "ip", stack.network.clients[0].address,
                         "--wait",
                         clouds=login.clouds_file, home=tmp_path)
    assert granted.returncode == 0, granted.stderr
    deleted = _openstack(*cloud, "share", "delete", share_id, "--wait", clouds=login.clouds_file, home=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    assert _share_status(stack, share_id, token) is None


def test_application_credential_with_the_openstack_cli_and_openstacksdk(identity_stack, tmp_path, monkeypatch):
    stack, identity, login = identity_stack
    credential, secret = identity.create_app_credential("admin", "admin", "functional", roles=["member"])
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {
        "appcred": {"auth_type": "v3applicationcredential", "region_name": "RegionOne",
                    "auth": {"auth_url": f"http://127.0.0.1:{stack.api_port}/identity/v3",
                             "application_credential_id": credential.id,
                             "application_credential_secret": secret}},
        **yaml.safe_load(login.clouds_file.read_text())["clouds"]}}))
    made = _openstack("--os-cloud", "appcred", "share", "create", "NFS", "1", "--name", "by-appcred",
                      "-f", "value", "-c", "id", clouds=clouds, home=tmp_path)
    assert made.returncode == 0, made.stderr
    share_id = made.stdout.strip()
    listed = _openstack("--os-cloud", "appcred", "share", "list", "-f", "value", "-c", "ID",
                        clouds=clouds, home=tmp_path)
    assert listed.returncode == 0 and share_id in listed.stdout.split(), listed.stderr

    import openstack

    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
    for cloud in ("shareflow", "appcred"):
        conn = openstack.connect(cloud=cloud)
        try:
            assert share_id in {s.id for s in conn.shared_file_system.shares()}
        finally:
            conn.close()
    # openstacksdk creates and deletes with the password cloud too.
    conn = openstack.connect(cloud="shareflow")
    try:
        sdk_share = conn.shared_file_system.create_share(name="by-sdk", size=1, share_protocol="NFS")
        wait_until(lambda: conn.shared_file_system.get_share(sdk_share.id).status == "available", 60,
                   "the sdk's share to be available")
        conn.shared_file_system.delete_share(sdk_share.id)
        wait_until(lambda: conn.shared_file_system.find_share(sdk_share.id) is None, 60,
                   "the sdk's share to be deleted")
    finally:
        conn.close()
    token = stack.tokens.issue("admin-check2", "root", admin=True)[0]
    wait_until(lambda: _share_status(stack, share_id, token) == "available", 60, "the share to be available")
    deleted = _openstack("--os-cloud", "appcred", "share", "delete", share_id, "--wait",
                         clouds=clouds, home=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    # A wrong secret is refused by the identity, so by the client.
    clouds.write_text(clouds.read_text().replace(secret, "wrong-secret"))
    refused = _openstack("--os-cloud", "appcred", "share", "list", clouds=clouds, home=tmp_path)
    assert refused.returncode != 0


def test_openstack_cli_manages_users_projects_roles_and_application_credentials(identity_stack, tmp_path):
    stack, identity, login = identity_stack

    def osc(*argv: str) -> str:
        done = _openstack("--os-cloud", "shareflow", *argv, clouds=login.clouds_file, home=tmp_path)
        assert done.returncode == 0, f"{argv}: {done.stderr}"
        return done.stdout

    project = json.loads(osc("project", "create", "osc-demo", "--description", "made by osc", "-f", "json"))
    assert project["name"] == "osc-demo"
    user = json.loads(osc("user", "create", "osc-bob", "--password", "bob's password", "-f", "json"))
    assert user["name"] == "osc-bob"
    osc("role", "add", "--user", "osc-bob", "--project", "osc-demo", "member")
    assert "osc-bob" in {u["Name"] for u in json.loads(osc("user", "list", "-f", "json"))}
    assert "osc-demo" in {p["Name"] for p in json.loads(osc("project", "list", "-f", "json"))}
    assert {"admin", "member", "reader"} <= {r["Name"] for r in json.loads(osc("role", "list", "-f", "json"))}
    assigned = json.loads(osc("role", "assignment", "list", "--user", "osc-bob", "--names", "-f", "json"))
    assert [(a["Role"], a["Project"].split("@")[0]) for a in assigned] == [("member", "osc-demo")]
    assert json.loads(osc("user", "show", "osc-bob", "-f", "json"))["id"] == user["id"]
    # bob logs in with his new password and sees his project's (empty) share list.
    clouds = tmp_path / "bob.yaml"
    bob = yaml.safe_load(login.clouds_file.read_text())
    bob["clouds"]["shareflow"]["auth"].update(username="osc-bob", password="bob's password",
                                              project_name="osc-demo")
    clouds.write_text(yaml.safe_dump(bob))
    listed = _openstack("--os-cloud", "shareflow", "share", "list", "-f", "json", clouds=clouds, home=tmp_path)
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stderr
    # ... and is refused the admin routes.
    refused = _openstack("--os-cloud", "shareflow", "user", "list", clouds=clouds, home=tmp_path)
    assert refused.returncode != 0 and "403" in refused.stderr
    # His application credential, made with his own token.
    made = _openstack("--os-cloud", "shareflow", "application", "credential", "create", "bob-ci", "-f", "json",
                      clouds=clouds, home=tmp_path)
    assert made.returncode == 0, made.stderr
    credential = {k.lower().replace(" ", "_"): v for k, v in json.loads(made.stdout).items()}
    assert credential["secret"] and credential["project_id"] == project["id"], credential
    shown = _openstack("--os-cloud", "shareflow", "application", "credential", "list", "-f", "json",
                       clouds=clouds, home=tmp_path)
    assert shown.returncode == 0 and [c["Name"] for c in json.loads(shown.stdout)] == ["bob-ci"], shown.stderr
    gone = _openstack("--os-cloud", "shareflow", "application", "credential", "delete", "bob-ci",
                      clouds=clouds, home=tmp_path)
    assert gone.returncode == 0, gone.stderr
    osc("role", "remove", "--user", "osc-bob", "--project", "osc-demo", "member")
    assert json.loads(osc("role", "assignment", "list", "--user", "osc-bob", "-f", "json")) == []
    osc("user", "delete", "osc-bob")
    osc("project", "delete", "osc-demo")
    assert "osc-bob" not in {u.name for u in identity.users()}


def test_gophercloud_password_login_and_a_share_lifecycle_with_the_built_in_identity(identity_stack,
                                                                                    gophercloud_binary):
    """tests/clients/gophercloud/main.go (Debian's gophercloud 0.12), as against a
    real Keystone in test_keystone_clients.py, here against ``/identity/v3``."""
    stack, identity, _login = identity_stack
    identity.create_project("gopher")
    identity.create_user("gopher", "gopher's password")
    identity.add_role("gopher", "gopher", "member")
    client = stack.network.clients[1]
    env = {"PATH": os.environ["PATH"], "OS_AUTH_URL": f"http://127.0.0.1:{stack.api_port}/identity/v3",
           "OS_USERNAME": "gopher", "OS_PASSWORD": "gopher's password", "OS_PROJECT_NAME": "gopher",
           "OS_DOMAIN_NAME": "Default", "OS_REGION_NAME": "RegionOne", "SHARE_ACCESS_TO": client.address}
    ran = subprocess.run([str(gophercloud_binary)], env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    steps = {}
    for line in ran.stdout.splitlines():
        record = json.loads(line)
        steps[record["step"]] = record["value"]
    assert list(steps) == ["authenticated", "endpoint", "api_version", "created", "available", "granted",
                           "rule_active", "export_locations", "deleted"]
    assert steps["endpoint"].rstrip("/") == stack.url
    share_id = steps["created"]["id"]
    assert steps["deleted"] == share_id
    row = stack.share_row(share_id)
    assert row is None or row.project_id == identity.project("gopher").id


class _BuiltInKeystone:
    """The built-in identity, logged in to as manila-csi's client does."""

    def __init__(self, stack):
        self.url = f"http://127.0.0.1:{stack.api_port}/identity/v3"

    def token(self, user: str, password: str, project: str) -> str:
        r = requests.post(self.url + "/auth/tokens", timeout=10, json={"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": project, "domain": {"id": "default"}}}}})
        assert r.status_code == 201, r.text
        return r.headers["X-Subject-Token"]


def test_manila_csi_request_sequence_with_the_built_in_identity(identity_stack):
    stack, identity, _login = identity_stack
    identity.create_project("csi")
    identity.create_user("csi", "csi's password")
    identity.add_role("csi", "csi", "member")
    replay_manila_csi(stack, _BuiltInKeystone(stack),
                      SimpleNamespace(user_name="csi", password="csi's password", project_name="csi"))
