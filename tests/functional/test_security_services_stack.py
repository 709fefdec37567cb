"""Security services and share networks with ids this deployment does not
know, on the real stack through the unmodified python-manilaclient (the DHSS
deployment of tests/functional/test_share_servers.py).

shareflow's share servers cannot join LDAP, Kerberos or AD domains: a share
that needs a share server on a share network with a security service ends
``error`` with a user message saying so, and nothing is left of the server it
was refused (no server row, no address held). A share network whose neutron
ids name no provider network is accepted (as Manila accepts it); a share that
needs a server there ends ``error`` with a message naming the network.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from manilaclient import exceptions as mexc

from shareflow.db.models import NetworkAllocation, ShareServer
from tests.functional.test_share_servers import (  # noqa: F401  (module fixtures)
    create,
    delete_and_wait,
    dstack,
    env,
    wait_available,
)


def _servers_on(env, sn_id: str) -> int:
    with env.stack.db.read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(ShareServer).where(
            ShareServer.share_network_id == sn_id, ShareServer.deleted_at.is_(None)))


def _allocations(env, net_id: str) -> int:
    with env.stack.db.read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(NetworkAllocation).where(
            NetworkAllocation.network_id == net_id))


def _error_message(env, m, share_id: str) -> str:
    share = env.stack.wait_for_share(m, share_id, {"available", "error"}, timeout=60)
    assert share.status == "error", share.status
    (msg,) = m.messages.list(search_opts={"resource_id": share_id})
    return msg.user_message


def test_security_services_through_manilaclient_and_the_refused_share_server(env):
    m = env.tenant("tenant-ss")
    ss = m.security_services.create(type="ldap", name="corp-ldap", description="the directory",
                                    dns_ip="198.51.100.53", server="ldap.corp", domain="corp.example",
                                    user="binder", password="s3cret", ou="OU=shares")
    assert (ss.type, ss.name, ss.server, ss.ou, ss.password) == ("ldap", "corp-ldap", "ldap.corp", "OU=shares", "s3cret")
    assert [x.id for x in m.security_services.list(search_opts={"name": "corp-ldap"})] == [ss.id]
    assert m.security_services.get(ss.id).domain == "corp.example"
    updated = m.security_services.update(ss, server="ldap2.corp", description="moved")
    assert (updated.server, updated.description) == ("ldap2.corp", "moved")
    with pytest.raises(mexc.BadRequest):
        m.security_services.create(type="nis")

    sn = env.share_network("tenant-ss", env.a)
    m.share_networks.add_security_service(sn, ss)
    assert [x.id for x in m.security_services.list(search_opts={"share_network_id": sn})] == [ss.id]
    with pytest.raises(mexc.Conflict):  # one per type
        m.share_networks.add_security_service(sn, m.security_services.create(type="ldap"))
    with pytest.raises(mexc.Forbidden):  # in use by a share network
        m.security_services.delete(ss)

    # A DHSS share there needs a share server, which cannot join the domain.
    before = _allocations(env, env.a.provider_id)
    refused = create(env, m, sn, name="needs-ldap")
    message = _error_message(env, m, refused.id)
    assert "Security services (ldap) are not supported by this deployment's share servers" in message
    assert sn in message
    assert _servers_on(env, sn) == 0 and _allocations(env, env.a.provider_id) == before
    delete_and_wait(env, m, refused.id)

    # Without it, the same share network gets its server.
    m.share_networks.remove_security_service(sn, ss)
    assert m.security_services.list(search_opts={"share_network_id": sn}) == []
    served = wait_available(env, m, create(env, m, sn, name="no-ldap").id)
    assert _servers_on(env, sn) == 1
    # With a share server there, the share network's security services no longer change.
    with pytest.raises(mexc.Forbidden):  # 403 below 2.63, 400 from 2.63
        env.stack.manila(env.stack.token("tenant-ss"), "2.62").share_networks.add_security_service(sn, ss)
    with pytest.raises(mexc.BadRequest):
        m.share_networks.add_security_service(sn, ss)
    delete_and_wait(env, m, served.id)
    m.security_services.delete(ss)
    with pytest.raises(mexc.NotFound):
        m.security_services.get(ss.id)


def test_share_network_on_a_network_this_deployment_does_not_know(env):
    m = env.tenant("tenant-unknown")
    net_id, subnet_id = f"neutron-{uuid.uuid4()}", f"subnet-{uuid.uuid4()}"
    sn = m.share_networks.create(neutron_net_id=net_id, neutron_subnet_id=subnet_id, name="elsewhere")
    (sub,) = sn.share_network_subnets
    assert (sub["neutron_net_id"], sub["neutron_subnet_id"]) == (net_id, subnet_id)
    assert m.share_networks.get(sn.id).share_network_subnets[0]["neutron_net_id"] == net_id
    share = create(env, m, sn.id, name="nowhere")
    message = _error_message(env, m, share.id)
    assert f"Network {net_id} (subnet {subnet_id}) of share network {sn.id} is not known to this deployment" \
        in message
    assert _servers_on(env, sn.id) == 0
    delete_and_wait(env, m, share.id)
    m.share_networks.delete(sn)
