"""The share server helper on the real machine, with the records its callers
keep (the share server manager and the network allocations on a real
database): network namespaces, veth pairs on a provider bridge, NFS-Ganesha
per server; NFS clients in namespaces on the same bridge.

Covers what the full stack cannot reach easily: a server made half-way and
completed by calling again, teardown run twice, a server brought back after
its Ganesha was killed and after its namespace vanished (a reboot), a create
waiting while another makes the share network's server, and
``delete_share_server_with_last_share``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import uuid
from datetime import datetime

import pytest
import sqlalchemy as sa

from shareflow.config import BackendConfig, GaneshaConfig, ShareServersConfig
from shareflow.db import migrate
from shareflow.db import networks as networks_db
from shareflow.db import share_servers as servers_db
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import Share, ShareServer
from shareflow.domain import states
from shareflow.drivers.base import ClientRule
from shareflow.drivers.export import ganesha_mtab as gm
from shareflow.drivers.export.ganesha import GaneshaExportDriver
from shareflow.drivers.export.ganesha_server import GaneshaServer
from shareflow.drivers.base import ServerBusy
from shareflow.drivers.server.netns import NetnsServerHelper, netns_name, veth_name
from shareflow.drivers.share.btrfs import BtrfsShareDriver
from shareflow.services.network_allocations import NetworkAllocations
from shareflow.services.share_server_manager import ShareServerManager, server_id_for
from shareflow.system import netns
from shareflow.system.process import run
from tests.fixtures.stack import wait_until
from tests.fixtures.storage import MS_SHARED, live_pids_with_argument, own_mount, pool_view
from tests.fixtures.tenant_networks import TenantNetworks

TIMEOUT = 20.0
CIDR = "198.51.100.0/24"
GATEWAY = "198.51.100.1"
MTU = 1400


def clock() -> datetime:
    return datetime.utcnow().replace(microsecond=0)


@dataclasses.dataclass
class Env:
    db: Database
    helper: NetnsServerHelper
    manager: ShareServerManager
    network: NetworkAllocations
    export: GaneshaExportDriver
    share: BtrfsShareDriver
    nets: TenantNetworks
    bridge: object
    provider_id: str
    cfg: BackendConfig

    def share_network(self, project: str = "p1") -> str:
        sn_id = str(uuid.uuid4())
        with self.db.write() as s:
            networks_db.create_share_network(
                s, now=clock(), share_network_id=sn_id, subnet_id=str(uuid.uuid4()), project_id=project,
                user_id=None, name=None, description=None, provider_network_id=self.provider_id,
            )
        return sn_id

    def new_share(self, sn_id: str, project: str = "p1") -> str:
        share_id = str(uuid.uuid4())
        with self.db.write() as s:
            shares_db.create(s, now=clock(), id=share_id, project_id=project, size=1, share_proto="NFS",
                             status=states.CREATING, backend=self.cfg.name, share_network_id=sn_id,
                             is_public=False)
        return share_id

    def delete_share_row(self, share_id: str) -> None:
        with self.db.write() as s:
            s.get(Share, share_id).deleted_at = clock()

    def row(self, server_id: str) -> ShareServer | None:
        with self.db.read() as s:
            return servers_db.get_any(s, server_id)

    def using(self, share_id: str) -> str | None:
        with self.db.read() as s:
            return shares_db.get_any(s, share_id).share_server_id


def ganesha_pids(server_id: str, helper: NetnsServerHelper) -> list[int]:
    """Live processes started with this server's Ganesha config."""
    return live_pids_with_argument(helper.server_dir(server_id) / "ganesha" / "ganesha.conf")


def assert_server_gone(env: Env, server_id: str) -> None:
    assert not netns.exists(netns_name(server_id))
    wait_until(lambda: not netns.link_exists(veth_name(server_id)), 10, "the veth to go")
    assert not ganesha_pids(server_id, env.helper)
    assert not env.helper.server_dir(server_id).exists()


