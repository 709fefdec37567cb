"""Network helper for backends that handle share servers (DHSS=true) on flat
provider networks.

The address a share server gets is chosen and recorded by the caller, from
the provider network's allocation ranges (``network_allocations``, see
``shareflow.services.network_allocations``); this helper gets it as a plain
value. On a flat network there is nothing to make on the host for an address
before its server holds it (the server helper puts it on the server's end of
a veth pair on the provider network's bridge, and takes it away with the
server), so ``allocate`` only checks the values and hands them on, and
``release`` has nothing to undo.
"""

from __future__ import annotations

import ipaddress

from shareflow.drivers.base import NetworkHelper
from shareflow.exceptions import NetworkError

#: What an allocation handed to :meth:`FlatNetworkHelper.allocate` carries.
FIELDS = ("allocation_id", "network_id", "address", "prefixlen", "gateway", "bridge", "mtu")


class FlatNetworkHelper(NetworkHelper):
    needs_address = True

    def allocate(self, share_id: str, allocation: dict) -> dict:
        if not allocation:
            return {}
        missing = [k for k in FIELDS if k not in allocation]
        if missing:
            raise NetworkError(f"share {share_id}: allocation {allocation!r} lacks {', '.join(missing)}")
        try:
            ipaddress.IPv4Address(allocation["address"])
        except ValueError:
            raise NetworkError(f"share {share_id}: {allocation['address']!r} is not an IPv4 address") from None
        return {k: allocation[k] for k in FIELDS}

    def release(self, allocation: dict) -> None:
        return None
