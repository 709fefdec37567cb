"""Network allocations of share servers (DHSS=true) on flat provider
networks: hands out and takes back addresses from a provider network's
allocation ranges, with a real allocation table. The tasks own these records
and hand the chosen address to the backend's network helper (which knows
nothing of the tables).

No address is ever handed out twice, even to creates running at the same
time in different processes: each allocation is a row of
``network_allocations``, unique per (network, address). ``allocate`` picks the
lowest free address and inserts its row in a transaction of its own; when a
concurrent create inserted the same address first (the unique constraint
answers Conflict), it tries again with the next free address, a bounded
number of times.

Idempotent as tasks need it: a share has at most one allocation at a time, and
its id is derived from the share's id, so ``allocate`` called again for the
same share (a conductor re-running the task) returns the allocation it made
the first time instead of taking a second address; ``release`` of an
allocation that is gone does nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from shareflow.db import networks as networks_db
from shareflow.db.engine import Database
from shareflow.db.models import NetworkAllocation, ProviderNetwork
from shareflow.domain import ipam
from shareflow.exceptions import Conflict, NetworkError

log = logging.getLogger(__name__)

#: Namespace of allocation ids derived from share ids.
ALLOCATION_NAMESPACE = uuid.UUID("6f1f2a4e-3c1b-4d53-9a53-0d7f4e1c2b10")
#: How many times an address lost to a concurrent create is retried with the
#: next free one. Each lost attempt means another create got an address, so
#: this bounds how many creates may race for one network at once.
MAX_ATTEMPTS = 64


def allocation_id_for(share_id: str) -> str:
    return str(uuid.uuid5(ALLOCATION_NAMESPACE, str(share_id)))


def describe(net: ProviderNetwork, row: NetworkAllocation) -> dict:
    """The JSON dict ``allocate`` returns for an allocation."""
    return {
        "allocation_id": row.id,
        "network_id": net.id,
        "address": row.address,
        "prefixlen": ipaddress.IPv4Network(net.cidr).prefixlen,
        "gateway": net.gateway,
        "bridge": net.bridge,
        "mtu": int(net.mtu),
    }


class NetworkAllocations:
    def __init__(self, db: Database, *, clock: Callable[[], datetime]):
        self._db = db
        self._clock = clock

    def allocate(self, share_id: str, share_network_id: str | None) -> dict:
        if not share_network_id:
            raise NetworkError(
                f"share {share_id}: no share network to allocate an address on",
                user_message="A share network is required to allocate a network address.",
            )
        allocation_id = allocation_id_for(share_id)
        lost: set[str] = set()
        for _attempt in range(MAX_ATTEMPTS):
            address = None
            try:
                with self._db.write() as s:
                    net = self._provider_network(s, share_network_id)
                    existing = networks_db.get_allocation(s, allocation_id)
                    if existing is not None:
                        if existing.network_id == net.id:
                            return describe(net, existing)
                        raise NetworkError(
                            f"share {share_id} already holds allocation {allocation_id} "
                            f"on network {existing.network_id}",
                            user_message="The share already holds an address on another network.",
                        )
                    ranges = [(r.first, r.last) for r in net.ranges]
                    address = ipam.lowest_free(net.cidr, ranges, net.gateway,
                                               networks_db.used_addresses(s, net.id), skip=lost)
                    if address is None:
                        raise NetworkError(
                            f"provider network {net.name} ({net.id}) has no free IP address "
                            f"for share {share_id}",
                            user_message=f"Provider network {net.name} has no free IP address.",
                        )
                    row = networks_db.insert_allocation(
                        s, now=self._clock(), allocation_id=allocation_id, network_id=net.id,
                        address=address,
                    )
                    result = describe(net, row)
            except Conflict:
                # Someone else inserted this address (or this allocation) first.
                log.debug("allocation of %s for share %s lost a race; retrying", address, share_id)
                if address is not None:
                    lost.add(address)
                continue
            log.info("allocated %s on %s to share %s (%s)", result["address"], result["network_id"],
                     share_id, allocation_id)
            return result
        raise NetworkError(
            f"share {share_id}: gave up allocating an address on share network "
            f"{share_network_id} after {MAX_ATTEMPTS} lost races",
            user_message="Too many concurrent network allocations; try again.",
        )

    def release(self, allocation: dict) -> None:
        allocation_id = (allocation or {}).get("allocation_id")
        if not allocation_id:
            return
        with self._db.write() as s:
            if networks_db.delete_allocation(s, allocation_id):
                log.info("released allocation %s (%s)", allocation_id, allocation.get("address"))

    def get(self, allocation_id: str) -> dict | None:
        """The allocation as ``allocate`` described it; None when it is gone."""
        with self._db.read() as s:
            row = networks_db.get_allocation(s, allocation_id)
            if row is None:
                return None
            net = networks_db.get_provider_any(s, row.network_id)
            return describe(net, row)

    @staticmethod
    def _provider_network(session, share_network_id: str) -> ProviderNetwork:
        sn = networks_db.get_share_network_any(session, share_network_id)
        if sn is None or sn.deleted_at is not None:
            raise NetworkError(
                f"share network {share_network_id} does not exist",
                user_message=f"Share network {share_network_id} could not be found.",
            )
        subnet = networks_db.default_subnet(sn)
        if subnet is None:
            raise NetworkError(
                f"share network {share_network_id} has no subnet",
                user_message=f"Share network {share_network_id} has no subnet to allocate an address on.",
            )
        if subnet.provider_network_id is None and subnet.neutron_net_id is not None:
            # Accepted as Manila accepts any ids; only now does it matter that nothing is there.
            raise NetworkError(
                f"share network {share_network_id} names network {subnet.neutron_net_id} (subnet "
                f"{subnet.neutron_subnet_id}), which is not a provider network of this deployment",
                user_message=(f"Network {subnet.neutron_net_id} (subnet {subnet.neutron_subnet_id}) of share "
                              f"network {share_network_id} is not known to this deployment: no share server "
                              "can be created on it."),
            )
        if subnet.provider_network_id is None:
            raise NetworkError(
                f"subnet {subnet.id} of share network {share_network_id} names no provider network",
                user_message=(f"Share network {share_network_id} names no provider network "
                              "(neutron_net_id and neutron_subnet_id)."),
            )
        net = networks_db.get_provider_any(session, subnet.provider_network_id)
        if net is None or net.deleted_at is not None:
            raise NetworkError(
                f"provider network {subnet.provider_network_id} of share network "
                f"{share_network_id} does not exist",
                user_message=(f"The provider network {subnet.provider_network_id} of share network "
                              f"{share_network_id} does not exist."),
            )
        return net
