"""The share networks' IP pools (the network allocations tasks record for the
flat network helper) on real SQLite and PostgreSQL: concurrent creates
(threads, and separate processes) never get the same address, exhaustion is a
clean NetworkError naming the network, released addresses are handed out again."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from shareflow.db import networks as networks_db
from shareflow.db.engine import Database
from shareflow.services.network_allocations import NetworkAllocations, allocation_id_for
from shareflow.exceptions import NetworkError

NOW = datetime(2026, 11, 21, 12, 0, 0)
#: 10.77.0.10 - 10.77.0.21 minus the gateway 10.77.0.15: eleven addresses.
RANGE = ("10.77.0.10", "10.77.0.21")
GATEWAY = "10.77.0.15"
CAPACITY = 11


def clock() -> datetime:
    return NOW


def make_network(db: Database, *, name="pool-net", ranges=(RANGE,), gateway=GATEWAY,
                 cidr="10.77.0.0/24") -> tuple[str, str]:
    """A provider network and a share network on it: (provider id, share network id)."""
    with db.write() as s:
        net = networks_db.create_provider(
            s, now=NOW, network_id=str(uuid.uuid4()), subnet_id=str(uuid.uuid4()), name=name,
            bridge="br-test", cidr=cidr, gateway=gateway, mtu=1400, ranges=list(ranges),
        )
        sn = networks_db.create_share_network(
            s, now=NOW, share_network_id=str(uuid.uuid4()), subnet_id=str(uuid.uuid4()),
            project_id="p", user_id=None, name="sn", description=None, provider_network_id=net.id,
        )
        return net.id, sn.id


def expected_addresses() -> set[str]:
    return {f"10.77.0.{n}" for n in range(10, 22)} - {GATEWAY}


def test_allocate_describes_the_lowest_free_address(db):
    net_id, sn_id = make_network(db)
    helper = NetworkAllocations(db, clock=clock)
    a = helper.allocate("share-1", sn_id)
    assert a == {
        "allocation_id": allocation_id_for("share-1"), "network_id": net_id, "address": "10.77.0.10",
        "prefixlen": 24, "gateway": GATEWAY, "bridge": "br-test", "mtu": 1400,
    }
    json.dumps(a)
    # Called again for the same share (a re-run task): the same allocation.
    assert helper.allocate("share-1", sn_id) == a
    b = helper.allocate("share-2", sn_id)
    assert b["address"] == "10.77.0.11"
    with db.write() as s:
        assert networks_db.bind_allocation(s, b["allocation_id"], "server-1")
    with db.read() as s:
        assert [r.id for r in networks_db.allocations_for_server(s, "server-1")] == [b["allocation_id"]]
    assert helper.get(b["allocation_id"]) == b
    helper.release(a)
    helper.release(a)  # already gone: nothing to do
    helper.release({})
    assert helper.get(a["allocation_id"]) is None
    assert helper.allocate("share-3", sn_id)["address"] == "10.77.0.10"


def test_gateway_network_and_broadcast_never_handed_out(db):
    # The range covers the whole /29, network and broadcast included.
    _, sn_id = make_network(db, cidr="10.78.0.0/29", ranges=[("10.78.0.0", "10.78.0.7")],
                            gateway="10.78.0.1")
    helper = NetworkAllocations(db, clock=clock)
    got = [helper.allocate(f"s{i}", sn_id)["address"] for i in range(5)]
    assert got == ["10.78.0.2", "10.78.0.3", "10.78.0.4", "10.78.0.5", "10.78.0.6"]
    with pytest.raises(NetworkError):
        helper.allocate("s5", sn_id)


def test_missing_share_network_subnet_or_provider_network(db):
    helper = NetworkAllocations(db, clock=clock)
    with pytest.raises(NetworkError) as e:
        helper.allocate("s", str(uuid.uuid4()))
    assert "could not be found" in e.value.user_message
    with pytest.raises(NetworkError) as e:
        helper.allocate("s", None)
    assert "required" in e.value.user_message
    with db.write() as s:
        sn = networks_db.create_share_network(
            s, now=NOW, share_network_id=str(uuid.uuid4()), subnet_id=str(uuid.uuid4()),
            project_id="p", user_id=None, name=None, description=None, provider_network_id=None,
        )
    with pytest.raises(NetworkError) as e:
        helper.allocate("s", sn.id)
    assert "names no provider network" in e.value.user_message
    net_id, sn_id = make_network(db, name="gone")
    with db.write() as s:
        networks_db.delete_provider(s, net_id, now=NOW)
    with pytest.raises(NetworkError) as e:
        helper.allocate("s", sn_id)
    assert "does not exist" in e.value.user_message


def _assert_exhausted(helper: NetworkAllocations, sn_id: str) -> None:
    with pytest.raises(NetworkError) as e:
        helper.allocate("one-too-many", sn_id)
    assert e.value.user_message == "Provider network pool-net has no free IP address."


def test_concurrent_threads_never_share_an_address(db):
    _, sn_id = make_network(db)
    helper = NetworkAllocations(db, clock=clock)
    n = CAPACITY
    barrier = threading.Barrier(n)
    results, errors = [], []

    def create(i):
        barrier.wait()
        try:
            results.append(helper.allocate(f"share-{i}", sn_id))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r["address"] for r in results) == sorted(expected_addresses())
    _assert_exhausted(helper, sn_id)
    # Releases make addresses reusable, lowest first.
    by_address = {r["address"]: r for r in results}
    helper.release(by_address["10.77.0.13"])
    helper.release(by_address["10.77.0.20"])
    assert helper.allocate("again-1", sn_id)["address"] == "10.77.0.13"
    assert helper.allocate("again-2", sn_id)["address"] == "10.77.0.20"
    _assert_exhausted(helper, sn_id)


WORKER = textwrap.dedent("""
    import json, sys, time
    from datetime import datetime
    from shareflow.db.engine import Database
    from shareflow.services.network_allocations import NetworkAllocations
    from shareflow.exceptions import NetworkError
    url, sn_id, start, shares = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
    db = Database(url)
    helper = NetworkAllocations(db, clock=lambda: datetime(2026, 11, 21))
    with db.read() as s:
        pass  # connect before the start line
    time.sleep(max(0.0, start - time.time()))
    for share in shares:
        try:
            print(json.dumps(helper.allocate(share, sn_id)), flush=True)
        except NetworkError as e:
            print(json.dumps({"error": e.user_message}), flush=True)
    db.dispose()
