"""Manila's services views (manila/api/views/services.py): the list's
``id, binary, host, zone, status, state, updated_at``; an enable/disable
answers ``host, binary, disabled`` (before 2.83, which adds the reason)."""

from __future__ import annotations

from shareflow.api.views.common import timestamp
from shareflow.services.service_list import ServiceView


def detail(service: ServiceView) -> dict:
    return {
        "id": service.id,
        "binary": service.binary,
        "host": service.host,
        "zone": service.zone,
        "status": service.status,
        "state": service.state,
        "updated_at": timestamp(service.updated_at),
    }


def list_view(services: list[ServiceView]) -> dict:
    return {"services": [detail(s) for s in services]}


def summary(service: ServiceView) -> dict:
    return {"service": {"host": service.host, "binary": service.binary,
                        "disabled": service.status == "disabled"}}
