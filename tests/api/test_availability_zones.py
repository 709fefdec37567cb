"""Availability zones: ``GET /availability-zones`` (2.7+) and
``/os-availability-zone`` (2.0-2.6), and shares asking for a zone."""

from __future__ import annotations

import uuid

from shareflow.db.models import Share
from shareflow.services.availability_zones import zone_id
from tests.api.conftest import assert_fault


def test_list_at_each_microversion_under_its_url(api):
    expected_id = zone_id("nova")
    for version, url in (("2.7", "/v2/availability-zones"), ("2.65", "/v2/availability-zones"),
                         ("2.0", "/v2/os-availability-zone"), ("2.6", "/v2/os-availability-zone"),
                         (None, "/v2/os-availability-zone"), ("2.65", "/v2/proj-a/availability-zones")):
        result = api.get(url, version=version)
        assert result.status_code == 200, (version, url, result.text)
        (zone,) = result.json["availability_zones"]
        assert set(zone) == {"id", "name", "created_at", "updated_at"}
        assert zone["name"] == "nova" and zone["id"] == expected_id == str(uuid.UUID(zone["id"]))
        assert zone["created_at"] and zone["updated_at"] is None
    # Each URL only in its own range: Manila's bare 404 outside it.
    assert assert_fault(api.get("/v2/availability-zones", version="2.6"), 404) == "The resource could not be found."
    assert_fault(api.get("/v2/os-availability-zone", version="2.7"), 404)
    # The same zone (and the same creation time) for everyone, admins included.
    admin = api.get("/v2/availability-zones", token=api.tokens["admin"]).json
    assert admin == api.get("/v2/availability-zones").json
    assert api.get("/v2/availability-zones", params={"anything": "x"}).status_code == 200
    assert api.request("POST", "/v2/availability-zones", json_body={}).status_code == 405


def test_shares_ask_for_the_zone_by_name_or_id(api):
    by_name = api.create_share(token=api.tokens["alice"], availability_zone="nova")
    by_id = api.create_share(token=api.tokens["alice"], availability_zone=zone_id("nova"))
    default = api.create_share(token=api.tokens["alice"])
    assert by_name["availability_zone"] == by_id["availability_zone"] == default["availability_zone"] == "nova"

    before = api.count(Share)
    body = {"share": {"size": 1, "share_proto": "NFS", "availability_zone": "elsewhere"}}
    message = assert_fault(api.post("/v2/shares", body), 404, "itemNotFound")
    assert message == "Availability zone elsewhere could not be found."
    assert api.count(Share) == before