@pytest.fixture
def env(btrfs_config, tmp_path):
    with make_env(btrfs_config, tmp_path) as e:
        yield e


@pytest.fixture
def own_table_env(btrfs_pool, tmp_path):
    """Share servers whose Ganesha reads its own mount table, over volumes
    below a shared mount (see test_ganesha_own_mtab.py)."""
    with own_mount(tmp_path / "shared", MS_SHARED) as base, pool_view(btrfs_pool, base) as cfg:
        with make_env(cfg, tmp_path, mount_table="own") as e:
            yield e


@contextlib.contextmanager
def make_env(btrfs_config, tmp_path, *, mount_table: str = "host"):
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate.upgrade(db)
    nets = TenantNetworks()
    made: list[str] = []
    helper = None
    try:
        bridge = nets.bridge(CIDR, gateway=GATEWAY, mtu=MTU)
        with db.write() as s:
            provider = networks_db.create_provider(
                s, now=clock(), network_id=str(uuid.uuid4()), subnet_id=str(uuid.uuid4()), name="pa",
                bridge=bridge.name, cidr=CIDR, gateway=GATEWAY, mtu=MTU,
                ranges=[("198.51.100.100", "198.51.100.109")],
            )
            provider_id = provider.id
        cfg = BackendConfig(
            name="t", pool="pool0", share_driver="btrfs", driver_handles_share_servers=True,
            btrfs=btrfs_config,
            ganesha=GaneshaConfig(address="127.0.0.1", port=2049, state_dir=tmp_path / "unused", netns="",
                                  managed=False),
            fault_plan=None,
            share_servers=ShareServersConfig(state_dir=tmp_path / "servers", delete_with_last_share=True,
                                             mount_table=mount_table),
        )
        helper = NetnsServerHelper(cfg, timeout=TIMEOUT)
        manager = ShareServerManager(db, helper, cfg, service_host="testhost", clock=clock)
        yield Env(db=db, helper=helper, manager=manager, network=NetworkAllocations(db, clock=clock),
                  export=GaneshaExportDriver({}, timeout=TIMEOUT, resolve=helper.ganesha),
                  share=BtrfsShareDriver(btrfs_config, timeout=TIMEOUT), nets=nets, bridge=bridge,
                  provider_id=provider_id, cfg=cfg)
    finally:
        if helper is not None:
            with db.read() as s:
                made = list(s.scalars(sa.select(ShareServer.id)))
            for server_id in made:
                helper.take_down(server_id)
        nets.close()
        db.dispose()


