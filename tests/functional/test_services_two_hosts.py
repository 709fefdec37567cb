"""Manila's services API on the real stack with two storage hosts (the
stack ``hosta`` with the API under gunicorn, and ``hostb``): python-manilaclient
lists each host's share service and scheduler and the API node, each ``up``
from its own heartbeat; a share service disabled through the API gets no new
shares; a host whose conductors are all dead is shown ``down``."""

from __future__ import annotations

import pytest

from tests.fixtures.hosts import StorageHost, conductors_down
from tests.fixtures.stack import BACKEND, ServiceStack, wait_until
from tests.functional.test_two_hosts import POOL_STALE_AFTER, STALL_AFTER, create, no_shares_left  # noqa: F401

HOST_A, HOST_B = "hosta", "hostb"
SHARE_A, SHARE_B = f"{HOST_A}@{BACKEND}", f"{HOST_B}@{BACKEND}"


@pytest.fixture(scope="module")
def hosts(zookeeper_server, btrfs_pool, tmp_path_factory):
    base = tmp_path_factory.mktemp("services-two-hosts")
    settings = {"conductor": {"stall_after": STALL_AFTER}, "scheduler": {"pool_stale_after": POOL_STALE_AFTER}}
    with ServiceStack(base / HOST_A, zk_hosts=zookeeper_server.hosts, btrfs_pool=btrfs_pool, host=HOST_A,
                      **settings) as a:
        with StorageHost(a, base / HOST_B, host=HOST_B, **settings) as b:
            yield a, b


def states(admin, **search) -> dict[tuple[str, str], tuple[str, str]]:
    return {(s.binary, s.host): (s.status, s.state) for s in admin.services.list(search_opts=search)}


def test_services_of_two_hosts_their_disable_and_their_death(hosts):
    a, b = hosts
    admin = a.manila()
    m = a.manila(a.token("tenant-services"))
    assert states(admin) == {
        ("manila-api", HOST_A): ("enabled", "up"),   # written by the API's gunicorn workers
        ("manila-scheduler", HOST_A): ("enabled", "up"), ("manila-scheduler", HOST_B): ("enabled", "up"),
        ("manila-share", SHARE_A): ("enabled", "up"), ("manila-share", SHARE_B): ("enabled", "up")}

    admin.services.disable(SHARE_B, "manila-share")
    try:
        assert states(admin, binary="manila-share", status="disabled") == {("manila-share", SHARE_B): ("disabled", "up")}
        # Equal pools: without the disable, two shares would not both land on A
        # (the scheduler spreads by free space).
        placed = [admin.shares.get(create(a, m, f"b-disabled-{i}").id).host for i in range(2)]
        assert placed == [f"{SHARE_A}#pool0"] * 2
    finally:
        admin.services.enable(SHARE_B, "manila-share")
    assert states(admin, host=SHARE_B) == {("manila-share", SHARE_B): ("enabled", "up")}

    with conductors_down(b):
        wait_until(lambda: states(admin, state="down") == {("manila-scheduler", HOST_B): ("enabled", "down"),
                                                           ("manila-share", SHARE_B): ("enabled", "down")},
                   POOL_STALE_AFTER + 30, "host b's services to be shown down")
    wait_until(lambda: states(admin, state="down") == {}, 30, "host b's services to be up again")
