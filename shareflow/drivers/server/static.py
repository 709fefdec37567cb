"""Server helper for backends that do not handle share servers (DHSS=false):
every share is exported from the backend's one pre-existing Ganesha server,
which this helper never creates nor tears down."""

from __future__ import annotations

from shareflow.drivers.base import ServerHelper


def static_server_id(backend_name: str) -> str:
    return f"{backend_name}-static"


class StaticServerHelper(ServerHelper):
    def __init__(self, backend_name: str, address: str):
        self.backend_name = backend_name
        self.address = address

    def provide(self, share_id: str, allocation: dict) -> dict:
        return {"id": static_server_id(self.backend_name), "address": self.address, "created": False}

    def server_for(self, share_id: str) -> dict:
        """The server a share is exported from (the one static server)."""
        return self.provide(share_id, {})

    def release(self, server: dict) -> None:
        return None  # provide() never creates anything
