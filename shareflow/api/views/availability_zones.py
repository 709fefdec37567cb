"""Availability zones as manila/api/views/availability_zones.py builds them."""

from __future__ import annotations

from shareflow.api.views.common import timestamp
from shareflow.services.availability_zones import AvailabilityZone


def detail(zone: AvailabilityZone) -> dict:
    return {
        "id": zone.id,
        "name": zone.name,
        "created_at": timestamp(zone.created_at),
        "updated_at": timestamp(zone.updated_at),
    }


def list_view(zones: list[AvailabilityZone]) -> dict:
    return {"availability_zones": [detail(z) for z in zones]}
