"""``/shares/{id}/export_locations[/{el_id}]`` from 2.9
(manila/api/v2/share_export_locations.py): admin-only locations are hidden
from the list for non-admins, and showing one is a 403."""

from __future__ import annotations

from shareflow.api.resources.base import Resource, caller, reply, require_version
from shareflow.api.views import export_locations as view
from shareflow.exceptions import Forbidden, NotFound


class ExportLocations(Resource):
    POLICY = {"on_get": "share_export_location:index", "on_get_item": "share_export_location:show"}

    def on_get(self, req, resp, share_id: str) -> None:
        require_version(req, "2.9")
        who = caller(req)
        locations = [el for el in self.services.shares.export_locations(who, share_id)
                     if who.is_admin or not el.is_admin_only]
        reply(resp, view.list_view(locations, self.view_context(req)))

    def on_get_item(self, req, resp, share_id: str, export_location_id: str) -> None:
        require_version(req, "2.9")
        who = caller(req)
        for el in self.services.shares.export_locations(who, share_id):
            if el.id == export_location_id:
                if el.is_admin_only and not who.is_admin:
                    raise Forbidden("admin-only export location")
                reply(resp, view.detail(el, self.view_context(req)))
                return
        raise NotFound(f"Export location '{export_location_id}' not found.")
