"""Share servers and driver-handled share servers (DHSS=true) on the real
stack, through the unmodified python-manilaclient: one deployment with a
DHSS=false backend (``b1``) and a DHSS=true one (``b2``), tenant client hosts
as network namespaces on the provider networks' bridges.

Tenant A's network is 198.51.100.0/24, tenant B's 203.0.113.0/24; each
provider network is a bridge in the host's namespace with no address on it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import urllib.request
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from manilaclient import exceptions as mexc

from shareflow.db.models import Message, NetworkAllocation, ShareServer
from shareflow.drivers.server.netns import netns_name, veth_name
from shareflow.services.context import Caller
from shareflow.services.network_allocations import allocation_id_for
from shareflow.services.share_server_manager import ShareServerManager, server_id_for
from shareflow.system import netns
from shareflow.system.process import run
from shareflow.wiring import utcnow
from tests.fixtures.stack import DHSS_BACKEND, DHSS_TYPE, ServiceStack, owner_pid, wait_until
from tests.fixtures.storage import ClientHost, NfsClient, live_pids_with_argument
from tests.fixtures.tenant_networks import Bridge, TenantNetworks
from tests.functional.test_create_reverts import CREATE_STEPS

#: Unused share servers go after 6 s here (Manila's minimum is 10 minutes).
CLEANUP_MINUTES = 0.1


@dataclass
class Net:
    bridge: Bridge
    provider_id: str
    subnet_id: str


@dataclass
class Env:
    stack: ServiceStack
    a: Net
    b: Net
    tiny: Net
    a_allowed: ClientHost
    a_other: ClientHost
    b_client: ClientHost

    def share_network(self, project: str, net: Net) -> str:
        """The project's share network on ``net``, made as a tenant makes it:
        Manila's neutron_net_id / neutron_subnet_id name the provider network."""
        sn = self.tenant(project).share_networks.create(
            neutron_net_id=net.provider_id, neutron_subnet_id=net.subnet_id, name=f"sn-{uuid.uuid4().hex[:8]}")
        return sn.id

    def tenant(self, project: str):
        return self.stack.manila(self.stack.token(project))

    def admin(self):
        return self.stack.manila()

    def server_id(self, share_id: str) -> str | None:
        return self.stack.share_row(share_id).share_server_id

    def helper(self):
        return self.stack.backend(DHSS_BACKEND).server

    def manager(self) -> ShareServerManager:
        """The DHSS backend's share server records, as the conductors keep them."""
        return ShareServerManager(self.stack.db, self.helper(), self.stack.config.backend(DHSS_BACKEND),
                                  service_host=self.stack.config.host, clock=utcnow)

    def server_row(self, server_id: str) -> ShareServer | None:
        with self.stack.db.read() as s:
            return s.get(ShareServer, server_id)