def test_provide_makes_a_server_on_the_bridge_and_reuses_it(env):
    sn = env.share_network()
    s1, s2 = env.new_share(sn), env.new_share(sn)
    alloc = env.network.allocate(s1, sn)
    server = env.manager.provide(s1, alloc)
    sid = server["id"]
    assert server["created"] and sid == server_id_for(alloc["allocation_id"])
    assert server["address"] == alloc["address"] == "198.51.100.100"
    row = env.row(sid)
    assert row.status == states.SERVER_ACTIVE and row.host == "testhost@t" and env.using(s1) == sid
    assert row.allocation_id == alloc["allocation_id"]
    with env.db.read() as s:
        assert networks_db.get_allocation(s, alloc["allocation_id"]).share_server_id == sid

    # The pieces: namespace, veth on the bridge with the MTU, address, route, Ganesha.
    ns, veth = netns_name(sid), veth_name(sid)
    assert netns.exists(ns)
    link = run(["ip", "-d", "link", "show", "dev", veth], timeout=10).stdout
    assert f"master {env.bridge.name}" in link and f"mtu {MTU}" in link
    inside = run(["ip", "-n", ns, "addr", "show", "dev", "eth0"], timeout=10).stdout
    assert "198.51.100.100/24" in inside and f"mtu {MTU}" in inside
    assert f"default via {GATEWAY}" in run(["ip", "-n", ns, "route"], timeout=10).stdout
    (pid,) = ganesha_pids(sid, env.helper)
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    # Same mount namespace as ours: volumes mounted later are visible to it.
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")

    # A second share of the share network uses the same server; provide again is idempotent.
    again = env.manager.provide(s1, alloc)
    assert again["id"] == sid and again["created"]
    reused = env.manager.provide(s2, {})
    assert reused["id"] == sid and not reused["created"] and env.using(s2) == sid
    assert env.manager.reusable(env.new_share(sn)) == sid

    # It serves exports to exactly the allowed client on the network.
    allowed = env.nets.client(env.bridge, "198.51.100.10")
    other = env.nets.client(env.bridge, "198.51.100.11")
    path = env.share.create_volume(s1, 1)
    (location,) = env.export.add_export(server, s1, path)
    assert location == f"198.51.100.100:/shares/{s1}"
    env.export.update_access(server, s1, [ClientRule("198.51.100.10", "rw")])
    a, o = env.nets.nfs(allowed, "198.51.100.100"), env.nets.nfs(other, "198.51.100.100")
    assert a.put(f"/shares/{s1}/f.txt", b"hi\n").returncode == 0
    assert a.cat(f"/shares/{s1}/f.txt").stdout == "hi\n"
    assert o.ls(f"/shares/{s1}").returncode != 0
    env.export.remove_export(server, s1)
    env.share.delete_volume(s1)


def test_a_share_servers_ganesha_with_its_own_mount_table(own_table_env):
    env = own_table_env
    sn = env.share_network()
    s1 = env.new_share(sn)
    server = env.manager.provide(s1, env.network.allocate(s1, sn))
    sid = server["id"]
    (pid,) = ganesha_pids(sid, env.helper)
    gs = env.helper.ganesha(server)
    # In the server's network namespace and in a mount namespace of its own
    # whose /etc/mtab is the table shareflow writes.
    assert os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net")
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert gs.own_table.read_by(pid)
    # A volume mounted after the server started reaches it, and is served.
    path = env.share.create_volume(s1, 1)
    env.export.add_export(server, s1, path)
    env.export.update_access(server, s1, [ClientRule("198.51.100.10", "rw")])
    allowed = env.nets.nfs(env.nets.client(env.bridge, "198.51.100.10"), server["address"])
    assert allowed.put(f"/shares/{s1}/f.txt", b"hi\n").returncode == 0
    assert allowed.cat(f"/shares/{s1}/f.txt").stdout == "hi\n"
    assert gs.own_table.lines() == [gm.line_for("/").rstrip("\n")]
    env.export.remove_export(server, s1)
    env.share.delete_volume(s1)


def test_release_and_retire(env):
    sn = env.share_network()
    s1, s2 = env.new_share(sn), env.new_share(sn)
    alloc = env.network.allocate(s1, sn)
    sid = env.manager.provide(s1, alloc)["id"]
    env.manager.provide(s2, {})

    # Undoing the create that made the server keeps it while another share uses it,
    # and the server then holds the allocation.
    env.manager.release({"id": sid, "share_id": s1, "allocation": alloc})
    assert env.row(sid).status == states.SERVER_ACTIVE and env.using(s1) is None
    assert env.manager.holds(alloc)

    # The last share leaves: deleted with it (delete_share_server_with_last_share).
    assert env.manager.retire(s2, env.manager.server_for(s2)) != {}
    assert env.row(sid).deleted_at is not None and env.row(sid).status == states.DELETED
    assert_server_gone(env, sid)
    assert not env.manager.holds(alloc)
    # Run again (a conductor died after it): same answer, nothing more to do.
    gone = env.manager.retire(s2, {"id": sid})
    assert gone["server_allocation"]["allocation_id"] == alloc["allocation_id"]
    env.network.release(gone["server_allocation"])
    with env.db.read() as s:
        assert networks_db.get_allocation(s, alloc["allocation_id"]) is None


