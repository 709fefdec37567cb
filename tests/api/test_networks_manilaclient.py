"""Share networks through unmodified python-manilaclient (and the ``openstack``
CLI) against the API served over real HTTP; provider networks made by the admin
through the API's extension."""

from __future__ import annotations

import json
import uuid

import pytest
from manilaclient.common.apiclient import exceptions as manila_exc

from tests.api.test_manilaclient import _openstack_cli, _serve, manila


@pytest.fixture(scope="module")
def server(zookeeper_server, tmp_path_factory):
    yield from _serve(zookeeper_server, tmp_path_factory, "tokens")


def provider(env, n: int) -> dict:
    body = {"provider_network": {"name": f"pn-{uuid.uuid4().hex[:6]}", "bridge": "br-mc",
                                 "cidr": f"10.210.{n}.0/24", "gateway": f"10.210.{n}.1", "mtu": 1400}}
    result = env.post("/v2/provider-networks", body, token=env.tokens["admin"])
    assert result.status_code == 201, result.text
    return result.json["provider_network"]


def test_manilaclient_share_network_lifecycle(server):
    env, srv = server
    net, other = provider(env, 1), provider(env, 2)
    alice = manila(srv, env.tokens["alice"])
    sn = alice.share_networks.create(neutron_net_id=net["id"], neutron_subnet_id=net["subnet_id"],
                                     name="client-net", description="made by manilaclient")
    assert sn.name == "client-net" and sn.status == "active" and sn.project_id == "proj-a"
    (sub,) = sn.share_network_subnets
    assert sub["neutron_net_id"] == net["id"] and sub["neutron_subnet_id"] == net["subnet_id"]
    assert sub["cidr"] == "10.210.1.0/24" and sub["gateway"] == "10.210.1.1" and sub["mtu"] == 1400

    assert sn.id in [n.id for n in alice.share_networks.list()]
    assert sn.id in [n.id for n in alice.share_networks.list(detailed=False)]
    assert [n.id for n in alice.share_networks.list(search_opts={"name": "client-net"})] == [sn.id]
    assert alice.share_networks.get(sn.id).description == "made by manilaclient"

    updated = alice.share_networks.update(sn, name="renamed", neutron_net_id=other["name"],
                                          neutron_subnet_id=other["subnet_id"])
    assert updated.name == "renamed"
    # As given (the provider network's name), on that provider network.
    assert updated.share_network_subnets[0]["neutron_net_id"] == other["name"]
    assert updated.share_network_subnets[0]["cidr"] == "10.210.2.0/24"
    got = alice.share_network_subnets.get(sn.id, sub["id"])
    assert got.share_network_name == "renamed" and got.neutron_subnet_id == other["subnet_id"]

    # Older clients see the flattened fields.
    old = manila(srv, env.tokens["alice"], "2.20").share_networks.get(sn.id)
    assert old.neutron_net_id == other["name"] and old.mtu == 1400 and old.cidr == "10.210.2.0/24"

    bob = manila(srv, env.tokens["bob"])
    with pytest.raises(manila_exc.NotFound):
        bob.share_networks.get(sn.id)
    assert sn.id not in [n.id for n in bob.share_networks.list()]
    admin = manila(srv, env.tokens["admin"])
    everyone = admin.share_networks.list(search_opts={"all_tenants": 1})
    assert sn.id in [n.id for n in everyone]
    assert admin.share_networks.get(sn.id).share_network_subnets[0]["network_type"] == "flat"

    alice.share_networks.delete(sn)
    with pytest.raises(manila_exc.NotFound):
        alice.share_networks.get(sn.id)


def test_manilaclient_share_network_errors(server):
    env, srv = server
    net, other = provider(env, 3), provider(env, 4)
    alice = manila(srv, env.tokens["alice"])
    # Ids that name no provider network together are accepted as Manila accepts them (stored as given).
    mixed = alice.share_networks.create(neutron_net_id=net["id"], neutron_subnet_id=other["subnet_id"])
    assert mixed.share_network_subnets[0]["neutron_subnet_id"] == other["subnet_id"]
    assert mixed.share_network_subnets[0]["cidr"] is None
    alice.share_networks.delete(mixed)
    with pytest.raises(manila_exc.BadRequest) as e:
        alice.share_networks.create(neutron_net_id=net["id"])
    assert "specify both neutron_net_id and neutron_subnet_id" in str(e.value)
    nowhere = alice.share_networks.create(neutron_net_id="nowhere", neutron_subnet_id=net["subnet_id"])
    assert nowhere.share_network_subnets[0]["neutron_net_id"] == "nowhere"
    alice.share_networks.delete(nowhere)