def _provider(stack, nets: TenantNetworks, name: str, cidr: str, gateway: str | None,
              first: str, last: str) -> Net:
    """A bridge, and the provider network on it made by the admin through the API."""
    bridge = nets.bridge(cidr, gateway=gateway)
    body = {"provider_network": {"name": name, "bridge": bridge.name, "cidr": cidr, "gateway": gateway,
                                 "mtu": bridge.mtu, "allocation_ranges": [{"start": first, "end": last}]}}
    req = urllib.request.Request(f"{stack.url}/provider-networks", data=json.dumps(body).encode(), method="POST",
                                 headers={"X-Auth-Token": stack.admin_token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 201
        made = json.loads(r.read())["provider_network"]
    return Net(bridge, made["id"], made["subnet_id"])


@pytest.fixture(scope="module")
def dstack(zookeeper_server, btrfs_pool, tmp_path_factory):
    with ServiceStack(tmp_path_factory.mktemp("dhss"), zk_hosts=zookeeper_server.hosts, btrfs_pool=btrfs_pool,
                      share_servers={"unused_share_server_cleanup_interval": CLEANUP_MINUTES}) as s:
        yield s


@pytest.fixture(scope="module")
def env(dstack):
    nets = TenantNetworks()
    try:
        a = _provider(dstack, nets, "net-a", "198.51.100.0/24", "198.51.100.1", "198.51.100.100", "198.51.100.199")
        b = _provider(dstack, nets, "net-b", "203.0.113.0/24", "203.0.113.1", "203.0.113.100", "203.0.113.199")
        tiny = _provider(dstack, nets, "tiny", "198.51.100.0/24", None, "198.51.100.250", "198.51.100.250")
        b_client = nets.client(b.bridge, "203.0.113.10")
        # Tenant B's host even believes A's network is on its own wire: the
        # bridges are apart, so nothing answers.
        run(["ip", "-n", b_client.ns, "route", "add", "198.51.100.0/24", "dev", "eth0"], timeout=10)
        yield Env(dstack, a, b, tiny, nets.client(a.bridge, "198.51.100.10"),
                  nets.client(a.bridge, "198.51.100.11"), b_client)
    finally:
        nets.close()


@pytest.fixture
def faults(env):
    env.stack.clear_faults()
    try:
        yield env
    finally:
        env.stack.clear_faults()


# --- helpers ----------------------------------------------------------------------


def wait_rule(m, rule_id: str, timeout: float = 30) -> None:
    wait_until(lambda: m.share_access_rules.get(rule_id).state == "active", timeout, f"rule {rule_id}")


def create(env: Env, m, sn_id: str, name: str = "s"):
    share = m.shares.create("NFS", 1, name=name, share_type=DHSS_TYPE, share_network=sn_id)
    return share


def wait_available(env: Env, m, share_id: str):
    share = env.stack.wait_for_share(m, share_id, {"available", "error"}, timeout=60)
    assert share.status == "available", (share.status, env.stack.log("pool")[-4000:])
    return share


def delete_and_wait(env: Env, m, share_id: str) -> None:
    m.shares.delete(share_id)
    wait_until(lambda: env.stack.share_row(share_id).deleted_at is not None, 30, f"share {share_id} deleted")


def ganesha_pids(env: Env, server_id: str) -> list[int]:
    return live_pids_with_argument(env.helper().server_dir(server_id) / "ganesha" / "ganesha.conf")


def server_on_host(env: Env, server_id: str) -> dict[str, bool]:
    """Which pieces of a share server exist on the host."""
    return {
        "namespace": netns.exists(netns_name(server_id)),
        "veth": netns.link_exists(veth_name(server_id)),
        "process": bool(ganesha_pids(env, server_id)),
        "files": env.helper().server_dir(server_id).exists(),
    }


def assert_server_gone(env: Env, server_id: str, allocation_id: str | None = None) -> None:
    def row_gone():
        row = env.server_row(server_id)
        return row is None or row.deleted_at is not None

    wait_until(row_gone, 30, f"share server {server_id} to be deleted")
    wait_until(lambda: not any(server_on_host(env, server_id).values()), 15,
               f"share server {server_id} to be gone from the host: {server_on_host(env, server_id)}")
    assert netns_name(server_id) not in run(["ip", "netns", "list"], timeout=10).stdout
    assert veth_name(server_id) not in run(["ip", "link", "show"], timeout=10).stdout
    row = env.server_row(server_id)
    assert row is None or (row.deleted_at is not None and row.status == "deleted")
    with env.stack.db.read() as s:
        held = s.scalars(sa.select(NetworkAllocation).where(NetworkAllocation.share_server_id == server_id)).all()
        assert not held, [(a.id, a.address) for a in held]
        if allocation_id:
            assert s.get(NetworkAllocation, allocation_id) is None


def assert_volume_gone(env: Env, share_id: str) -> None:
    assert share_id not in env.stack.backend(DHSS_BACKEND).share.list_volumes()
    assert not (env.stack.btrfs_dhss.exports_dir / share_id).exists()
    with open("/proc/self/mountinfo") as f:
        assert share_id not in f.read()


def export_path(m, share) -> tuple[str, str]:
    (loc,) = m.share_export_locations.list(share)
    host, path = loc.path.split(":", 1)
    return host, path


# --- tests ------------------------------------------------------------------------


def test_tenant_share_is_served_only_on_its_network_to_its_allowed_client(env):
    m = env.tenant("tenant-a")
    sn = env.share_network("tenant-a", env.a)
    share = wait_available(env, m, create(env, m, sn, "a-data").id)
    assert share.share_network_id == sn
    server_id = env.server_id(share.id)
    assert server_id is not None
    host, path = export_path(m, share)
    row = env.server_row(server_id)
    assert host == row.address and host.startswith("198.51.100.1")
    assert server_on_host(env, server_id) == {"namespace": True, "veth": True, "process": True, "files": True}

    allowed = NfsClient(env.a_allowed, host)
    other = NfsClient(env.a_other, host)
    stranger = NfsClient(env.b_client, host)
    assert allowed.ls(path).returncode != 0  # nobody before a rule allows it
    rule = m.shares.allow(share, "ip", env.a_allowed.address, "rw")
    wait_rule(m, rule["id"])
    put = allowed.put(f"{path}/hello.txt", b"hello from tenant A\n")
    assert put.returncode == 0, put.stderr
    assert allowed.cat(f"{path}/hello.txt").stdout == "hello from tenant A\n"
    refused = other.ls(path)
    assert refused.returncode != 0 and "NFS4ERR" in refused.stderr + refused.stdout
    unreachable = stranger.ls(path)
    assert unreachable.returncode != 0 and "NFS4ERR" not in unreachable.stderr + unreachable.stdout

    # The admin sees the server (Manila's fields), its share and its details.
    admin = env.admin()
    assert admin.shares.get(share.id).share_server_id == server_id
    (listed,) = [s for s in admin.share_servers.list() if s.id == server_id]
    assert (listed.status, listed.share_network_id, listed.host) == ("active", sn, f"testhost@{DHSS_BACKEND}")
    shown = admin.share_servers.get(server_id)
    assert shown.project_id == "tenant-a" and shown.is_auto_deletable
    assert shown.backend_details["address"] == host and shown.backend_details["netns"] == netns_name(server_id)
    assert admin.share_servers.details(server_id)._info["veth"] == veth_name(server_id)
    with pytest.raises(mexc.Forbidden):
        m.share_servers.list()
    with pytest.raises(mexc.Conflict):
        admin.share_servers.delete(server_id)  # in use

    # The last share goes, then the server: nothing is left.
    delete_and_wait(env, m, share.id)
    assert_volume_gone(env, share.id)
    assert env.server_row(server_id).status == "active"
    admin.share_servers.delete(server_id)
    assert_server_gone(env, server_id, row.allocation_id)
    with pytest.raises(mexc.NotFound):
        admin.share_servers.get(server_id)


def test_one_server_per_share_network(env):
    ma, mb = env.tenant("tenant-a2"), env.tenant("tenant-b2")
    sn_a, sn_b = env.share_network("tenant-a2", env.a), env.share_network("tenant-b2", env.b)
    # Several creates at once on a share network that has no server yet.
    created = []
    threads = [threading.Thread(target=lambda: created.append(create(env, ma, sn_a).id)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    on_b = create(env, mb, sn_b).id
    for share_id in created:
        wait_available(env, ma, share_id)
    wait_available(env, mb, on_b)
    servers_a = {env.server_id(i) for i in created}
    assert len(servers_a) == 1 and None not in servers_a
    (server_a,) = servers_a
    server_b = env.server_id(on_b)
    assert server_b not in (None, server_a)
    with env.stack.db.read() as s:
        live = s.scalars(sa.select(ShareServer).where(ShareServer.deleted_at.is_(None),
                                                       ShareServer.share_network_id.in_([sn_a, sn_b]))).all()
        assert sorted(r.id for r in live) == sorted([server_a, server_b])
        # Only the server's address is held on A's network: the creates that
        # lost the race gave theirs back.
        held = s.scalars(sa.select(NetworkAllocation.id).where(
            NetworkAllocation.network_id == env.a.provider_id,
            NetworkAllocation.id.in_([allocation_id_for(i) for i in created]))).all()
        assert held == [env.server_row(server_a).allocation_id]
    hosts = {export_path(ma, ma.shares.get(i))[0] for i in created}
    assert hosts == {env.server_row(server_a).address}
    assert export_path(mb, mb.shares.get(on_b))[0].startswith("203.0.113.")
    for share_id in created:
        delete_and_wait(env, ma, share_id)
    delete_and_wait(env, mb, on_b)


@pytest.mark.parametrize("step,call", CREATE_STEPS.items())
def test_fault_at_each_step_of_a_dhss_create_reverts_cleanly(faults, step, call):
    env = faults
    env.stack.set_faults({call: "fail"}, backend=DHSS_BACKEND)
    m = env.tenant("tenant-faults")
    sn = env.share_network("tenant-faults", env.a)
    share = create(env, m, sn, f"fault-{step}")
    share = env.stack.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
    assert share.status == "error"
    job = env.stack.finished_job(share.id)
    assert (job.state, job.failed_step) == ("reverted", step)
    with env.stack.db.read() as s:
        (msg,) = s.scalars(sa.select(Message).where(Message.resource_id == share.id)).all()
    assert msg.user_message.startswith("create: ") and f"step '{step}' failed" in msg.user_message
    assert f"injected fault at {call}" in msg.user_message

    allocation_id = allocation_id_for(share.id)
    server_id = server_id_for(allocation_id)
    assert env.server_id(share.id) is None
    assert_server_gone(env, server_id, allocation_id)
    assert_volume_gone(env, share.id)
    with env.stack.db.read() as s:
        assert not s.scalars(sa.select(ShareServer).where(ShareServer.share_network_id == sn,
                                                          ShareServer.deleted_at.is_(None))).all()
    # The pool does not bring back what the revert took down.
    env.stack.clear_faults()
    assert server_id not in env.manager().active_servers()
    assert not server_on_host(env, server_id)["namespace"]

    delete_and_wait(env, m, share.id)
    assert_volume_gone(env, share.id)


def test_fault_on_a_share_using_an_existing_server_leaves_the_server(faults):
    env = faults
    m = env.tenant("tenant-faults2")
    sn = env.share_network("tenant-faults2", env.a)
    first = wait_available(env, m, create(env, m, sn).id)
    server_id = env.server_id(first.id)
    host, path = export_path(m, first)
    rule = m.shares.allow(first, "ip", env.a_allowed.address, "ro")
    wait_rule(m, rule["id"])
    env.stack.set_faults({"add_export": "fail"}, backend=DHSS_BACKEND)
    second = create(env, m, sn)
    assert env.stack.wait_for_share(m, second.id, {"available", "error"}, timeout=60).status == "error"
    env.stack.clear_faults()
    # Nothing was allocated for it, and the server still serves the first share.
    with env.stack.db.read() as s:
        assert s.get(NetworkAllocation, allocation_id_for(second.id)) is None
    assert env.server_id(second.id) is None and env.server_row(server_id).status == "active"
    assert NfsClient(env.a_allowed, host).ls(path).returncode == 0
    delete_and_wait(env, m, second.id)
    delete_and_wait(env, m, first.id)


def test_unused_server_is_deleted_after_the_cleanup_interval(env):
    m = env.tenant("tenant-idle")
    sn = env.share_network("tenant-idle", env.b)
    share = wait_available(env, m, create(env, m, sn).id)
    server_id = env.server_id(share.id)
    allocation_id = env.server_row(server_id).allocation_id
    delete_and_wait(env, m, share.id)
    row = env.server_row(server_id)
    assert row.status == "active" and row.unused_since is not None
    wait_until(lambda: env.server_row(server_id).deleted_at is not None, CLEANUP_MINUTES * 60 + 30,
               "the conductors to delete the unused server")
    job = env.stack.finished_job(server_id, "delete_share_server")
    assert job.state == "succeeded"
    assert_server_gone(env, server_id, allocation_id)


def test_killed_share_server_nfs_process_is_restored_with_its_exports(env):
    m = env.tenant("tenant-kill")
    sn = env.share_network("tenant-kill", env.a)
    share = wait_available(env, m, create(env, m, sn).id)
    server_id = env.server_id(share.id)
    host, path = export_path(m, share)
    rule = m.shares.allow(share, "ip", env.a_allowed.address, "rw")
    wait_rule(m, rule["id"])
    client = NfsClient(env.a_allowed, host)
    assert client.put(f"{path}/kept.txt", b"still here\n").returncode == 0
    (old_pid,) = ganesha_pids(env, server_id)
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: ganesha_pids(env, server_id) not in ([], [old_pid]), 30,
               "the pool to restart the share server's NFS-Ganesha")
    wait_until(lambda: client.cat(f"{path}/kept.txt").stdout == "still here\n", 30,
               "the client to read again")
    delete_and_wait(env, m, share.id)


def test_address_pool_exhaustion_fails_the_share_with_a_message(env):
    m = env.tenant("tenant-tiny")
    first = wait_available(env, m, create(env, m, env.share_network("tenant-tiny", env.tiny)).id)
    assert export_path(m, first)[0] == "198.51.100.250"
    second = create(env, m, env.share_network("tenant-tiny", env.tiny))
    assert env.stack.wait_for_share(m, second.id, {"available", "error"}, timeout=60).status == "error"
    (msg,) = m.messages.list(search_opts={"resource_id": second.id})
    assert "step 'allocate_network' failed" in msg.user_message
    assert "Provider network tiny has no free IP address" in msg.user_message
    delete_and_wait(env, m, second.id)
    delete_and_wait(env, m, first.id)


def test_both_modes_side_by_side(env):
    m = env.tenant("tenant-both")
    sn = env.share_network("tenant-both", env.a)
    flat = m.shares.create("NFS", 1, name="flat")  # the default type: DHSS=false
    isolated = create(env, m, sn, "isolated")
    flat = env.stack.wait_for_share(m, flat.id, {"available"}, timeout=60)
    isolated = wait_available(env, m, isolated.id)
    admin = env.admin()
    assert admin.shares.get(flat.id).host.startswith("testhost@b1#")
    assert admin.shares.get(isolated.id).host.startswith(f"testhost@{DHSS_BACKEND}#")
    assert export_path(m, flat)[0] == env.stack.network.server_address
    assert export_path(m, isolated)[0].startswith("198.51.100.")
    assert admin.shares.get(flat.id).share_server_id is None
    # Manila's refusals.
    with pytest.raises(mexc.BadRequest, match="Share network must be set"):
        m.shares.create("NFS", 1, share_type=DHSS_TYPE)
    with pytest.raises(mexc.BadRequest, match="Share network must not be set"):
        m.shares.create("NFS", 1, share_network=sn)
    delete_and_wait(env, m, flat.id)
    delete_and_wait(env, m, isolated.id)


def test_conductor_killed_after_the_server_was_made_is_resumed(faults):
    """A conductor SIGKILLed inside a DHSS=true create, after it made the share
    server: another resumes the job on that same server, nothing made twice."""
    env = faults
    env.stack.set_faults({"create_volume": "hang"}, backend=DHSS_BACKEND)
    m = env.tenant("tenant-death")
    sn = env.share_network("tenant-death", env.a)
    share = create(env, m, sn, "survivor")
    victim = owner_pid(env.stack.job_inside(share.id, "create_share", "create_volume"))
    server_id = env.server_id(share.id)
    assert server_id is not None and server_on_host(env, server_id)["process"]
    os.kill(victim, signal.SIGKILL)
    env.stack.clear_faults()
    wait_available(env, m, share.id)
    finished = env.stack.finished_job(share.id)
    assert finished.state == "succeeded" and owner_pid(finished) != victim
    assert env.server_id(share.id) == server_id
    with env.stack.db.read() as s:
        live = s.scalars(sa.select(ShareServer.id).where(ShareServer.share_network_id == sn,
                                                         ShareServer.deleted_at.is_(None))).all()
    assert live == [server_id] and len(ganesha_pids(env, server_id)) == 1
    assert export_path(m, m.shares.get(share.id))[0] == env.server_row(server_id).address
    delete_and_wait(env, m, share.id)


def test_a_failed_server_delete_ends_error_and_is_done_by_a_new_delete(faults):
    env = faults
    m, admin = env.tenant("tenant-srvdel"), env.admin()
    sn = env.share_network("tenant-srvdel", env.b)
    share = wait_available(env, m, create(env, m, sn).id)
    server_id = env.server_id(share.id)
    allocation_id = env.server_row(server_id).allocation_id
    delete_and_wait(env, m, share.id)
    env.stack.set_faults({"take_down": "fail"}, backend=DHSS_BACKEND)
    admin.share_servers.delete(server_id)
    wait_until(lambda: env.server_row(server_id).status == "error", 30, "the server delete to fail")
    job = env.stack.finished_job(server_id, "delete_share_server")
    assert (job.state, job.failed_step) == ("reverted", "teardown_share_server")
    # Nothing was taken down: the server is still whole, and still holds its address.
    assert all(server_on_host(env, server_id).values())
    with env.stack.db.read() as s:
        assert s.get(NetworkAllocation, allocation_id) is not None
    env.stack.clear_faults()
    admin.share_servers.delete(server_id)  # Manila allows deleting a server in error
    assert_server_gone(env, server_id, allocation_id)


def test_a_clone_on_a_share_network_is_served_by_its_server(env):
    """A share made from a snapshot of a share on a share network lands on that
    share network's server, and holds the snapshot's data."""
    services = env.stack.services()
    try:
        with contextlib.suppress(Exception):
            services.share_types.create(
                Caller(project_id="admin", is_admin=True), name="dhss-snap",
                extra_specs={"driver_handles_share_servers": "True", "snapshot_support": "True",
                             "create_share_from_snapshot_support": "True"})
    finally:
        services.close()
    m = env.tenant("tenant-clone")
    sn = env.share_network("tenant-clone", env.a)
    origin = wait_available(env, m, m.shares.create("NFS", 1, share_type="dhss-snap", share_network=sn).id)
    host, path = export_path(m, origin)
    rule = m.shares.allow(origin, "ip", env.a_allowed.address, "rw")
    wait_rule(m, rule["id"])
    client = NfsClient(env.a_allowed, host)
    assert client.put(f"{path}/before.txt", b"in the snapshot\n").returncode == 0
    snap = m.share_snapshots.create(origin)
    wait_until(lambda: m.share_snapshots.get(snap.id).status == "available", 30, "the snapshot")
    clone = wait_available(env, m, m.shares.create("NFS", 1, snapshot_id=snap.id).id)
    assert clone.share_network_id == sn
    assert env.server_id(clone.id) == env.server_id(origin.id)
    clone_host, clone_path = export_path(m, clone)
    assert clone_host == host
    rule = m.shares.allow(clone, "ip", env.a_allowed.address, "ro")
    wait_rule(m, rule["id"])
    assert client.cat(f"{clone_path}/before.txt").stdout == "in the snapshot\n"
    delete_and_wait(env, m, clone.id)
    m.share_snapshots.delete(snap)
    wait_until(lambda: not [s for s in m.share_snapshots.list() if s.id == snap.id], 30, "the snapshot to go")
    delete_and_wait(env, m, origin.id)