def test_retire_without_delete_with_last_share_starts_the_unused_clock(env):
    env.manager._cfg = dataclasses.replace(env.manager._cfg, delete_with_last_share=False)
    sn = env.share_network()
    s1 = env.new_share(sn)
    sid = env.manager.provide(s1, env.network.allocate(s1, sn))["id"]
    assert env.manager.retire(s1, {"id": sid}) == {}
    row = env.row(sid)
    assert row.status == states.SERVER_ACTIVE and row.unused_since is not None
    env.delete_share_row(s1)
    with env.db.read() as s:
        # Rows are keyed by the share service, host@backend.
        unused = servers_db.unused_deletable(s, env.manager.host, unused_before=clock().replace(year=2100))
        assert [r.id for r in unused] == [sid]
    assert env.manager.take_down(sid)["id"] == sid
    assert_server_gone(env, sid)


def test_take_down_refused_while_a_share_uses_it(env):
    sn = env.share_network()
    s1 = env.new_share(sn)
    sid = env.manager.provide(s1, env.network.allocate(s1, sn))["id"]
    with pytest.raises(Exception, match="is in use"):
        env.manager.take_down(sid)
    assert env.helper.is_running(sid)


def test_a_failed_undo_of_a_half_made_server_and_a_completed_one(env, monkeypatch):
    sn = env.share_network()
    s1 = env.new_share(sn)
    alloc = env.network.allocate(s1, sn)
    sid = server_id_for(alloc["allocation_id"])
    real_start = GaneshaServer.start

    def broken(self):
        raise OSError("no ganesha today")

    monkeypatch.setattr(GaneshaServer, "start", broken)
    with pytest.raises(OSError):
        env.manager.provide(s1, alloc)
    row = env.row(sid)
    assert row.status == states.CREATING and netns.exists(netns_name(sid))
    # Another create on the share network waits for it.
    s3 = env.new_share(sn)
    alloc3 = env.network.allocate(s3, sn)
    with pytest.raises(ServerBusy):
        env.manager.provide(s3, alloc3)
    env.network.release(alloc3)
    # Called again (a conductor resumed the job): completed.
    monkeypatch.setattr(GaneshaServer, "start", real_start)
    done = env.manager.provide(s1, alloc)
    assert done["id"] == sid and done["created"] and env.row(sid).status == states.SERVER_ACTIVE

    # Undone half-way instead: teardown twice is harmless, absence is tolerated.
    env.manager.release({"id": None, "share_id": s1, "allocation": alloc})
    assert_server_gone(env, sid)
    assert env.row(sid).deleted_at is not None
    env.helper.take_down(sid)
    env.manager.release({"id": None, "share_id": s1, "allocation": alloc})


def test_supervise_brings_a_server_back_with_its_exports(env):
    sn = env.share_network()
    s1 = env.new_share(sn)
    server = env.manager.provide(s1, env.network.allocate(s1, sn))
    sid = server["id"]
    client = env.nets.nfs(env.nets.client(env.bridge, "198.51.100.12"), server["address"])
    path = env.share.create_volume(s1, 1)
    env.export.add_export(server, s1, path)
    env.export.update_access(server, s1, [ClientRule("198.51.100.12", "ro")])
    assert client.ls(f"/shares/{s1}").returncode == 0
    assert env.manager.supervise() == []

    # Its Ganesha dies: brought back, exports and all.
    (pid,) = ganesha_pids(sid, env.helper)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not ganesha_pids(sid, env.helper), 10, "ganesha to die")
    assert env.manager.supervise() == [sid]
    assert client.ls(f"/shares/{s1}").returncode == 0

    # Everything on the host is gone (a reboot): brought back too.
    env.helper._ganesha(sid, None).stop()
    netns.delete_link(veth_name(sid))
    netns.delete(netns_name(sid))
    assert env.manager.supervise() == [sid]
    assert netns.exists(netns_name(sid))
    assert client.ls(f"/shares/{s1}").returncode == 0

    # Not active: left alone.
    with env.db.write() as s:
        assert servers_db.override_status(s, sid, states.ERROR, now=clock(), expected=states.SERVER_ACTIVE)
    env.helper._ganesha(sid, None).stop()
    assert env.manager.supervise() == [] and not ganesha_pids(sid, env.helper)
    env.share.delete_volume(s1)


