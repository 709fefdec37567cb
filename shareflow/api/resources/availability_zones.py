"""``GET /availability-zones`` from 2.7, ``GET /os-availability-zone`` from 2.0
to 2.6 (manila/api/v2/availability_zones.py): the same list under the URL of
each range; outside its range a URL is Manila's bare 404. Query parameters
are ignored, as Manila's schema allows any."""

from __future__ import annotations

from shareflow.api.resources.base import Resource, reply, require_version
from shareflow.api.views import availability_zones as view


class AvailabilityZones(Resource):
    POLICY = {"on_get": "availability_zone:index"}

    def __init__(self, config, services, *, legacy: bool):
        super().__init__(config, services)
        self._versions = ("2.0", "2.6") if legacy else ("2.7", None)

    def on_get(self, req, resp) -> None:
        require_version(req, *self._versions)
        reply(resp, view.list_view(self.services.availability_zones.list()))
