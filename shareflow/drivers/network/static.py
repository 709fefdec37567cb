"""Network helper for backends that do not handle share servers (DHSS=false).

The backend's one export server already sits on the network clients use
(flat / direct IP access), so a share needs no addresses of its own.
"""

from __future__ import annotations

from shareflow.drivers.base import NetworkHelper


class StaticNetworkHelper(NetworkHelper):
    def __init__(self, backend_name: str):
        self.backend_name = backend_name

    def allocate(self, share_id: str, allocation: dict) -> dict:
        return {}

    def release(self, allocation: dict) -> None:
        return None