""")


def test_concurrent_processes_never_share_an_address(db, db_url):
    _, sn_id = make_network(db)
    procs = 6
    per_proc = 2  # 12 creates for 11 addresses: exactly one is refused
    start = time.time() + 3.0
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, db_url, sn_id, str(start)]
            + [f"p{p}-s{i}" for i in range(per_proc)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for p in range(procs)
    ]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        outputs += [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(outputs) == procs * per_proc
    refused = [o for o in outputs if "error" in o]
    given = [o["address"] for o in outputs if "error" not in o]
    assert refused == [{"error": "Provider network pool-net has no free IP address."}]
    assert len(given) == len(set(given)) == CAPACITY
    assert set(given) == expected_addresses()
    helper = NetworkAllocations(db, clock=clock)
    _assert_exhausted(helper, sn_id)
    freed = next(o for o in outputs if o.get("address") == "10.77.0.17")
    helper.release(freed)
    assert helper.allocate("after-release", sn_id)["address"] == "10.77.0.17"


def test_provider_delete_races_share_network_create(db):
    """A provider network is deleted, or a share network is on it: never both.
    (The share network is made either way, as Manila accepts any ids; when
    the delete won, it names a network this deployment no longer has.)"""
    from shareflow.config import parse
    from shareflow.exceptions import Conflict
    from shareflow.services.context import Caller
    from shareflow.services.networks import ProviderNetworkService, ShareNetworkService

    config = parse({"database": {"url": "sqlite://"}}, Path("/nonexistent/shareflow.toml"))
    admin = Caller(project_id="ops", is_admin=True)
    tenant = Caller(project_id="p", user_id="u")
    providers = ProviderNetworkService(db, clock=clock)
    share_networks = ShareNetworkService(config, db, clock=clock)
    def delete(net, barrier, outcome):
        barrier.wait()
        try:
            providers.delete(admin, net.id)
            outcome["deleted"] = True
        except Conflict:
            outcome["deleted"] = False

    def create(net, barrier, outcome):
        barrier.wait()
        sn = share_networks.create(tenant, {"neutron_net_id": net.id, "neutron_subnet_id": net.subnet_id})
        outcome["created"] = sn.subnets[0].provider_network_id == net.id

    for round_ in range(6):
        net = providers.create(admin, name=f"race-{round_}", bridge="br-race",
                               cidr=f"10.99.{round_}.0/24").network
        args = (net, threading.Barrier(2), {})
        threads = [threading.Thread(target=delete, args=args), threading.Thread(target=create, args=args)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outcome = args[2]
        assert outcome["deleted"] != outcome["created"], outcome


def test_concurrent_provider_creates_with_one_name(db):
    from shareflow.exceptions import Conflict
    from shareflow.services.context import Caller
    from shareflow.services.networks import ProviderNetworkService

    admin = Caller(project_id="ops", is_admin=True)
    providers = ProviderNetworkService(db, clock=clock)
    barrier = threading.Barrier(6)
    won, lost = [], []

    def create(i):
        barrier.wait()
        try:
            won.append(providers.create(admin, name="same", bridge=f"br{i}", cidr=f"10.98.{i}.0/24"))
        except Conflict:
            lost.append(i)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 5


def test_share_network_delete_races_share_create(db, zookeeper_server, request):
    """A share network is deleted, or a share is made on it: never both (the
    create holds the share network's row lock until it commits)."""
    from shareflow.config import parse
    from shareflow.db import share_types as types_db
    from shareflow.db.models import Share
    from shareflow.engine.boards import PostingBoards
    from shareflow.engine.persistence import make_persistence
    from shareflow.engine.posting import JobPoster
    from shareflow.exceptions import Conflict, NotFound
    from shareflow.services.context import Caller
    from shareflow.services.networks import ShareNetworkService
    from shareflow.services.shares import ShareService
    from tests.fixtures.coordination import chroot

    # No conductor, no pool reported: a share made is error at once (no pool
    # passes, no job), its row on the share network, which is enough for the race.
    zk_root = contextlib.ExitStack()
    request.addfinalizer(zk_root.close)
    root = zk_root.enter_context(chroot(zookeeper_server.hosts))
    config = parse({"database": {"url": "sqlite://"}, "zookeeper": {"hosts": zookeeper_server.hosts, "chroot": root}},
                   Path("/nonexistent/shareflow.toml"))
    boards = PostingBoards(config.zookeeper)
    zk_root.callback(boards.close)
    tenant = Caller(project_id="p", user_id="u")
    with db.write() as s:
        types_db.create(s, now=clock(), name="dhss", specs={"driver_handles_share_servers": "True"})
    share_networks = ShareNetworkService(config, db, clock=clock)
    shares = ShareService(config, db, JobPoster(db, make_persistence(db), boards, clock=clock), clock=clock)

    def delete(sn_id, barrier, outcome):
        barrier.wait()
        try:
            share_networks.delete(tenant, sn_id)
            outcome["deleted"] = True
        except Conflict:
            outcome["deleted"] = False

    def create(sn_id, barrier, outcome):
        barrier.wait()
        try:
            shares.create(tenant, size=1, share_proto="NFS", share_type="dhss", share_network_id=sn_id)
            outcome["created"] = True
        except NotFound:
            outcome["created"] = False

    for _ in range(10):
        sn_id = share_networks.create(tenant, {"name": "racing"}).id
        args = (sn_id, threading.Barrier(2), {})
        threads = [threading.Thread(target=delete, args=args), threading.Thread(target=create, args=args)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        outcome = args[2]
        assert outcome["deleted"] != outcome["created"], outcome
        with db.read() as s:
            on_it = s.scalars(sa.select(Share.id).where(Share.share_network_id == sn_id)).all()
        assert bool(on_it) == outcome["created"]
