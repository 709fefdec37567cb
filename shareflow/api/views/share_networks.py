"""Share networks and their subnets as manila/api/views/share_networks.py and
share_network_subnets.py build them, per microversion.

A subnet's ``neutron_net_id`` and ``neutron_subnet_id`` are shown as the
client gave them (Manila accepts any; for rows older than migration 0011, the
provider network's id and subnet id); its other network fields come from the
provider network they name, if any (null otherwise): ``network_type`` is
always ``flat`` with no ``segmentation_id``, ``ip_version`` 4. ``network_type`` and ``segmentation_id`` are shown to admins
only (Manila's ``show_network_details`` policy redacts them to null for
others).

* up to 2.50: the default subnet's fields flattened into the share network;
  ``gateway`` from 2.18, ``mtu`` from 2.20, ``nova_net_id`` (null) up to 2.25;
* from 2.51: ``share_network_subnets`` instead of the flattened fields;
* from 2.63: ``status`` (always ``active``) and ``security_service_update_support``
  (false: share servers here cannot use security services, so they never change
  under a share network's share servers).
"""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.db.networks import neutron_ids
from shareflow.db.models import ShareNetwork, ShareNetworkSubnet

SENSITIVE_FIELDS = ("network_type", "segmentation_id")
NETWORK_FIELDS = ("neutron_net_id", "neutron_subnet_id", "network_type", "segmentation_id", "cidr",
                  "ip_version", "gateway", "mtu")
STATUS_ACTIVE = "active"


def network_fields(subnet: ShareNetworkSubnet | None, ctx: ViewContext) -> dict:
    """The Neutron-shaped fields of a subnet (all null when it names no network)."""
    net = subnet.provider_network if subnet is not None else None
    net_id, subnet_id = neutron_ids(subnet)
    if net is None:
        fields = {**dict.fromkeys(NETWORK_FIELDS), "neutron_net_id": net_id, "neutron_subnet_id": subnet_id}
    else:
        fields = {
            "neutron_net_id": net_id,
            "neutron_subnet_id": subnet_id,
            "network_type": "flat",
            "segmentation_id": None,
            "cidr": net.cidr,
            "ip_version": 4,
            "gateway": net.gateway,
            "mtu": net.mtu,
        }
    if not ctx.is_admin:
        for key in SENSITIVE_FIELDS:
            fields[key] = None
    return fields


def _default_subnet(sn: ShareNetwork) -> ShareNetworkSubnet | None:
    """Manila flattens only the subnet that serves all zones (``is_default``)."""
    for sub in sn.subnets:
        if sub.availability_zone is None:
            return sub
    return None


def subnet_in_network(sub: ShareNetworkSubnet, ctx: ViewContext) -> dict:
    fields = network_fields(sub, ctx)
    return {
        "id": sub.id,
        "availability_zone": sub.availability_zone,
        "created_at": timestamp(sub.created_at),
        "updated_at": timestamp(sub.updated_at),
        "segmentation_id": fields["segmentation_id"],
        "neutron_net_id": fields["neutron_net_id"],
        "neutron_subnet_id": fields["neutron_subnet_id"],
        "ip_version": fields["ip_version"],
        "cidr": fields["cidr"],
        "network_type": fields["network_type"],
        "mtu": fields["mtu"],
        "gateway": fields["gateway"],
    }


def subnet(sub: ShareNetworkSubnet, share_network_name: str | None, ctx: ViewContext) -> dict:
    """``/share-networks/{id}/subnets`` items (manila/api/views/share_network_subnets.py)."""
    fields = network_fields(sub, ctx)
    return {
        "id": sub.id,
        "availability_zone": sub.availability_zone,
        "share_network_id": sub.share_network_id,
        "share_network_name": share_network_name,
        "created_at": timestamp(sub.created_at),
        "segmentation_id": fields["segmentation_id"],
        "neutron_subnet_id": fields["neutron_subnet_id"],
        "updated_at": timestamp(sub.updated_at),
        "neutron_net_id": fields["neutron_net_id"],
        "ip_version": fields["ip_version"],
        "cidr": fields["cidr"],
        "network_type": fields["network_type"],
        "mtu": fields["mtu"],
        "gateway": fields["gateway"],
    }


def summary(sn: ShareNetwork, ctx: ViewContext) -> dict:
    return {"id": sn.id, "name": sn.name}


def detail(sn: ShareNetwork, ctx: ViewContext) -> dict:
    flat = network_fields(_default_subnet(sn), ctx)
    view = {
        "id": sn.id,
        "name": sn.name,
        "project_id": sn.project_id,
        "created_at": timestamp(sn.created_at),
        "updated_at": timestamp(sn.updated_at),
        "neutron_net_id": flat["neutron_net_id"],
        "neutron_subnet_id": flat["neutron_subnet_id"],
        "network_type": flat["network_type"],
        "segmentation_id": flat["segmentation_id"],
        "cidr": flat["cidr"],
        "ip_version": flat["ip_version"],
        "description": sn.description,
    }
    if ctx.at_least("2.18"):
        view["gateway"] = flat["gateway"]
    if ctx.at_least("2.20"):
        view["mtu"] = flat["mtu"]
    if ctx.within("2.0", "2.25"):
        view["nova_net_id"] = None
    if ctx.at_least("2.51"):
        view["share_network_subnets"] = [subnet_in_network(sub, ctx) for sub in sn.subnets]
        for key in NETWORK_FIELDS:
            view.pop(key, None)
    if ctx.at_least("2.63"):
        view["status"] = STATUS_ACTIVE
        view["security_service_update_support"] = False
    return view


def list_view(networks: list[ShareNetwork], ctx: ViewContext, *, detailed: bool) -> dict:
    build = detail if detailed else summary
    return {"share_networks": [build(sn, ctx) for sn in networks]}


def filter_values(sn: ShareNetwork, ctx: ViewContext) -> tuple[dict, list[dict]]:
    """What Manila's list filters compare against: the share network's own
    fields (with the default subnet's flattened in) and each subnet's."""
    own = {
        "id": sn.id, "name": sn.name, "description": sn.description, "project_id": sn.project_id,
        "user_id": sn.user_id, "status": STATUS_ACTIVE,
        **network_fields(_default_subnet(sn), ctx),
    }
    subs = [{**network_fields(sub, ctx), "id": sub.id, "availability_zone": sub.availability_zone}
            for sub in sn.subnets]
    return own, subs
