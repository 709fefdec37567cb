"""``delete_share_server_with_last_share = true`` on the real stack: a share
server goes with its last share (Ganesha, namespace, veth, address), and not
before."""

from __future__ import annotations

import pytest

from shareflow.db.models import NetworkAllocation
from tests.fixtures.stack import DHSS_BACKEND, ServiceStack
from tests.fixtures.tenant_networks import TenantNetworks
from tests.functional.test_share_servers import (
    Env,
    _provider,
    assert_server_gone,
    create,
    delete_and_wait,
    export_path,
    server_on_host,
    wait_available,
)


@pytest.fixture(scope="module")
def last_share_env(zookeeper_server, btrfs_pool, tmp_path_factory):
    with ServiceStack(tmp_path_factory.mktemp("last-share"), zk_hosts=zookeeper_server.hosts,
                      btrfs_pool=btrfs_pool, workers=1,
                      share_servers={"delete_share_server_with_last_share": True}) as stack:
        nets = TenantNetworks()
        try:
            a = _provider(stack, nets, "net-a", "198.51.100.0/24", "198.51.100.1", "198.51.100.100",
                          "198.51.100.109")
            yield Env(stack, a, None, None, nets.client(a.bridge, "198.51.100.10"), None, None)
        finally:
            nets.close()


def test_the_server_goes_with_its_last_share(last_share_env):
    env = last_share_env
    m = env.tenant("tenant-last")
    sn = env.share_network("tenant-last", env.a)
    first = wait_available(env, m, create(env, m, sn, "first").id)
    second = wait_available(env, m, create(env, m, sn, "second").id)
    server_id = env.server_id(first.id)
    assert env.server_id(second.id) == server_id
    allocation_id = env.server_row(server_id).allocation_id
    assert export_path(m, second)[0] == env.server_row(server_id).address

    delete_and_wait(env, m, first.id)  # another share still uses it: it stays, running
    assert env.server_row(server_id).status == "active"
    assert all(server_on_host(env, server_id).values())

    delete_and_wait(env, m, second.id)
    assert_server_gone(env, server_id, allocation_id)
    job = env.stack.finished_job(second.id, "delete_share")
    assert job.state == "succeeded"
    with env.stack.db.read() as s:
        assert s.get(NetworkAllocation, allocation_id) is None
    assert DHSS_BACKEND in env.stack.share_row(second.id).host


def test_an_admin_force_delete_of_the_last_share_takes_the_server_too(last_share_env):
    env = last_share_env
    m = env.tenant("tenant-force")
    sn = env.share_network("tenant-force", env.a)
    share = wait_available(env, m, create(env, m, sn, "forced").id)
    server_id = env.server_id(share.id)
    allocation_id = env.server_row(server_id).allocation_id
    env.admin().shares.force_delete(share)
    assert_server_gone(env, server_id, allocation_id)
    assert env.stack.share_row(share.id).deleted_at is not None
