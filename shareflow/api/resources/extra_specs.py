"""``/types/{id}/extra_specs[/{key}]`` (manila/api/v2/share_types_extra_specs.py).

All of it is admin-only (manila/policies/share_types_extra_spec.py: reads
too), checked before the body: a member reads the specs it may see (Manila's
tenant-visible ones) in the type itself. Deleting a required spec is a 403,
as is deleting ``snapshot_support`` before 2.24 (when it was still
required). Values are strings or JSON booleans (stored as ``True``/``False``);
numbers are refused here, as Manila's controller refuses them.
"""

from __future__ import annotations

import falcon

from shareflow.api.resources.base import Resource, accepted, body, caller, reply, section, version
from shareflow.api.resources.share_types import manila_path
from shareflow.domain import validation
from shareflow.exceptions import Forbidden, InvalidInput, NotFound


def _echo(given: dict, stored: dict) -> dict:
    """What Manila answers a write with: the body as given (a JSON boolean
    stays one), with the values this service normalised."""
    return {k: v if isinstance(v, bool) else stored[k] for k, v in given.items()}


@falcon.before(manila_path)
class ExtraSpecs(Resource):
    POLICY = {
        "on_get": "share_types_extra_spec:index",
        "on_post": "share_types_extra_spec:create",
        "on_put": "share_types_extra_spec:update",
        "on_delete": "share_types_extra_spec:delete",
        "on_get_item": "share_types_extra_spec:show",
        "on_put_item": "share_types_extra_spec:update",
        "on_delete_item": "share_types_extra_spec:delete",
    }

    def on_get(self, req, resp, type_id: str) -> None:
        who = caller(req)
        specs = self.services.share_types.extra_specs(who, type_id)
        reply(resp, {"extra_specs": specs})

    def on_post(self, req, resp, type_id: str) -> None:
        who = caller(req)
        _, specs = section(req, "extra_specs")
        self.services.share_types.set_extra_specs(who, type_id, specs)
        # Manila echoes what was set, not the type's whole set of specs.
        reply(resp, {"extra_specs": _echo(specs, validation.extra_specs(specs))})

    def _no_such_method(self, req, resp, type_id: str) -> None:
        """Reached only without a trailing slash (the hook answers those
        404): the collection has no PUT or DELETE."""
        raise falcon.HTTPMethodNotAllowed(["GET", "POST"])

    on_put = on_delete = _no_such_method

    def on_get_item(self, req, resp, type_id: str, key: str) -> None:
        who = caller(req)
        specs = self.services.share_types.extra_specs(who, type_id)
        if key not in specs:
            raise NotFound(f"Share type extra spec {key} could not be found.")
        reply(resp, {key: specs[key]})

    def on_put_item(self, req, resp, type_id: str, key: str) -> None:
        who = caller(req)
        data = body(req)
        if not data:
            raise InvalidInput("Request body empty")
        if not isinstance(data, dict) or key not in data:
            raise InvalidInput("Request body and URI mismatch")
        if len(data) > 1:
            raise InvalidInput("Request body contains too many items")
        self.services.share_types.set_extra_specs(who, type_id, data)
        reply(resp, _echo(data, validation.extra_specs(data)))

    def on_delete_item(self, req, resp, type_id: str, key: str) -> None:
        who = caller(req)
        if key == "snapshot_support" and version(req).before("2.24"):
            raise Forbidden("snapshot_support before 2.24", user_message=f"Extra spec '{key}' can't be deleted.")
        self.services.share_types.unset_extra_spec(who, type_id, key)
        accepted(resp)
