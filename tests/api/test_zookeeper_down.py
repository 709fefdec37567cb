"""Reads never need ZooKeeper: every GET route of the API is served by a
process whose ZooKeeper cannot be reached, without that process ever making a
kazoo client; the first write that needs the jobboard is what starts one, and
it is answered 503 with nothing changed."""

from __future__ import annotations

import dataclasses

import falcon.testing

from shareflow.api.app import create_app
from shareflow.system.ports import free_port
from shareflow.wiring import Services
from tests.api.conftest import MAX, assert_fault


def test_every_read_is_served_without_zookeeper(api):
    alice, admin = api.tokens["alice"], api.tokens["admin"]
    share = api.create_share(token=alice, size=2)
    share_id = share["id"]
    api.set_share_status(share_id, "available")
    location = api.add_export_location(share_id, "192.0.2.1:/shares/x")
    api.post(f"/v2/shares/{share_id}/metadata", {"metadata": {"k": "v"}}, token=alice)
    rule = api.post(f"/v2/shares/{share_id}/action", {"allow_access": {
        "access_type": "ip", "access_to": "192.0.2.9", "access_level": "rw"}}, token=alice).json["access"]
    snapshot = api.post("/v2/snapshots", {"snapshot": {"share_id": share_id}}, token=alice).json["snapshot"]
    type_id = api.get("/v2/types/default", token=alice).json["share_type"]["id"]

    # Another process of the same service, whose ZooKeeper is nowhere.
    zk = dataclasses.replace(api.config.zookeeper, hosts=f"127.0.0.1:{free_port()}")
    config = dataclasses.replace(api.config, zookeeper=zk)
    services = Services(config)
    client = falcon.testing.TestClient(create_app(config, services))
    reads = [
        "/", "/v2", "/v2/shares", "/v2/shares/detail", f"/v2/shares/{share_id}",
        f"/v2/adminproj/shares/{share_id}",
        f"/v2/shares/{share_id}/export_locations", f"/v2/shares/{share_id}/export_locations/{location}",
        f"/v2/shares/{share_id}/metadata", f"/v2/shares/{share_id}/metadata/k",
        "/v2/availability-zones",
        "/v2/types", "/v2/types/default", f"/v2/types/{type_id}", f"/v2/types/{type_id}/extra_specs",
        f"/v2/types/{type_id}/extra_specs/driver_handles_share_servers",
        "/v2/snapshots", "/v2/snapshots/detail", f"/v2/snapshots/{snapshot['id']}",
        f"/v2/share-access-rules?share_id={share_id}", f"/v2/share-access-rules/{rule['id']}",
        "/v2/quota-sets/proj-a", "/v2/quota-sets/proj-a/defaults", "/v2/quota-sets/proj-a/detail",
        "/v2/limits", "/v2/messages",
        "/v2/share-servers", "/v2/share-networks", "/v2/share-networks/detail",
        "/v2/security-services", "/v2/security-services/detail", "/v2/provider-networks",
    ]
    try:
        for path in reads:
            url, _, query = path.partition("?")
            result = client.simulate_get(url, query_string=query or None, headers={
                "X-Auth-Token": admin, "X-OpenStack-Manila-API-Version": MAX})
            assert result.status_code in (200, 300), (path, result.status_code, result.text)
        assert not services.boards.started, "a read made a ZooKeeper client"

        result = client.simulate_post(f"/v2/shares/{share_id}/action", json={"extend": {"new_size": 3}},
                                      headers={"X-Auth-Token": alice, "X-OpenStack-Manila-API-Version": MAX})
        assert "Nothing was changed" in assert_fault(result, 503, "serviceUnavailable")
        assert services.boards.started
        row = api.share_row(share_id)
        assert (row.status, row.size, row.pending_size) == ("available", 2, None)
    finally:
        services.close()
