"""Provider networks (admin-managed) and share networks (tenants').

Provider networks are what an operator offers: a Linux bridge on the storage
hosts, one IPv4 subnet (its CIDR, gateway and MTU) and the ranges share
servers get addresses from. A tenant's share network names one through
Manila's ``neutron_net_id`` (the provider network's id, or its name) and
``neutron_subnet_id`` (its ``subnet_id``), so unmodified Manila clients work.
As Manila, any other pair of ids is accepted too, stored and shown as given:
only a share that needs a share server there fails (its network allocation
names the network this deployment does not know).

Everything a request carries is validated before any state changes. Manila's
behaviours kept (manila/api/v2/share_networks.py, api/common.py):

* both ``neutron_net_id`` and ``neutron_subnet_id``, or neither (400);
* ``nova_net_id`` is refused (400, "nova networking is not supported ...");
* an update of anything but name and description is refused with 403 while
  share servers (here: or shares) use the share network;
* a share network with shares cannot be deleted (409, "Can not delete share
  network ..., it has N share(s).").
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shareflow import policy
from shareflow.config import Config
from shareflow.db import networks as networks_db
from shareflow.db.engine import Database
from shareflow.db.models import ProviderNetwork, ShareNetwork, ShareNetworkSubnet
from shareflow.domain import ipam, validation
from shareflow.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from shareflow.services import availability_zones
from shareflow.services.context import Caller

NOVA_NET = "nova networking is not supported starting in Ocata."
BOTH_IDS = ("When creating a new share network subnet you need to specify both neutron_net_id "
            "and neutron_subnet_id or none of them.")
NEUTRON_KEYS = ("neutron_net_id", "neutron_subnet_id")


@dataclass(frozen=True)
class ProviderNetworkUsage:
    network: ProviderNetwork
    allocated: int
    capacity: int
    share_network_subnets: int


class ProviderNetworkService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())):
        self._db = db
        self._clock = clock
        self._new_id = new_id

    def create(self, caller: Caller, *, name: Any, bridge: Any, cidr: Any, gateway: Any = None,
               mtu: Any = None, allocation_ranges: Any = None) -> ProviderNetworkUsage:
        policy.enforce(caller, "provider_network:create")
        name = validation.network_name(name)
        bridge = validation.bridge_name(bridge)
        cidr = validation.ipv4_cidr(cidr)
        gateway = validation.gateway(cidr, gateway)
        ranges = validation.allocation_ranges(cidr, allocation_ranges, gateway)
        mtu = validation.mtu(mtu)
        if ipam.capacity(cidr, ranges, gateway) == 0:
            raise InvalidInput(f"The allocation ranges of {cidr} leave no address to hand out.")
        with self._db.write() as s:
            networks_db.lock_registry(s)
            for other in networks_db.list_providers(s):
                if other.bridge == bridge and ipam.network(other.cidr).overlaps(ipam.network(cidr)):
                    raise Conflict(
                        f"CIDR {cidr} overlaps {other.cidr} of provider network {other.name} "
                        f"on bridge {bridge}."
                    )
            net = networks_db.create_provider(
                s, now=self._clock(), network_id=self._new_id(), subnet_id=self._new_id(), name=name,
                bridge=bridge, cidr=cidr, gateway=gateway, mtu=mtu, ranges=ranges,
            )
            return self._usage(s, net)

    def list(self, caller: Caller) -> list[ProviderNetworkUsage]:
        policy.enforce(caller, "provider_network:index")
        with self._db.read() as s:
            return [self._usage(s, net) for net in networks_db.list_providers(s)]

    def get(self, caller: Caller, ref: Any) -> ProviderNetworkUsage:
        policy.enforce(caller, "provider_network:show")
        with self._db.read() as s:
            return self._usage(s, networks_db.get_provider_by_ref(s, ref))

    def delete(self, caller: Caller, ref: Any) -> None:
        """Refused (409) while addresses are allocated on it or live share
        networks name it."""
        policy.enforce(caller, "provider_network:delete")
        with self._db.write() as s:
            net = networks_db.get_provider_by_ref(s, ref)
            if not networks_db.lock_provider(s, net.id):
                raise networks_db.provider_not_found(ref)
            allocations, subnets = networks_db.provider_usage(s, net.id)
            if allocations or subnets:
                raise Conflict(
                    f"Provider network {net.name} is in use ({allocations} address allocation(s), "
                    f"{subnets} share network subnet(s)) and cannot be deleted."
                )
            networks_db.delete_provider(s, net.id, now=self._clock())

    @staticmethod
    def _usage(session, net: ProviderNetwork) -> ProviderNetworkUsage:
        allocations, subnets = networks_db.provider_usage(session, net.id)
        ranges = [(r.first, r.last) for r in net.ranges]
        return ProviderNetworkUsage(network=net, allocated=allocations,
                                    capacity=ipam.capacity(net.cidr, ranges, net.gateway),
                                    share_network_subnets=subnets)


class ShareNetworkService:
    def __init__(self, config: Config, db: Database, *, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())):
        self._config = config
        self._db = db
        self._clock = clock
        self._new_id = new_id

    # --- reading ---------------------------------------------------------------

    def get(self, caller: Caller, share_network_id: Any) -> ShareNetwork:
        with self._db.read() as s:
            return networks_db.get_share_network(s, share_network_id, caller.scope)

    def list(self, caller: Caller, *, project_id: str | None = None,
             all_projects: bool = False, limit: int | None = None, offset: int = 0) -> list[ShareNetwork]:
        """The caller's own project's share networks; an admin may ask for
        another project's, or all projects' (Manila's ``all_tenants``);
        oldest first, ``limit``/``offset`` applied in SQL."""
        if not policy.authorize(caller, "share_network:get_all_share_networks"):
            scope = caller.project_id
        elif project_id is not None:
            scope = project_id
        elif all_projects:
            scope = None
        else:
            scope = caller.project_id
        with self._db.read() as s:
            return networks_db.list_share_networks(s, scope, sort_key="created_at", sort_dir="asc",
                                                   limit=limit, offset=offset)

    def subnets(self, caller: Caller, share_network_id: Any) -> list[ShareNetworkSubnet]:
        return list(self.get(caller, share_network_id).subnets)

    def subnet(self, caller: Caller, share_network_id: Any, subnet_id: Any) -> ShareNetworkSubnet:
        with self._db.read() as s:
            sn = networks_db.get_share_network(s, share_network_id, caller.scope)
            return networks_db.get_subnet(s, sn.id, subnet_id)

    # --- changing --------------------------------------------------------------

    def create(self, caller: Caller, values: Any, *, with_availability_zone: bool = True) -> ShareNetwork:
        if not isinstance(values, dict):
            raise InvalidInput("Malformed request body: expected a 'share_network' object.")
        if "nova_net_id" in values:
            raise InvalidInput(NOVA_NET)
        name = validation.optional_text(values.get("name"), "Share network name", validation.NAME_MAX)
        description = validation.optional_text(values.get("description"), "Share network description",
                                               validation.DESCRIPTION_MAX)
        zone = None
        if with_availability_zone and values.get("availability_zone") is not None:
            zone = self._zone(values["availability_zone"])
        if ("neutron_net_id" in values) != ("neutron_subnet_id" in values):
            raise InvalidInput(BOTH_IDS)
        net_ref, subnet_ref = self._neutron_ids(values.get("neutron_net_id"),
                                                values.get("neutron_subnet_id"))
        now = self._clock()
        with self._db.write() as s:
            provider_id = self._resolve(s, net_ref, subnet_ref)
            sn = networks_db.create_share_network(
                s, now=now, share_network_id=self._new_id(), subnet_id=self._new_id(),
                project_id=caller.project_id, user_id=caller.user_id, name=name,
                description=description, provider_network_id=provider_id, availability_zone=zone,
                neutron_net_id=net_ref, neutron_subnet_id=subnet_ref,
            )
            return sn

    def update(self, caller: Caller, share_network_id: Any, values: Any) -> ShareNetwork:
        if not isinstance(values, dict):
            raise InvalidInput("Malformed request body: expected a 'share_network' object.")
        if "nova_net_id" in values:
            raise InvalidInput(NOVA_NET)
        fields = {}
        if "name" in values:
            fields["name"] = validation.optional_text(values["name"], "Share network name",
                                                      validation.NAME_MAX)
        if "description" in values:
            fields["description"] = validation.optional_text(
                values["description"], "Share network description", validation.DESCRIPTION_MAX)
        neutron = {k: values[k] for k in NEUTRON_KEYS if k in values}
        for key, value in neutron.items():
            if value is not None and (not isinstance(value, str) or len(value) > 255):
                raise InvalidInput(f"{key} must be a string of at most 255 characters.")
        now = self._clock()
        with self._db.write() as s:
            sn = networks_db.get_share_network(s, share_network_id, caller.scope)
            if not networks_db.lock_share_network(s, sn.id):
                raise networks_db.share_network_not_found(share_network_id)
            if any(k not in ("name", "description") for k in values) and \
                    networks_db.share_network_in_use(s, sn.id):
                raise Forbidden(
                    f"Cannot update share network {sn.id}. It is used by share servers. Only "
                    "'name' and 'description' fields are available for update"
                )
            if neutron:
                self._update_neutron_ids(s, sn, neutron, now=now)
            return networks_db.update_share_network(s, sn, now=now, **fields)

    def delete(self, caller: Caller, share_network_id: Any) -> None:
        with self._db.write() as s:
            sn = networks_db.get_share_network(s, share_network_id, caller.scope)
            if not networks_db.lock_share_network(s, sn.id):
                raise networks_db.share_network_not_found(share_network_id)
            shares, servers = networks_db.share_network_usage(s, sn.id)
            if shares:
                raise Conflict(f"Can not delete share network {sn.id}, it has {shares} share(s).")
            if servers:
                raise Conflict(
                    f"Can not delete share network {sn.id}, it has {servers} share server(s); "
                    "delete them first."
                )
            if len(sn.subnets) > 1:
                raise Conflict(
                    f"The share network {sn.id} has more than one subnet attached. Please remove "
                    "the subnets untill you have one or no subnets remaining."
                )
            networks_db.delete_share_network(s, sn.id, now=self._clock())

    def create_subnet(self, caller: Caller, share_network_id: Any, values: Any) -> ShareNetworkSubnet:
        """manila/api/v2/share_network_subnets.py ``create`` (before 2.70: one
        subnet per availability zone, the default one being the zone-less)."""
        if not isinstance(values, dict):
            raise InvalidInput("Share Network Subnet is missing from the request body.")
        if ("neutron_net_id" in values) != ("neutron_subnet_id" in values):
            raise InvalidInput(BOTH_IDS)
        net_ref, subnet_ref = self._neutron_ids(values.get("neutron_net_id"),
                                                values.get("neutron_subnet_id"))
        zone_ref = validation.optional_ref(values.get("availability_zone"), "availability_zone")
        now = self._clock()
        with self._db.write() as s:
            sn = networks_db.get_share_network(s, share_network_id, caller.scope)
            zone = self._zone(zone_ref) if zone_ref else None
            if not networks_db.lock_share_network(s, sn.id):
                raise networks_db.share_network_not_found(share_network_id)
            s.refresh(sn)
            if networks_db.subnet_in_zone(sn, zone) is not None:
                raise Conflict(
                    "Another share network subnet was found in the specified availability zone. "
                    "Only one share network subnet is allowed per availability zone for share "
                    f"network {sn.id}."
                )
            provider_id = self._resolve(s, net_ref, subnet_ref)
            return networks_db.create_subnet(
                s, now=now, subnet_id=self._new_id(), share_network_id=sn.id,
                provider_network_id=provider_id, availability_zone=zone,
                neutron_net_id=net_ref, neutron_subnet_id=subnet_ref,
            )

    def delete_subnet(self, caller: Caller, share_network_id: Any, subnet_id: Any) -> None:
        """Refused (409) while shares are on its share servers, as Manila; and
        while it has share servers at all (Manila deletes them with it; here
        they are deleted first, through /share-servers)."""
        with self._db.write() as s:
            sn = networks_db.get_share_network(s, share_network_id, caller.scope)
            if not networks_db.lock_share_network(s, sn.id):
                raise networks_db.share_network_not_found(share_network_id)
            sub = networks_db.get_subnet(s, sn.id, subnet_id)
            shares, servers = networks_db.subnet_usage(s, sub.id)
            if shares:
                raise Conflict(
                    f"Cannot delete share network subnet {sub.id} of share network {sn.id}, it "
                    "has one or more shares."
                )
            if servers:
                raise Conflict(
                    f"Cannot delete share network subnet {sub.id} of share network {sn.id}, it "
                    f"has {servers} share server(s); delete them first."
                )
            if networks_db.share_network_usage(s, sn.id)[0] and len(sn.subnets) == 1:
                raise Conflict(
                    f"Cannot delete share network subnet {sub.id} of share network {sn.id}, it "
                    "has one or more shares."
                )
            networks_db.delete_subnet(s, sub.id, now=self._clock())

    # --- helpers ---------------------------------------------------------------

    def _zone(self, ref: Any) -> str:
        if not isinstance(ref, str):
            raise InvalidInput(f"The provided availability zone {ref} does not exist.")
        try:
            return availability_zones.resolve(self._config, ref)
        except NotFound:
            raise InvalidInput(f"The provided availability zone {ref} does not exist.") from None

    @staticmethod
    def _neutron_ids(net_ref: Any, subnet_ref: Any) -> tuple[str | None, str | None]:
        for key, value in (("neutron_net_id", net_ref), ("neutron_subnet_id", subnet_ref)):
            if value is not None and (not isinstance(value, str) or len(value) > 255):
                raise InvalidInput(f"{key} must be a string of at most 255 characters.")
        net_ref, subnet_ref = net_ref or None, subnet_ref or None
        if (net_ref is None) != (subnet_ref is None):
            raise InvalidInput(BOTH_IDS)
        return net_ref, subnet_ref

    @staticmethod
    def _resolve(session, net_ref: str | None, subnet_ref: str | None) -> str | None:
        """The live provider network both ids name, its row locked against a
        delete until the transaction ends; None when neither is given or they
        name nothing this deployment has (stored as given all the same)."""
        if net_ref is None:
            return None
        try:
            net = networks_db.get_provider_by_ref(session, net_ref)
        except NotFound:
            return None
        if net.subnet_id != subnet_ref or not networks_db.lock_provider(session, net.id):
            return None
        return net.id

    def _update_neutron_ids(self, session, sn: ShareNetwork, neutron: dict, *, now: datetime) -> None:
        defaults = [sub for sub in sn.subnets if sub.availability_zone is None]
        if not defaults:
            raise InvalidInput(
                f"The share network {sn.id} does not have a 'default' subnet that serves all "
                "availability zones, so subnet details ('neutron_net_id', 'neutron_subnet_id') "
                "cannot be updated."
            )
        if len(defaults) > 1:
            raise InvalidInput(
                f"The share network {sn.id} does not have an unique 'default' subnet that serves "
                "all availability zones, so subnet details ('neutron_net_id', 'neutron_subnet_id') "
                "cannot be updated."
            )
        subnet = defaults[0]
        if networks_db.neutron_ids(subnet)[0] is None and (
            neutron.get("neutron_net_id") is None or neutron.get("neutron_subnet_id") is None
        ):
            raise InvalidInput(
                f"To update the share network {sn.id} you need to specify both 'neutron_net_id' "
                "and 'neutron_subnet_id'."
            )
        given_net, given_subnet = networks_db.neutron_ids(subnet)
        net_ref = neutron["neutron_net_id"] if "neutron_net_id" in neutron else given_net
        subnet_ref = neutron["neutron_subnet_id"] if "neutron_subnet_id" in neutron else given_subnet
        net_ref, subnet_ref = self._neutron_ids(net_ref, subnet_ref)
        provider_id = self._resolve(session, net_ref, subnet_ref)
        networks_db.set_subnet_provider(session, subnet, provider_id, now=now,
                                        neutron_net_id=net_ref, neutron_subnet_id=subnet_ref)
