"""Helpers every resource uses to read a request and answer it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import falcon

from shareflow.api.microversions import APIVersion
from shareflow.api.middleware import MALFORMED_BODY
from shareflow.api.views.common import ViewContext, root_url
from shareflow.config import Config
from shareflow.exceptions import InvalidInput, NotFound
from shareflow.services.context import Caller

#: What Manila answers when a route exists but not at the requested version
#: (``VersionNotFoundForAPIMethod`` becomes a bare 404).
NOT_AT_THIS_VERSION = "The resource could not be found."


class Resource:
    def __init__(self, config: Config, services):
        self.config = config
        self.services = services

    def view_context(self, req: falcon.Request) -> ViewContext:
        caller = req.context.caller
        return ViewContext(
            version=req.context.api_version,
            is_admin=bool(caller and caller.is_admin),
            base_url=root_url(self.config.api.public_url, req.prefix),
            project_in_path=req.context.project_in_path,
            default_share_type=self.config.default_share_type,
        )


def caller(req: falcon.Request) -> Caller:
    return req.context.caller


def version(req: falcon.Request) -> APIVersion:
    return req.context.api_version


def require_version(req: falcon.Request, low: str, high: str | None = None) -> None:
    if not version(req).within(low, high):
        raise NotFound(f"{req.method} {req.path} not at {version(req)}", user_message=NOT_AT_THIS_VERSION)


def body(req: falcon.Request) -> Any:
    return req.context.body


def section(req: falcon.Request, *keys: str) -> tuple[str, dict]:
    """The body must be an object holding an object under one of ``keys``
    (e.g. ``share_type`` or its old alias ``volume_type``)."""
    data = body(req)
    if isinstance(data, dict):
        for key in keys:
            if isinstance(data.get(key), dict):
                return key, data[key]
    raise InvalidInput(f"Malformed request body: expected a '{keys[0]}' object.")


def reply(resp: falcon.Response, payload: dict | None, status: int = 200) -> None:
    resp.status = status
    if payload is not None:
        resp.media = payload


def accepted(resp: falcon.Response) -> None:
    """202 with an empty body, as Manila answers deletes and deny_access."""
    resp.status = 202
    resp.content_type = "application/json"
    resp.data = b""


#: An action resource's actions: name -> (first version, last version or
#: None, handler(req, resp, resource_id, info)).
Actions = dict[str, tuple[str, str | None, Callable]]


def dispatch_action(req: falcon.Request, resp: falcon.Response, resource_id: str, actions: Actions, *,
                    kind: str, unsupported: frozenset[str] = frozenset()) -> None:
    """Manila's ``POST .../action``: a body of exactly one key naming the
    action. Actions Manila has and this service does not (``unsupported``)
    and unknown ones are 400; one outside its microversions is 404."""
    data = body(req)
    if not isinstance(data, dict) or len(data) != 1:
        raise InvalidInput("action body must have exactly one key", user_message=MALFORMED_BODY)
    (name, info), = data.items()
    if name not in actions:
        if name in unsupported:
            raise InvalidInput(f"{kind} action {name} is not supported by this service.")
        raise InvalidInput(f"There is no such action: {name}")
    low, high, handler = actions[name]
    if not version(req).within(low, high):
        raise NotFound(f"action {name} not at {version(req)}", user_message=NOT_AT_THIS_VERSION)
    handler(req, resp, resource_id, info)
