"""Unmodified clients against the API served over real HTTP (wsgiref, loopback).

* python-manilaclient, without Keystone: ``Client('2.65', input_auth_token=T,
  service_catalog_url=URL/v2)``;
* openstacksdk with ``auth_type='none'`` (keystoneauth then sends
  ``X-Auth-Token: notused``, which only the noauth strategy accepts);
* openstacksdk carrying a real token in "tokens" mode: ``auth_type='admin_token'``
  with ``auth={'endpoint': URL/v2, 'token': T}``;
* the ``openstack`` CLI the same way: ``openstack --os-auth-type admin_token
  --os-endpoint URL/v2 --os-token T share list``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from manilaclient import client as manila_client
from manilaclient.common.apiclient import exceptions as manila_exc

from tests.api.conftest import ApiEnv, build_env
from tests.fixtures.coordination import chroot


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _Server:
    """The app on 127.0.0.1:<free port> in a thread; remembers every status it sent."""

    def __init__(self, app):
        self.statuses: list[str] = []

        def recording(environ, start_response):
            def start(status, headers, exc_info=None):
                self.statuses.append(status)
                return start_response(status, headers, exc_info)
            return app(environ, start)

        self.httpd: WSGIServer = make_server("127.0.0.1", 0, recording, handler_class=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="wsgiref", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)
        server_errors = [s for s in self.statuses if s.startswith("5")]
        assert not server_errors, server_errors


def _serve(zookeeper_server, tmp_path_factory, strategy: str) -> Iterator[tuple[ApiEnv, _Server]]:
    with chroot(zookeeper_server.hosts) as zk_root:
        env = build_env(tmp_path_factory.mktemp(strategy), zookeeper_server.hosts, zk_root,
                        strategy=strategy)
        server = _Server(env.client.app)
        try:
            yield env, server
        finally:
            server.close()
            env.close()


@pytest.fixture(scope="module")
def tokens_server(zookeeper_server, tmp_path_factory):
    yield from _serve(zookeeper_server, tmp_path_factory, "tokens")


@pytest.fixture(scope="module")
def noauth_server(zookeeper_server, tmp_path_factory):
    yield from _serve(zookeeper_server, tmp_path_factory, "noauth")


def manila(server: _Server, token: str, version: str = "2.65"):
    return manila_client.Client(version, input_auth_token=token, service_catalog_url=f"{server.url}/v2")


def test_manilaclient_lifecycle(tokens_server):
    env, server = tokens_server
    admin = manila(server, env.tokens["admin"])
    gold = admin.share_types.create(f"gold-{uuid.uuid4().hex[:6]}", spec_driver_handles_share_servers=False,
                                    spec_snapshot_support=True, description="fast")
    assert gold.is_public is True and gold.get_keys()["snapshot_support"] == "True"
    assert gold.id in [t.id for t in admin.share_types.list()]
    # Scoped by another scope than capabilities: the scheduler ignores it (an
    # unscoped "tier" would be a capability no pool reports: no valid host).
    gold.set_keys({"custom:tier": "1"})
    assert admin.share_types.get(gold.id).extra_specs["custom:tier"] == "1"
    assert admin.share_types.get().name == "default"  # GET /types/default

    alice = manila(server, env.tokens["alice"])
    share = alice.shares.create("NFS", 1, name="client-made", share_type=gold.name, metadata={"a": "b"})
    assert share.status == "creating" and share.share_type_name == gold.name
    assert share.project_id == "proj-a" and share.metadata == {"a": "b"}
    assert share.id in [s.id for s in alice.shares.list()]
    assert share.id in [s.id for s in alice.shares.list(detailed=False)]
    fetched = alice.shares.get(share.id)
    assert fetched.name == "client-made"
    alice.shares.update(share.id, display_name="renamed", display_description="by client")
    assert alice.shares.get(share.id).name == "renamed"

    el_id = env.add_export_location(share.id, "10.0.0.9:/shares/client-made")
    locations = alice.share_export_locations.list(share.id)
    assert [(el.id, el.path) for el in locations] == [(el_id, "10.0.0.9:/shares/client-made")]
    assert alice.share_export_locations.get(share.id, el_id).path == "10.0.0.9:/shares/client-made"

    env.set_share_status(share.id, "available")
    rule = alice.shares.allow(share.id, "ip", "10.0.0.0/24", "ro")
    assert rule["access_to"] == "10.0.0.0/24" and rule["access_level"] == "ro"
    rules = alice.share_access_rules.access_list(share.id)
    assert [r.id for r in rules] == [rule["id"]]
    alice.shares.deny(share.id, rule["id"])


def test_manilaclient_errors_carry_our_messages(tokens_server):
    env, server = tokens_server
    alice = manila(server, env.tokens["alice"])
    with pytest.raises(manila_exc.BadRequest) as e:
        alice.shares.create("NFS", 0)
    assert "must be an integer and greater than 0" in str(e.value)
    assert e.value.request_id.startswith("req-")
    with pytest.raises(manila_exc.NotFound) as e:
        alice.shares.get(str(uuid.uuid4()))
    assert "could not be found" in str(e.value)
    with pytest.raises(manila_exc.Forbidden):
        alice.share_types.create("nope", spec_driver_handles_share_servers=False)
    share = alice.shares.create("NFS", 1)
    with pytest.raises(manila_exc.Forbidden) as e:
        alice.shares.delete(share.id)  # still creating
    assert "creating" in str(e.value)
    with pytest.raises(manila_exc.Unauthorized):
        manila(server, "not-a-token").shares.list()
    # Discovery over GET / (what `manila --os-share-api-version` and OSC use).
    assert alice.services.server_api_version()[0].version == "2.67"


def test_manilaclient_old_microversion(tokens_server):
    env, server = tokens_server
    alice = manila(server, env.tokens["alice"], "2.5")
    share = alice.shares.create("NFS", 1, name="legacy")
    assert share.export_locations == [] and share.share_type == "default"
    env.set_share_status(share.id, "available")
    rule = alice.shares.allow(share.id, "ip", "10.1.0.1", "rw")  # os-allow_access before 2.7
    assert rule["state"] == "new"
    assert [r.id for r in alice.shares.access_list(share.id)] == [rule["id"]]


def test_openstacksdk_noauth(noauth_server):
    import openstack

    _, server = noauth_server
    conn = openstack.connect(auth_type="none", shared_file_system_endpoint_override=f"{server.url}/v2")
    fs = conn.shared_file_system
    share = fs.create_share(size=1, share_protocol="NFS", name="sdk-made")
    assert share.status == "creating" and share.project_id == "notused"
    assert share.id in [s.id for s in fs.shares()]
    assert fs.get_share(share.id).name == "sdk-made"
    assert "default" in [t.name for t in fs.share_types()]


def test_openstacksdk_with_a_real_token(tokens_server):
    import openstack
    from openstack import exceptions as sdk_exc

    env, server = tokens_server
    endpoint = f"{server.url}/v2"
    conn = openstack.connect(auth_type="admin_token",
                             auth={"endpoint": endpoint, "token": env.tokens["bob"]},
                             shared_file_system_endpoint_override=endpoint)
    fs = conn.shared_file_system
    share = fs.create_share(size=1, share_protocol="NFS", name="sdk-token")
    assert share.project_id == "proj-b"
    assert share.id in [s.id for s in fs.shares()]
    # admin_token serves its endpoint for every service: no override needed.
    plain = openstack.connect(auth_type="admin_token", auth={"endpoint": endpoint, "token": env.tokens["bob"]})
    assert share.id in [s.id for s in plain.shared_file_system.shares()]

    bad = openstack.connect(auth_type="admin_token", auth={"endpoint": endpoint, "token": "wrong"},
                            shared_file_system_endpoint_override=endpoint)
    with pytest.raises(sdk_exc.HttpException) as e:
        list(bad.shared_file_system.shares())
    assert e.value.status_code == 401


def _openstack_cli(*argv: str, home) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["HOME"] = str(home)  # no clouds.yaml of the machine's user
    return subprocess.run([sys.executable, "-m", "openstackclient.shell", *argv],
                          capture_output=True, text=True, timeout=120, env=env)


def test_openstack_cli_with_a_real_token(tokens_server, tmp_path):
    env, server = tokens_server
    auth = ["--os-auth-type", "admin_token", "--os-endpoint", f"{server.url}/v2",
            "--os-token=" + env.tokens["alice"]]  # a token may start with "-"
    made = _openstack_cli(*auth, "share", "create", "NFS", "1", "--name", "osc-made",
                          "-f", "value", "-c", "id", home=tmp_path)
    assert made.returncode == 0, made.stderr
    share_id = made.stdout.strip()
    listed = _openstack_cli(*auth, "share", "list", "-f", "value", "-c", "ID", "-c", "Name", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert f"{share_id} osc-made" in listed.stdout
    denied = _openstack_cli("--os-auth-type", "admin_token", "--os-endpoint", f"{server.url}/v2",
                            "--os-token", "wrong", "share", "list", home=tmp_path)
    assert denied.returncode != 0


def test_manilaclient_type_update_and_access_lists(tokens_server):
    """``share_types.update`` (2.50), ``share_type_access`` add/remove/list,
    and what a member then sees and may use, all unmodified client calls."""
    env, server = tokens_server
    admin = manila(server, env.tokens["admin"])
    alice, bob = manila(server, env.tokens["alice"]), manila(server, env.tokens["bob"])
    name = f"priv-{uuid.uuid4().hex[:6]}"
    stype = admin.share_types.create(name, spec_driver_handles_share_servers=False, is_public=False,
                                     description="first")
    assert stype.is_public is False
    assert stype.id in [t.id for t in admin.share_types.list(show_all=True)]
    assert stype.id not in [t.id for t in admin.share_types.list(show_all=False)]
    assert stype.id not in [t.id for t in alice.share_types.list()]
    assert admin.share_type_access.list(stype) == []

    admin.share_type_access.add_project_access(stype, "proj-a")
    assert [(a.share_type_id, a.project_id) for a in admin.share_type_access.list(stype)] == [
        (stype.id, "proj-a")]
    assert stype.id in [t.id for t in alice.share_types.list()]
    assert alice.share_types.get(stype.id).name == name
    share = alice.shares.create("NFS", 1, share_type=name)
    assert share.share_type == stype.id
    with pytest.raises(manila_exc.NotFound):
        bob.shares.create("NFS", 1, share_type=name)
    with pytest.raises(manila_exc.NotFound):
        bob.share_types.get(stype.id)
    with pytest.raises(manila_exc.Conflict):
        admin.share_type_access.add_project_access(stype, "proj-a")
    with pytest.raises(manila_exc.Forbidden):
        alice.share_type_access.list(stype)

    renamed = admin.share_types.update(stype, name=f"{name}-2", description="second")
    assert renamed.name == f"{name}-2" and renamed.description == "second" and renamed.is_public is False
    admin.share_type_access.remove_project_access(stype, "proj-a")
    assert admin.share_type_access.list(stype) == []
    assert stype.id not in [t.id for t in alice.share_types.list()]
    with pytest.raises(manila_exc.NotFound):
        admin.share_type_access.remove_project_access(stype, "proj-a")
    public = admin.share_types.update(stype, is_public=True)
    assert public.is_public is True and stype.id in [t.id for t in bob.share_types.list()]
    with pytest.raises(manila_exc.Conflict):
        admin.share_types.update(stype, name="default")
    with pytest.raises(manila_exc.NotFound):  # a public type has no access list
        admin.share_type_access.list(stype)


def test_manilaclient_with_a_reader_token_reads_and_is_refused_every_change(tokens_server):
    """``shareflow token issue --role reader``: Manila's reader persona, through an unmodified client."""
    from shareflow.auth.tokens import TokenFile

    env, server = tokens_server
    alice = manila(server, env.tokens["alice"])
    share = alice.shares.create("NFS", 1, name="read-me", metadata={"k": "v"})
    env.set_share_status(share.id, "available")
    rule = alice.shares.allow(share.id, "ip", "10.0.9.0/24", "ro")
    reader = manila(server, TokenFile(env.config.auth.tokens_file).issue("proj-a", "rita", role="reader")[0])

    assert reader.shares.get(share.id).name == "read-me"
    assert share.id in [s.id for s in reader.shares.list()]
    assert reader.shares.get_metadata(share.id)._info == {"k": "v"}
    assert [r.id for r in reader.share_access_rules.access_list(share.id)] == [rule["id"]]
    refusals = {
        "create": lambda: reader.shares.create("NFS", 1),
        "update": lambda: reader.shares.update(share.id, display_name="mine"),
        "delete": lambda: reader.shares.delete(share.id),
        "allow_access": lambda: reader.shares.allow(share.id, "ip", "10.0.10.1", "rw"),
        "deny_access": lambda: reader.shares.deny(share.id, rule["id"]),
        "extend": lambda: reader.shares.extend(share.id, 2),
        "update_share_metadata": lambda: reader.shares.set_metadata(share.id, {"k": "w"}),
        "create_snapshot": lambda: reader.share_snapshots.create(share.id),
    }
    for rule_name, change in refusals.items():
        with pytest.raises(manila_exc.Forbidden) as refused:
            change()
        assert f"share:{rule_name}" in str(refused.value), rule_name
    after = alice.shares.get(share.id)
    assert (after.name, after.size, after.status, after.metadata) == ("read-me", 1, "available", {"k": "v"})
    assert [r.id for r in alice.share_access_rules.access_list(share.id)] == [rule["id"]]
