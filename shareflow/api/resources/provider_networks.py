"""``/provider-networks`` (a shareflow extension, admin only): create, list,
show, delete the flat networks tenants' share networks name through Manila's
``neutron_net_id`` (the network's id or name) and ``neutron_subnet_id`` (its
``subnet_id``). Independent of the microversion."""

from __future__ import annotations

from shareflow.api.resources.base import Resource, accepted, caller, reply, section
from shareflow.api.views import provider_networks as view
from shareflow.exceptions import InvalidInput

FIELDS = ("name", "bridge", "cidr", "gateway", "mtu", "allocation_ranges")


class ProviderNetworks(Resource):
    POLICY = {"on_get": "provider_network:index", "on_post": "provider_network:create"}

    def on_get(self, req, resp) -> None:
        reply(resp, view.list_view(self.services.provider_networks.list(caller(req)),
                                   self.view_context(req)))

    def on_post(self, req, resp) -> None:
        who = caller(req)
        _, data = section(req, "provider_network")
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise InvalidInput(f"Unknown provider network field(s): {', '.join(map(str, unknown))}; "
                               f"expected: {', '.join(FIELDS)}.")
        created = self.services.provider_networks.create(
            who, **{k: data.get(k) for k in FIELDS},
        )
        reply(resp, {"provider_network": view.detail(created, self.view_context(req))}, status=201)


class ProviderNetwork(Resource):
    POLICY = {"on_get": "provider_network:show", "on_delete": "provider_network:delete"}

    def on_get(self, req, resp, network_id: str) -> None:
        usage = self.services.provider_networks.get(caller(req), network_id)
        reply(resp, {"provider_network": view.detail(usage, self.view_context(req))})

    def on_delete(self, req, resp, network_id: str) -> None:
        self.services.provider_networks.delete(caller(req), network_id)
        accepted(resp)
