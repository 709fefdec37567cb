"""``/types/{id}/extra_specs[/{key}]`` (manila/api/v2/share_types_extra_specs.py).

Reads are for everyone who can see the type; writes are admin-only, checked
before the body. Deleting a required spec is a 403, as is deleting
``snapshot_support`` before 2.24 (when it was still required).
"""

from __future__ import annotations

from shareflow.api.resources.base import Resource, accepted, body, caller, reply, section, version
from shareflow.api.resources.share_types import require_admin
from shareflow.domain import validation
from shareflow.exceptions import Forbidden, InvalidInput, NotFound


class ExtraSpecs(Resource):
    def on_get(self, req, resp, type_id: str) -> None:
        specs = self.services.share_types.extra_specs(caller(req), type_id)
        reply(resp, {"extra_specs": specs})

    def on_post(self, req, resp, type_id: str) -> None:
        who = caller(req)
        require_admin(who, "share_types_extra_spec:create")
        _, specs = section(req, "extra_specs")
        self.services.share_types.set_extra_specs(who, type_id, specs)
        # Manila echoes what was set, not the type's whole set of specs.
        reply(resp, {"extra_specs": validation.extra_specs(specs)})

    def on_get_item(self, req, resp, type_id: str, key: str) -> None:
        specs = self.services.share_types.extra_specs(caller(req), type_id)
        if key not in specs:
            raise NotFound(f"Share type extra spec {key} could not be found.")
        reply(resp, {key: specs[key]})

    def on_put_item(self, req, resp, type_id: str, key: str) -> None:
        who = caller(req)
        require_admin(who, "share_types_extra_spec:update")
        data = body(req)
        if not data:
            raise InvalidInput("Request body empty")
        if not isinstance(data, dict) or key not in data:
            raise InvalidInput("Request body and URI mismatch")
        if len(data) > 1:
            raise InvalidInput("Request body contains too many items")
        self.services.share_types.set_extra_specs(who, type_id, data)
        reply(resp, validation.extra_specs(data))

    def on_delete_item(self, req, resp, type_id: str, key: str) -> None:
        who = caller(req)
        require_admin(who, "share_types_extra_spec:delete")
        if key == "snapshot_support" and version(req).before("2.24"):
            raise Forbidden("snapshot_support before 2.24", user_message=f"Extra spec '{key}' can't be deleted.")
        self.services.share_types.unset_extra_spec(who, type_id, key)
        accepted(resp)
