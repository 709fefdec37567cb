"""``GET /services`` and ``PUT /services/enable|disable`` from 2.7, the same
under ``/os-services`` from 2.0 to 2.6 (manila/api/v2/services.py; admins):
shareflow's processes under Manila's binary names (see
:mod:`shareflow.services.service_list`). Outside its range a URL is
Manila's bare 404. ``openstack share service list | set``.

2.83's ``disabled_reason`` is beyond this service's microversions: a
disable that gives one is Manila's 400 for a version below it.
"""

from __future__ import annotations

from shareflow.api import params as qp
from shareflow.api.errors import DEFAULT_MESSAGES
from shareflow.api.resources.base import Resource, body, caller, reply, require_version
from shareflow.api.views import services as view
from shareflow.exceptions import InvalidInput, NotFound

DISABLED_REASON_VERSION = "2.83"
REASON_NOT_SUPPORTED = ("'disabled_reason' option is not supported by this microversion. Use 2.83 or "
                        "greater microversion to be able to set 'disabled_reason'.")
ACTIONS = {"enable": False, "disable": True}


class Services(Resource):
    POLICY = {"on_get": "service:index", "on_get_action": "service:index", "on_put_action": "service:update"}

    def __init__(self, config, services, *, legacy: bool):
        super().__init__(config, services)
        self._versions = ("2.0", "2.6") if legacy else ("2.7", None)

    def on_get(self, req, resp) -> None:
        require_version(req, *self._versions)
        found = self.services.service_list.list(caller(req), qp.flatten(req.params))
        reply(resp, view.list_view(found))

    def on_get_action(self, req, resp, action: str) -> None:
        """Manila has no service ``show``: its router answers 404."""
        require_version(req, *self._versions)
        raise NotFound(f"GET {req.path}", user_message="The resource could not be found.")

    def on_put_action(self, req, resp, action: str) -> None:
        require_version(req, *self._versions)
        if action not in ACTIONS:
            raise NotFound(f"unknown services action {action!r}", user_message=f"Unknown action '{action}'")
        self.services.service_list.authorize(caller(req), "update")  # before the body, as Manila's policy
        data = body(req)
        disabled = ACTIONS[action]
        if disabled and isinstance(data, dict) and data.get("disabled_reason"):
            raise InvalidInput("disabled_reason before 2.83", user_message=REASON_NOT_SUPPORTED)
        if not isinstance(data, dict) or "host" not in data or "binary" not in data:
            raise InvalidInput("services update without host and binary",
                               user_message=DEFAULT_MESSAGES[400])
        service = self.services.service_list.set_disabled(caller(req), data["host"], data["binary"], disabled)
        reply(resp, view.summary(service))
