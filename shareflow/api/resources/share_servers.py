"""``/share-servers`` (admins only; manila/api/v2/share_servers.py): list
(Manila's filters; an unknown one matches nothing), show, ``details``, delete
(202; 403 unless ``active`` or ``error``, 409 while a share uses it) and the
``reset_status`` (from 2.49) and ``reset_task_state`` (from 2.57; to None
only) actions, 202. Manage, unmanage and migration are not supported."""

from __future__ import annotations

from shareflow.api import params as qp
from shareflow.api.resources.base import (
    PER_ACTION,
    Action,
    Actions,
    Resource,
    accepted,
    caller,
    dispatch_action,
    reply,
)
from shareflow.api.views import share_servers as view

RESET_STATUS_VERSION = "2.49"
RESET_TASK_STATE_VERSION = "2.57"
#: Share server actions Manila has and this service does not.
UNSUPPORTED = frozenset({"unmanage", "migration_check", "migration_start", "migration_complete",
                         "migration_cancel", "migration_get_progress"})


class ShareServers(Resource):
    POLICY = {"on_get": "share_server:index"}

    def on_get(self, req, resp) -> None:
        servers = self.services.share_servers.list(caller(req), qp.flatten(req.params))
        reply(resp, view.list_view(servers, self.view_context(req)))


class ShareServer(Resource):
    POLICY = {
        "on_get": "share_server:show",
        "on_delete": "share_server:delete",
        "on_get_details": "share_server:details",
    }

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
    POLICY = {"on_post": PER_ACTION}

    def __init__(self, config, services):
        super().__init__(config, services)
        self.actions: Actions = {
            "reset_status": Action(RESET_STATUS_VERSION, None, self.reset_status, "share_server:reset_status"),
            "reset_task_state": Action(RESET_TASK_STATE_VERSION, None, self.reset_task_state,
                                       "share_server:share_server_reset_task_state"),
        }

    def on_post(self, req, resp, server_id: str) -> None:
        dispatch_action(req, resp, server_id, self.actions, kind="Share server", unsupported=UNSUPPORTED)

    def reset_status(self, req, resp, server_id: str, info) -> None:
        self.services.share_servers.reset_status(caller(req), server_id, info)
        accepted(resp)

    def reset_task_state(self, req, resp, server_id: str, info) -> None:
        self.services.share_servers.reset_task_state(caller(req), server_id, info)
        accepted(resp)
