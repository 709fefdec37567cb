"""``/share-servers`` (admins only; manila/api/v2/share_servers.py): list
(Manila's filters; an unknown one matches nothing), show, ``details``, delete
(202; 403 unless ``active`` or ``error``, 409 while a share uses it) and the
``reset_status`` (from 2.49) and ``reset_task_state`` (from 2.57; to None
only) actions, 202. Manage, unmanage and migration are not supported."""

from __future__ import annotations

from shareflow.api import params as qp
from shareflow.api.middleware import MALFORMED_BODY
from shareflow.api.resources.base import (
    NOT_AT_THIS_VERSION,
    Resource,
    accepted,
    body,
    caller,
    reply,
    version,
)
from shareflow.api.views import share_servers as view
from shareflow.exceptions import InvalidInput, NotFound

RESET_STATUS_VERSION = "2.49"
RESET_TASK_STATE_VERSION = "2.57"
#: Share server actions Manila has and this service does not.
UNSUPPORTED = frozenset({"unmanage", "migration_check", "migration_start", "migration_complete",
                         "migration_cancel", "migration_get_progress"})


class ShareServers(Resource):
    def on_get(self, req, resp) -> None:
        servers = self.services.share_servers.list(caller(req), qp.flatten(req.params))
        reply(resp, view.list_view(servers, self.view_context(req)))


class ShareServer(Resource):
    def on_get(self, req, resp, server_id: str) -> None:
        server = self.services.share_servers.get(caller(req), server_id)
        reply(resp, {"share_server": view.detail(server, self.view_context(req))})

    def on_delete(self, req, resp, server_id: str) -> None:
        self.services.share_servers.delete(caller(req), server_id)
        accepted(resp)

    def on_get_details(self, req, resp, server_id: str) -> None:
        details = self.services.share_servers.details(caller(req), server_id)
        reply(resp, view.details_view(details))


class ShareServerActions(Resource):
    def on_post(self, req, resp, server_id: str) -> None:
        data = body(req)
        if not isinstance(data, dict) or len(data) != 1:
            raise InvalidInput("action body must have exactly one key", user_message=MALFORMED_BODY)
        (name, info), = data.items()
        if name == "reset_status":
            if not version(req).at_least(RESET_STATUS_VERSION):
                raise NotFound(f"action {name} not at {version(req)}", user_message=NOT_AT_THIS_VERSION)
            self.services.share_servers.reset_status(caller(req), server_id, info)
            accepted(resp)
            return
        if name == "reset_task_state":
            if not version(req).at_least(RESET_TASK_STATE_VERSION):
                raise NotFound(f"action {name} not at {version(req)}", user_message=NOT_AT_THIS_VERSION)
            self.services.share_servers.reset_task_state(caller(req), server_id, info)
            accepted(resp)
            return
        if name in UNSUPPORTED:
            raise InvalidInput(f"Share server action {name} is not supported by this service.")
        raise InvalidInput(f"There is no such action: {name}")
