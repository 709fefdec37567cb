"""``/provider-networks`` (admin extension) and ``/share-networks`` (Manila) in process."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from shareflow.auth.tokens import TokenFile
from shareflow.db import shares as shares_db
from shareflow.db.models import (
    AllocationRange,
    ProviderNetwork,
    ShareNetwork,
    ShareNetworkSubnet,
    ShareServer,
)
from shareflow.domain import states
from shareflow.wiring import utcnow
from tests.api.conftest import assert_fault

_octet = iter(range(1, 250))


def provider(api, **extra) -> dict:
    """A provider network with a CIDR of its own (10.200.N.0/24)."""
    n = next(_octet)
    body = {"provider_network": {"name": f"net-{uuid.uuid4().hex[:8]}", "bridge": "br-tenants",
                                 "cidr": f"10.200.{n}.0/24", **extra}}
    result = api.post("/v2/provider-networks", body, token=api.tokens["admin"])
    assert result.status_code == 201, result.text
    return result.json["provider_network"]


def share_network(api, net: dict | None = None, *, token=None, version="2.65", **extra) -> dict:
    values = dict(extra)
    if net is not None:
        values.update(neutron_net_id=net["id"], neutron_subnet_id=net["subnet_id"])
    result = api.post("/v2/share-networks", {"share_network": values},
                      token=token or api.tokens["alice"], version=version)
    assert result.status_code == 200, result.text
    return result.json["share_network"]


def counts(api) -> tuple[int, ...]:
    return (api.count(ProviderNetwork), api.count(AllocationRange), api.count(ShareNetwork),
            api.count(ShareNetworkSubnet))


# --- provider networks ----------------------------------------------------------


def test_provider_network_defaults_and_show(api):
    net = provider(api, gateway=None)
    assert net["bridge"] == "br-tenants" and net["mtu"] == 1500 and net["gateway"] is None
    assert net["network_type"] == "flat" and net["ip_version"] == 4
    prefix = net["cidr"].rsplit(".", 1)[0]
    assert net["allocation_ranges"] == [{"start": f"{prefix}.1", "end": f"{prefix}.254"}]
    assert net["capacity"] == 254 and net["allocated"] == 0
    uuid.UUID(net["subnet_id"])
    admin = api.tokens["admin"]
    for ref in (net["id"], net["name"]):
        shown = api.get(f"/v2/provider-networks/{ref}", token=admin).json["provider_network"]
        assert shown == net
    # With the project in the path, and at any microversion.
    listed = api.get("/v2/adminproj/provider-networks", token=admin, version="2.0").json
    assert net["id"] in [n["id"] for n in listed["provider_networks"]]


def test_provider_network_gateway_splits_the_default_range(api):
    n = next(_octet)
    net = provider(api, cidr=f"10.201.{n}.0/28", gateway=f"10.201.{n}.5", mtu=9000)
    assert net["allocation_ranges"] == [
        {"start": f"10.201.{n}.1", "end": f"10.201.{n}.4"},
        {"start": f"10.201.{n}.6", "end": f"10.201.{n}.14"},
    ]
    assert net["capacity"] == 13 and net["mtu"] == 9000


def test_provider_network_explicit_ranges(api):
    n = next(_octet)
    net = provider(api, cidr=f"10.202.{n}.0/24", gateway=f"10.202.{n}.1",
                   allocation_ranges=[{"start": f"10.202.{n}.100", "end": f"10.202.{n}.109"},
                                      {"start": f"10.202.{n}.10", "end": f"10.202.{n}.19"}])
    assert net["allocation_ranges"] == [
        {"start": f"10.202.{n}.10", "end": f"10.202.{n}.19"},
        {"start": f"10.202.{n}.100", "end": f"10.202.{n}.109"},
    ]
    assert net["capacity"] == 20


def test_members_may_not_touch_provider_networks(api):
    net = provider(api)
    before = counts(api)
    body = {"provider_network": {"name": "x", "bridge": "br0", "cidr": "10.9.0.0/24"}}
    for result in (
        api.post("/v2/provider-networks", body),
        api.post("/v2/provider-networks", {"garbage": 1}),  # policy before the body
        api.get("/v2/provider-networks"),
        api.get(f"/v2/provider-networks/{net['id']}"),
        api.delete(f"/v2/provider-networks/{net['id']}"),
    ):
        assert "Policy doesn't allow provider_network:" in assert_fault(result, 403)
    assert counts(api) == before


@pytest.mark.parametrize("fields, message", [
    ({"bridge": "br/0"}, "Invalid bridge name"),
    ({"bridge": "a-very-long-bridge-name"}, "Invalid bridge name"),
    ({"bridge": "-br"}, "Invalid bridge name"),
    ({"bridge": "br 0"}, "Invalid bridge name"),
    ({"bridge": None}, "Invalid bridge name"),
    ({"cidr": "10.9.0.0"}, "Invalid CIDR"),
    ({"cidr": "10.9.0.300/24"}, "Invalid CIDR"),
    ({"cidr": "10.9.0.5/24"}, "host bits are set; did you mean 10.9.0.0/24"),
    ({"cidr": "10.9.0.0/31"}, "/30 or larger"),
    ({"cidr": "fd00::/64"}, "IPv6 is not supported"),
    ({"cidr": 17}, "Invalid CIDR"),
    ({"gateway": "10.8.0.1"}, "not inside the network"),
    ({"gateway": "10.9.0.255"}, "network or broadcast"),
    ({"gateway": "fd00::1"}, "IPv6 is not supported"),
    ({"gateway": "nope"}, "expected an IPv4 address"),
    ({"mtu": 575}, "Invalid MTU"),
    ({"mtu": 9001}, "Invalid MTU"),
    ({"mtu": "big"}, "Invalid MTU"),
    ({"mtu": True}, "Invalid MTU"),
    ({"allocation_ranges": []}, "non-empty list"),
    ({"allocation_ranges": "10.9.0.1-10.9.0.9"}, "non-empty list"),
    ({"allocation_ranges": [{"start": "10.9.0.1"}]}, "Invalid allocation range"),
    ({"allocation_ranges": [{"start": "10.9.0.9", "end": "10.9.0.1"}]}, "start is after the end"),
    ({"allocation_ranges": [{"start": "10.9.0.200", "end": "10.9.1.10"}]}, "not inside the network"),
    ({"allocation_ranges": [{"start": "10.9.0.0", "end": "10.9.0.10"}]}, "network or broadcast"),
    ({"allocation_ranges": [{"start": "10.9.0.1", "end": "10.9.0.10"},
                            {"start": "10.9.0.10", "end": "10.9.0.20"}]}, "overlap"),
    ({"gateway": "10.9.0.5", "allocation_ranges": [{"start": "10.9.0.1", "end": "10.9.0.10"}]},
     "includes the gateway"),
    ({"name": ""}, "non-empty"),
    ({"name": "x" * 256}, "longer than 255"),
    ({"name": 5}, "non-empty string"),
    ({"vlan": 5}, "Unknown provider network field(s): vlan"),
])
def test_bad_provider_network_is_400_and_writes_nothing(api, fields, message):
    before = counts(api)
    body = {"provider_network": {"name": f"bad-{uuid.uuid4().hex[:6]}", "bridge": "br0",
                                 "cidr": "10.9.0.0/24", **fields}}
    assert message in assert_fault(api.post("/v2/provider-networks", body, token=api.tokens["admin"]), 400)
    assert counts(api) == before


@pytest.mark.parametrize("body", [None, [], {"provider_network": []}, {"provider_network": "x"}, {}])
def test_malformed_provider_network_body(api, body):
    before = counts(api)
    assert_fault(api.post("/v2/provider-networks", body, token=api.tokens["admin"]), 400)
    assert counts(api) == before


def test_provider_network_conflicts(api):
    admin = api.tokens["admin"]
    net = provider(api)
    same_name = {"provider_network": {"name": net["name"], "bridge": "br-other", "cidr": "10.8.0.0/24"}}
    assert "already exists" in assert_fault(api.post("/v2/provider-networks", same_name, token=admin), 409)
    overlap = {"provider_network": {"name": "overlap", "bridge": "br-tenants",
                                    "cidr": net["cidr"].rsplit(".", 1)[0] + ".128/25"}}
    assert "overlaps" in assert_fault(api.post("/v2/provider-networks", overlap, token=admin), 409)
    # The same CIDR on another bridge is another network.
    other = {"provider_network": {"name": f"o-{uuid.uuid4().hex[:6]}", "bridge": "br-other2",
                                  "cidr": net["cidr"]}}
    assert api.post("/v2/provider-networks", other, token=admin).status_code == 201


def test_provider_network_delete_refused_in_use(api):
    admin = api.tokens["admin"]
    net = provider(api)
    sn = share_network(api, net)
    msg = assert_fault(api.delete(f"/v2/provider-networks/{net['id']}", token=admin), 409)
    assert "in use" in msg and "1 share network subnet(s)" in msg
    # An allocation alone also keeps it.
    from shareflow.services.network_allocations import NetworkAllocations

    helper = NetworkAllocations(api.services.db, clock=utcnow)
    allocation = helper.allocate(f"share-{uuid.uuid4()}", sn["id"])
    assert allocation["address"] == net["allocation_ranges"][0]["start"]
    assert api.get(f"/v2/provider-networks/{net['id']}", token=admin).json["provider_network"]["allocated"] == 1
    assert api.delete(f"/v2/share-networks/{sn['id']}").status_code == 202
    msg = assert_fault(api.delete(f"/v2/provider-networks/{net['id']}", token=admin), 409)
    assert "1 address allocation(s)" in msg
    helper.release(allocation)
    assert api.delete(f"/v2/provider-networks/{net['id']}", token=admin).status_code == 202
    assert_fault(api.get(f"/v2/provider-networks/{net['id']}", token=admin), 404)
    assert_fault(api.delete(f"/v2/provider-networks/{net['id']}", token=admin), 404)
    # Its name is free again.
    again = {"provider_network": {"name": net["name"], "bridge": "br-tenants", "cidr": net["cidr"]}}
    assert api.post("/v2/provider-networks", again, token=admin).status_code == 201


# --- share networks ---------------------------------------------------------------


def test_share_network_create_and_show_per_microversion(api):
    net = provider(api, mtu=1450, gateway=None)
    sn = share_network(api, net, name="tenant-net", description="mine")
    assert sn["name"] == "tenant-net" and sn["description"] == "mine" and sn["project_id"] == "proj-a"
    assert sn["status"] == "active" and sn["security_service_update_support"] is False
    (sub,) = sn["share_network_subnets"]
    assert sub["neutron_net_id"] == net["id"] and sub["neutron_subnet_id"] == net["subnet_id"]
    assert sub["cidr"] == net["cidr"] and sub["ip_version"] == 4 and sub["mtu"] == 1450
    assert sub["gateway"] is None and sub["availability_zone"] is None
    # Members do not see network_type / segmentation_id (Manila's show_network_details).
    assert sub["network_type"] is None and sub["segmentation_id"] is None
    for key in ("neutron_net_id", "cidr", "gateway", "mtu", "nova_net_id"):
        assert key not in sn

    path = f"/v2/share-networks/{sn['id']}"
    admin_view = api.get(path, token=api.tokens["admin"]).json["share_network"]
    assert admin_view["share_network_subnets"][0]["network_type"] == "flat"

    old = api.get(path, version="2.0").json["share_network"]
    assert old["neutron_net_id"] == net["id"] and old["neutron_subnet_id"] == net["subnet_id"]
    assert old["cidr"] == net["cidr"] and old["ip_version"] == 4 and old["nova_net_id"] is None
    assert "gateway" not in old and "mtu" not in old and "share_network_subnets" not in old
    assert "status" not in old
    assert "gateway" in api.get(path, version="2.18").json["share_network"]
    v20 = api.get(path, version="2.20").json["share_network"]
    assert v20["mtu"] == 1450
    assert "nova_net_id" not in api.get(path, version="2.26").json["share_network"]
    assert "status" not in api.get(path, version="2.62").json["share_network"]
    assert api.get(path, version="2.0", token=api.tokens["admin"]).json["share_network"]["network_type"] == "flat"


def test_share_network_by_provider_name_and_without_network(api):
    net = provider(api)
    sn = share_network(api, None, neutron_net_id=net["name"], neutron_subnet_id=net["subnet_id"])
    # Shown as given (Manila stores the ids it is handed), on the provider network it names.
    (sub,) = sn["share_network_subnets"]
    assert (sub["neutron_net_id"], sub["neutron_subnet_id"], sub["cidr"]) == (net["name"], net["subnet_id"], net["cidr"])
    bare = share_network(api, None, name="later")
    assert bare["share_network_subnets"][0]["neutron_net_id"] is None


@pytest.mark.parametrize("values, message", [
    ({"neutron_net_id": "x"}, "specify both neutron_net_id and neutron_subnet_id or none of them"),
    ({"neutron_subnet_id": "x"}, "specify both neutron_net_id and neutron_subnet_id or none of them"),
    ({"nova_net_id": "x"}, "nova networking is not supported"),
    ({"neutron_net_id": 5, "neutron_subnet_id": "x"}, "must be a string"),
    ({"name": "x" * 256}, "longer than 255"),
    ({"description": ["x"]}, "must be a string"),
    ({"availability_zone": "mars"}, "The provided availability zone mars does not exist."),
])
def test_bad_share_network_is_400_and_writes_nothing(api, values, message):
    before = counts(api)
    assert message in assert_fault(api.post("/v2/share-networks", {"share_network": values}), 400)
    assert counts(api) == before


def test_share_network_with_ids_this_deployment_does_not_know(api):
    """Manila accepts any neutron ids and fails only when a share server must
    be built there (item 8): stored and shown as given, on no provider network."""
    net, other = provider(api), provider(api)
    cases = [
        {"neutron_net_id": "no-such-net", "neutron_subnet_id": net["subnet_id"]},
        {"neutron_net_id": net["id"], "neutron_subnet_id": "no-such-subnet"},
        {"neutron_net_id": net["id"], "neutron_subnet_id": other["subnet_id"]},
    ]
    for values in cases:
        for version in ("2.50", "2.51", "2.65"):
            sn = share_network(api, None, version=version, **values)
            flat = sn["share_network_subnets"][0] if version != "2.50" else sn
            assert (flat["neutron_net_id"], flat["neutron_subnet_id"]) == (values["neutron_net_id"],
                                                                          values["neutron_subnet_id"])
            assert flat["cidr"] is None and flat["gateway"] is None and flat["mtu"] is None
            shown = api.get(f"/v2/share-networks/{sn['id']}", version=version).json["share_network"]
            assert shown == sn
            listed = api.get("/v2/share-networks/detail", version=version,
                             params={"neutron_net_id": values["neutron_net_id"]}).json["share_networks"]
            assert sn["id"] in {x["id"] for x in listed}
    # A subnet too, and an update to unknown ids of a share network without servers.
    sn = share_network(api, net)
    path = f"/v2/share-networks/{sn['id']}"
    sub = api.post(f"{path}/subnets", {"share-network-subnet": {
        "neutron_net_id": "elsewhere", "neutron_subnet_id": "elsewhere-sub", "availability_zone": "nova"}})
    assert sub.status_code == 200, sub.text
    assert sub.json["share_network_subnet"]["neutron_net_id"] == "elsewhere"
    assert sub.json["share_network_subnet"]["cidr"] is None
    updated = api.put(path, {"share_network": {"neutron_net_id": "n2", "neutron_subnet_id": "s2"}}, version="2.50")
    assert updated.status_code == 200, updated.text
    assert (updated.json["share_network"]["neutron_net_id"], updated.json["share_network"]["cidr"]) == ("n2", None)
    back = api.put(path, {"share_network": {"neutron_net_id": net["id"], "neutron_subnet_id": net["subnet_id"]}},
                   version="2.50")
    assert back.json["share_network"]["cidr"] == net["cidr"]


@pytest.mark.parametrize("body", [None, {}, {"share": {}}, []])
def test_share_network_without_object_is_422(api, body):
    before = counts(api)
    assert_fault(api.post("/v2/share-networks", body), 422)
    assert counts(api) == before


def test_share_network_isolation_and_listing(api):
    net = provider(api)
    mine = share_network(api, net, name=f"a-{uuid.uuid4().hex[:6]}")
    theirs = share_network(api, net, token=api.tokens["bob"], name=f"b-{uuid.uuid4().hex[:6]}")
    admin = api.tokens["admin"]
    assert_fault(api.get(f"/v2/share-networks/{theirs['id']}"), 404)
    assert_fault(api.put(f"/v2/share-networks/{theirs['id']}", {"share_network": {"name": "x"}}), 404)
    assert_fault(api.delete(f"/v2/share-networks/{theirs['id']}"), 404)
    assert_fault(api.get(f"/v2/share-networks/{theirs['id']}/subnets"), 404)

    ids = [n["id"] for n in api.get("/v2/share-networks").json["share_networks"]]
    assert mine["id"] in ids and theirs["id"] not in ids
    # all_tenants / project_id are ignored for members.
    ids = [n["id"] for n in api.get("/v2/share-networks?all_tenants=1&project_id=proj-b").json["share_networks"]]
    assert theirs["id"] not in ids
    summary = api.get("/v2/share-networks").json["share_networks"][0]
    assert set(summary) == {"id", "name"}

    # Admin: own project by default, all with all_tenants, one with project_id.
    ids = [n["id"] for n in api.get("/v2/share-networks/detail", token=admin).json["share_networks"]]
    assert mine["id"] not in ids
    ids = [n["id"] for n in api.get("/v2/share-networks/detail?all_tenants", token=admin).json["share_networks"]]
    assert {mine["id"], theirs["id"]} <= set(ids)
    ids = [n["id"] for n in api.get("/v2/share-networks?project_id=proj-b", token=admin).json["share_networks"]]
    assert theirs["id"] in ids and mine["id"] not in ids
    assert api.get(f"/v2/share-networks/{mine['id']}", token=admin).status_code == 200


def test_share_networks_unfiltered_page_in_sql_filtered_ones_after_matching(api):
    token = TokenFile(api.config.auth.tokens_file).issue("proj-sn-pages", "pager")[0]
    made = [share_network(api, None, token=token, name=f"page-{i}")["id"] for i in range(4)]
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "FROM share_networks" in statement:
            statements.append(statement)

    def listed(query: str) -> list[str]:
        return [n["id"] for n in api.get(f"/v2/share-networks?{query}", token=token).json["share_networks"]]

    assert listed("") == made  # oldest first
    sa.event.listen(api.services.db.engine, "before_cursor_execute", record)
    try:
        assert listed("limit=2&offset=1") == made[1:3]
    finally:
        sa.event.remove(api.services.db.engine, "before_cursor_execute", record)
    assert any("LIMIT" in st and "OFFSET" in st for st in statements)
    assert listed("limit=2&offset=3") == made[3:]
    assert listed("name~=page-&limit=2&offset=1") == made[1:3]  # filtered, then paged


def test_share_network_list_filters(api):
    net = provider(api)
    tag = uuid.uuid4().hex[:6]
    one = share_network(api, net, name=f"one-{tag}", description="first")
    two = share_network(api, None, name=f"two-{tag}")

    def ids(query, **kw):
        return {n["id"] for n in api.get(f"/v2/share-networks/detail?{query}", **kw).json["share_networks"]}

    assert ids(f"name=one-{tag}") == {one["id"]}
    assert ids(f"name~={tag}") == {one["id"], two["id"]}
    assert ids(f"name~={tag}", version="2.35") == set()  # inexact filters from 2.36
    assert one["id"] in ids(f"neutron_net_id={net['id']}") and two["id"] not in ids(f"neutron_net_id={net['id']}")
    assert ids(f"neutron_subnet_id={net['subnet_id']}") == {one["id"]}
    assert one["id"] in ids("ip_version=4") and two["id"] not in ids("ip_version=4")
    assert ids(f"cidr={net['cidr']}") == {one["id"]}
    assert one["id"] in ids("network_type=anything")  # ignored for members
    assert ids(f"network_type=flat&name~={tag}", token=api.tokens["admin"]) == set()  # admin's own project
    assert ids("created_since=2000-01-01") >= {one["id"], two["id"]}
    assert ids("created_before=2000-01-01") == set()
    assert ids("security_service_id=x") == set()
    assert ids("no_such_field=x") == set()  # Manila: nothing matches
    assert len(ids(f"name~={tag}&limit=1")) == 1
    assert "yyyy-mm-dd" in assert_fault(api.get("/v2/share-networks?created_since=yesterday"), 400)
    assert "ip_version" in assert_fault(api.get("/v2/share-networks?ip_version=four"), 400)
    assert_fault(api.get("/v2/share-networks?limit=-1"), 400)


def test_share_network_update(api):
    net, other = provider(api), provider(api)
    sn = share_network(api, net, name="before")
    path = f"/v2/share-networks/{sn['id']}"
    updated = api.put(path, {"share_network": {"name": "after", "description": "d"}}).json["share_network"]
    assert updated["name"] == "after" and updated["description"] == "d" and updated["updated_at"]
    moved = api.put(path, {"share_network": {"neutron_net_id": other["id"],
                                             "neutron_subnet_id": other["subnet_id"]}})
    assert moved.json["share_network"]["share_network_subnets"][0]["neutron_net_id"] == other["id"]
    # One id alone is kept with the other as given, even when they name no provider network together.
    mixed = api.put(path, {"share_network": {"neutron_subnet_id": net["subnet_id"]}}).json["share_network"]
    (sub,) = mixed["share_network_subnets"]
    assert (sub["neutron_net_id"], sub["neutron_subnet_id"], sub["cidr"]) == (other["id"], net["subnet_id"], None)
    moved = api.put(path, {"share_network": {"neutron_subnet_id": other["subnet_id"]}}).json["share_network"]
    assert moved["share_network_subnets"][0]["cidr"] == other["cidr"]
    assert "nova networking" in assert_fault(api.put(path, {"share_network": {"nova_net_id": "x"}}), 400)
    assert "longer than 255" in assert_fault(api.put(path, {"share_network": {"name": "x" * 300}}), 400)
    assert_fault(api.put(path, {"name": "x"}), 422)
    shown = api.get(path).json["share_network"]
    assert shown["name"] == "after" and shown["share_network_subnets"][0]["neutron_net_id"] == other["id"]
    # Unset both (manilaclient sends "" as null).
    cleared = api.put(path, {"share_network": {"neutron_net_id": None, "neutron_subnet_id": None}})
    assert cleared.json["share_network"]["share_network_subnets"][0]["neutron_net_id"] is None
    msg = assert_fault(api.put(path, {"share_network": {"neutron_net_id": net["id"]}}), 400)
    assert msg == (f"To update the share network {sn['id']} you need to specify both 'neutron_net_id' "
                   "and 'neutron_subnet_id'.")


def _share_on(api, sn_id: str) -> str:
    with api.services.db.write() as s:
        share = shares_db.create(
            s, now=utcnow(), id=str(uuid.uuid4()), project_id="proj-a", size=1, share_proto="NFS",
            status=states.AVAILABLE, is_public=False, share_network_id=sn_id,
        )
        return share.id


def test_share_network_in_use(api):
    net = provider(api)
    sn = share_network(api, net)
    path = f"/v2/share-networks/{sn['id']}"
    share_id = _share_on(api, sn["id"])
    msg = assert_fault(api.put(path, {"share_network": {"neutron_net_id": None, "neutron_subnet_id": None}}), 403)
    assert msg.startswith(f"Cannot update share network {sn['id']}. It is used by share servers.")
    assert api.put(path, {"share_network": {"name": "still-ok"}}).status_code == 200
    assert assert_fault(api.delete(path), 409) == f"Can not delete share network {sn['id']}, it has 1 share(s)."

    with api.services.db.write() as s:
        shares_db.update_fields(s, shares_db.get(s, share_id), now=utcnow(), deleted_at=utcnow())
        s.add(ShareServer(id=str(uuid.uuid4()), share_network_id=sn["id"],
                          share_network_subnet_id=sn["share_network_subnets"][0]["id"], project_id="proj-a",
                          backend="testhost@b1", host="testhost@b1", status=states.SERVER_ACTIVE, created_at=utcnow()))
    assert "share server" in assert_fault(api.delete(path), 409)
    assert_fault(api.put(path, {"share_network": {"neutron_net_id": None, "neutron_subnet_id": None}}), 403)
    with api.services.db.write() as s:
        for server in s.query(ShareServer).filter_by(share_network_id=sn["id"]):
            server.deleted_at = utcnow()
    assert api.delete(path).status_code == 202
    assert_fault(api.get(path), 404)
    assert_fault(api.delete(path), 404)


def test_share_network_subnets(api):
    net = provider(api)
    sn = share_network(api, net, name="with-subnet")
    (sub,) = api.get(f"/v2/share-networks/{sn['id']}/subnets").json["share_network_subnets"]
    assert sub["share_network_id"] == sn["id"] and sub["share_network_name"] == "with-subnet"
    assert sub["neutron_net_id"] == net["id"] and sub["network_type"] is None
    assert sub["id"] == sn["share_network_subnets"][0]["id"]
    shown = api.get(f"/v2/share-networks/{sn['id']}/subnets/{sub['id']}").json["share_network_subnet"]
    assert shown == sub
    admin_view = api.get(f"/v2/share-networks/{sn['id']}/subnets/{sub['id']}", token=api.tokens["admin"])
    assert admin_view.json["share_network_subnet"]["network_type"] == "flat"
    assert_fault(api.get(f"/v2/share-networks/{sn['id']}/subnets/{uuid.uuid4()}"), 404)
    assert_fault(api.get(f"/v2/share-networks/{sn['id']}/subnets", version="2.50"), 404)


def test_share_network_actions_are_refused(api):
    sn = share_network(api, None)
    path = f"/v2/share-networks/{sn['id']}/action"
    assert "not supported" in assert_fault(api.post(path, {"reset_status": {"status": "active"}}), 400)
    assert "not supported" in assert_fault(api.post(path, {"share_network_subnet_create_check": {}}), 400)
    assert "no such action" in assert_fault(api.post(path, {"explode": {}}), 400)
    assert_fault(api.post(path, {"a": 1, "b": 2}), 400)
    assert_fault(api.post(f"/v2/share-networks/{uuid.uuid4()}/action", {"reset_status": {}}), 404)


def test_share_network_garbage_ids_are_404(api):
    for ref in ("x", "%00", "a" * 300):
        assert_fault(api.get(f"/v2/share-networks/{ref}"), 404)
        assert_fault(api.get(f"/v2/provider-networks/{ref}", token=api.tokens["admin"]), 404)


# --- malformed input: never a 500, and a refused request writes nothing ------------


def test_malformed_input_on_network_routes(api):
    from tests.api.test_malformed import JUNK, NOT_BODIES, variants

    admin = api.tokens["admin"]
    net = provider(api)
    sn = share_network(api, net)
    routes = [
        ("POST", "/v2/provider-networks", admin, "provider_network",
         {"name": "fuzz", "bridge": "br-fuzz", "cidr": "10.250.0.0/24", "gateway": "10.250.0.1",
          "mtu": 1500, "allocation_ranges": [{"start": "10.250.0.10", "end": "10.250.0.20"}]}),
        ("POST", "/v2/share-networks", None, "share_network",
         {"name": "fuzz", "description": "d", "neutron_net_id": net["id"],
          "neutron_subnet_id": net["subnet_id"], "availability_zone": "nova"}),
        ("PUT", f"/v2/share-networks/{sn['id']}", None, "share_network",
         {"name": "fuzz", "description": "d", "neutron_net_id": net["id"],
          "neutron_subnet_id": net["subnet_id"]}),
        ("POST", f"/v2/share-networks/{sn['id']}/action", None, "reset_status", {"status": "active"}),
    ]
    for method, path, token, key, fields in routes:
        for body in variants(key, fields):
            if method == "POST" and key == "provider_network" and body[key] == fields:
                continue  # the valid body itself, tried below
            before = counts(api)
            result = api.request(method, path, json_body=body, token=token or api.tokens["alice"])
            if result.status_code >= 400:
                assert counts(api) == before, (path, body)
        for raw in NOT_BODIES:
            before = counts(api)
            result = api.request(method, path, body=raw, token=token or api.tokens["alice"],
                                 headers={"Content-Type": "application/json"})
            assert 400 <= result.status_code < 500, (path, raw)
            assert counts(api) == before
    for junk in JUNK:
        if isinstance(junk, str) and junk.strip() and "/" not in junk and "\x00" not in junk:
            for path in (f"/v2/share-networks/{junk}", f"/v2/share-networks?name={junk}",
                         f"/v2/share-networks/detail?limit={junk}"):
                assert api.get(path).status_code in (200, 400, 404)


def test_share_network_subnet_create_and_delete(api):
    net, zoned_net = provider(api), provider(api)
    sn = share_network(api, net)
    base = f"/v2/share-networks/{sn['id']}/subnets"
    before = counts(api)
    # One subnet per zone: the default (zone-less) one exists already.
    msg = assert_fault(api.post(base, {"share-network-subnet": {}}), 409)
    assert msg == ("Another share network subnet was found in the specified availability zone. Only one "
                   f"share network subnet is allowed per availability zone for share network {sn['id']}.")
    assert "missing from the request body" in assert_fault(api.post(base, {"subnet": {}}), 400)
    assert "specify both" in assert_fault(api.post(base, {"share-network-subnet": {"neutron_net_id": "x"}}), 400)
    assert "mars does not exist" in assert_fault(
        api.post(base, {"share-network-subnet": {"availability_zone": "mars"}}), 400)
    assert_fault(api.post(base, {"share-network-subnet": {}}, version="2.50"), 404)
    assert_fault(api.post(f"/v2/share-networks/{uuid.uuid4()}/subnets", {"share-network-subnet": {}}), 404)
    assert counts(api) == before

    created = api.post(base, {"share-network-subnet": {
        "availability_zone": "nova", "neutron_net_id": zoned_net["id"],
        "neutron_subnet_id": zoned_net["subnet_id"]}}).json["share_network_subnet"]
    assert created["availability_zone"] == "nova" and created["neutron_net_id"] == zoned_net["id"]
    assert created["share_network_id"] == sn["id"]
    assert_fault(api.post(base, {"share-network-subnet": {"availability_zone": "nova"}}), 409)
    assert len(api.get(base).json["share_network_subnets"]) == 2
    # The zone's own subnet is where share servers get their addresses.
    from shareflow.services.network_allocations import NetworkAllocations

    helper = NetworkAllocations(api.services.db, clock=utcnow)
    allocation = helper.allocate(f"share-{uuid.uuid4()}", sn["id"])
    assert allocation["network_id"] == zoned_net["id"]
    helper.release(allocation)
    # Below 2.51 the default subnet is what is flattened.
    assert api.get(f"/v2/share-networks/{sn['id']}", version="2.50").json["share_network"]["neutron_net_id"] == net["id"]

    assert "more than one subnet" in assert_fault(api.delete(f"/v2/share-networks/{sn['id']}"), 409)
    assert api.delete(f"{base}/{created['id']}").status_code == 202
    assert_fault(api.get(f"{base}/{created['id']}"), 404)
    assert_fault(api.delete(f"{base}/{created['id']}"), 404)
    assert api.delete(f"/v2/share-networks/{sn['id']}").status_code == 202


def test_share_network_subnet_delete_refused_in_use(api):
    sn = share_network(api, provider(api))
    sub_id = sn["share_network_subnets"][0]["id"]
    server_id = str(uuid.uuid4())
    with api.services.db.write() as s:
        s.add(ShareServer(id=server_id, share_network_id=sn["id"], share_network_subnet_id=sub_id,
                          project_id="proj-a", backend="testhost@b1", host="testhost@b1",
                          status=states.SERVER_ACTIVE, created_at=utcnow()))
    path = f"/v2/share-networks/{sn['id']}/subnets/{sub_id}"
    assert "1 share server(s)" in assert_fault(api.delete(path), 409)
    share_id = _share_on(api, sn["id"])
    with api.services.db.write() as s:
        shares_db.update_fields(s, shares_db.get(s, share_id), now=utcnow(), share_server_id=server_id)
    assert assert_fault(api.delete(path), 409) == (
        f"Cannot delete share network subnet {sub_id} of share network {sn['id']}, it has one or more shares.")
    assert_fault(api.delete(path, token=api.tokens["bob"]), 404)
