"""Provider networks (a shareflow extension, admin only): what an operator
offers tenants, and how much of it is used."""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.services.networks import ProviderNetworkUsage


def detail(usage: ProviderNetworkUsage, ctx: ViewContext) -> dict:
    net = usage.network
    return {
        "id": net.id,
        "name": net.name,
        "subnet_id": net.subnet_id,
        "bridge": net.bridge,
        "network_type": "flat",
        "ip_version": 4,
        "cidr": net.cidr,
        "gateway": net.gateway,
        "mtu": net.mtu,
        "allocation_ranges": [{"start": r.first, "end": r.last} for r in net.ranges],
        "capacity": usage.capacity,
        "allocated": usage.allocated,
        "share_network_subnets": usage.share_network_subnets,
        "created_at": timestamp(net.created_at),
        "updated_at": timestamp(net.updated_at),
    }


def list_view(usages: list[ProviderNetworkUsage], ctx: ViewContext) -> dict:
    return {"provider_networks": [detail(u, ctx) for u in usages]}