def test_openstack_cli_share_network(server, tmp_path):
    """``openstack share network create --neutron-net-id`` looks the ids up in
    Neutron first (there is none here); ``set`` passes them through as they are."""
    env, srv = server
    net = provider(env, 5)
    auth = ["--os-auth-type", "admin_token", "--os-endpoint", f"{srv.url}/v2",
            f"--os-token={env.tokens['alice']}", "--os-share-api-version", "2.65"]

    def osc(*argv):
        result = _openstack_cli(*auth, "share", "network", *argv, home=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    sn_id = osc("create", "--name", "osc-net", "-f", "value", "-c", "id").strip()
    osc("set", sn_id, "--neutron-net-id", net["id"], "--neutron-subnet-id", net["subnet_id"])
    assert sn_id in osc("list", "-f", "value", "-c", "ID").split()
    assert net["subnet_id"] in osc("show", sn_id, "-f", "json")
    osc("delete", sn_id)
    assert sn_id not in osc("list", "-f", "value", "-c", "ID").split()


def test_manilaclient_share_network_subnets(server):
    env, srv = server
    net = provider(env, 6)
    alice = manila(srv, env.tokens["alice"])
    sn = alice.share_networks.create(name="zones")
    sub = alice.share_network_subnets.create(neutron_net_id=net["id"], neutron_subnet_id=net["subnet_id"],
                                             availability_zone="nova", share_network_id=sn.id)
    assert sub.availability_zone == "nova" and sub.neutron_net_id == net["id"]
    assert alice.share_network_subnets.get(sn.id, sub.id).cidr == "10.210.6.0/24"
    with pytest.raises(manila_exc.Conflict):
        alice.share_network_subnets.create(availability_zone="nova", share_network_id=sn.id)
    alice.share_network_subnets.delete(sn.id, sub.id)
    assert [s["id"] for s in alice.share_networks.get(sn.id).share_network_subnets] != [sub.id]
    alice.share_networks.delete(sn)


def test_openstacksdk_share_networks(server):
    import openstack

    env, srv = server
    net = provider(env, 7)
    endpoint = f"{srv.url}/v2"
    conn = openstack.connect(auth_type="admin_token", auth={"endpoint": endpoint, "token": env.tokens["alice"]},
                             shared_file_system_endpoint_override=endpoint)
    fs = conn.shared_file_system
    sn = fs.create_share_network(name="sdk-net", neutron_net_id=net["id"], neutron_subnet_id=net["subnet_id"])
    assert sn.name == "sdk-net" and sn.project_id == "proj-a"
    assert sn.id in [n.id for n in fs.share_networks()]
    got = fs.get_share_network(sn.id)
    # The SDK negotiates its own microversion: the subnets, or the flattened fields.
    subnet_id = (got.share_network_subnets[0]["neutron_subnet_id"] if got.share_network_subnets
                 else got.neutron_subnet_id)
    assert subnet_id == net["subnet_id"]
    fs.delete_share_network(sn.id)
    assert sn.id not in [n.id for n in fs.share_networks()]


def test_share_servers_through_the_openstack_cli(server, tmp_path):
    """Admins list, show, reset and delete share servers with the unmodified
    ``openstack`` CLI (the server row is made as a create would have left it;
    openstacksdk has no share server calls)."""
    from tests.api.test_share_servers_api import make_server

    env, srv = server
    sn_id, server_id = make_server(env, name="osc-servers")
    auth = ["--os-auth-type", "admin_token", "--os-endpoint", f"{srv.url}/v2",
            f"--os-token={env.tokens['admin']}", "--os-share-api-version", "2.65"]

    def osc(*argv):
        result = _openstack_cli(*auth, "share", "server", *argv, home=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert server_id in osc("list", "-f", "value", "-c", "ID").split()
    shown = json.loads(osc("show", server_id, "-f", "json"))
    assert (shown["status"], shown["share_network_id"]) == ("active", sn_id)
    # `set --status` resets the status, then the task state (to None).
    osc("set", server_id, "--status", "error")
    assert json.loads(osc("show", server_id, "-f", "json"))["status"] == "error"
    osc("delete", server_id)
    assert env.get(f"/v2/share-servers/{server_id}", token=env.tokens["admin"]).json["share_server"]["status"] \
        == "deleting"
    # A member is refused, as in Manila.
    denied = _openstack_cli("--os-auth-type", "admin_token", "--os-endpoint", f"{srv.url}/v2",
                            f"--os-token={env.tokens['alice']}", "share", "server", "list", home=tmp_path)
    assert denied.returncode != 0 and "Policy doesn't allow share_server:index" in denied.stderr