def test_server_names_are_validated(env):
    for bad in ("../x", "nope", "A" * 36, "", None):
        with pytest.raises(Exception, match="invalid share server id"):
            netns_name(bad)
    assert env.helper.ganesha({"id": str(uuid.uuid4())}) is None
    assert env.helper.ganesha({}) is None
    with pytest.raises(Exception, match="invalid share server id"):
        env.helper.ganesha({"id": "../../etc"})


def test_stop_all_takes_servers_off_the_host_and_supervise_brings_them_back(env):
    """The pool's shutdown leaves no namespace, interface or process; its next
    start serves the same exports again."""
    sn = env.share_network()
    s1 = env.new_share(sn)
    server = env.manager.provide(s1, env.network.allocate(s1, sn))
    sid = server["id"]
    client = env.nets.nfs(env.nets.client(env.bridge, "198.51.100.13"), server["address"])
    path = env.share.create_volume(s1, 1)
    env.export.add_export(server, s1, path)
    env.export.update_access(server, s1, [ClientRule("198.51.100.13", "ro")])
    assert client.ls(f"/shares/{s1}").returncode == 0

    env.manager.stop_all()
    assert not netns.exists(netns_name(sid)) and not netns.link_exists(veth_name(sid))
    assert not ganesha_pids(sid, env.helper)

    assert env.manager.supervise() == [sid]
    assert client.ls(f"/shares/{s1}").returncode == 0
    env.export.remove_export(server, s1)
    env.share.delete_volume(s1)


def test_the_helper_alone_makes_and_takes_down_a_server_from_plain_values(env):
    """No records: a server id and its network are all the helper needs; what
    it made is what its backend_details name, and the export driver finds the
    server's Ganesha by id and address until it is taken down."""
    sid = str(uuid.uuid4())
    network = {"network_id": env.provider_id, "address": "198.51.100.109", "prefixlen": 24,
               "gateway": GATEWAY, "bridge": env.bridge.name, "mtu": MTU}
    try:
        made = env.helper.provide(sid, network)
        assert made == NetnsServerHelper.backend_details(sid)
        assert netns.exists(made["netns"]) and netns.link_exists(made["veth"])
        assert env.helper.provide(sid, network) == made  # again: nothing more to do
        assert "198.51.100.109/24" in run(["ip", "-n", made["netns"], "addr", "show", "dev", "eth0"],
                                          timeout=10).stdout
        gs = env.helper.ganesha({"id": sid, "address": network["address"]})
        assert gs is not None and gs.is_running() and env.helper.is_running(sid)
        assert env.helper.ganesha({"id": sid}) is None  # no address: not a server dict a task holds

        # The pool asks, under the server's lock, whether it is still wanted.
        env.helper.stop_all([sid])
        assert not env.helper.is_running(sid)
        assert not env.helper.restore(sid, network, wanted=lambda _: False)
        assert not netns.exists(made["netns"]) and not env.helper.is_running(sid)
        assert env.helper.supervise({sid: network}, wanted=lambda _: True) == [sid]
        assert env.helper.is_running(sid)
    finally:
        env.helper.take_down(sid)
    assert_server_gone(env, sid)
    assert env.helper.ganesha({"id": sid, "address": network["address"]}) is None
    env.helper.take_down(sid)  # absent: nothing to do
