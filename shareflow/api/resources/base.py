"""Helpers every resource uses to read a request and answer it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import falcon

from shareflow import policy
from shareflow.api.microversions import APIVersion
from shareflow.api.middleware import MALFORMED_BODY
from shareflow.api.views.common import ViewContext, root_url
from shareflow.config import Config
from shareflow.exceptions import InvalidInput, NotFound
from shareflow.services.context import Caller

#: What Manila answers when a route exists but not at the requested version
#: (``VersionNotFoundForAPIMethod`` becomes a bare 404).
NOT_AT_THIS_VERSION = "The resource could not be found."


#: A responder whose rule depends on the body: ``POST .../action``, each
#: action naming its own (:class:`Action`), enforced by :func:`dispatch_action`.
PER_ACTION = "per-action"


class MissingPolicy(TypeError):
    """A responder was declared without a policy rule: caught at import."""


def _guarded(responder: Callable, rule: str) -> Callable:
    """``responder`` under ``rule``, checked for the caller's own project
    (Manila's target when none is given) when the responder first asks who
    is calling or reads the body (:func:`caller`, :func:`body`): after its
    microversion check (404) and before the body's (400), Manila's order.
    Nothing is changed before then (every service takes the caller), and a
    responder that never asks is checked before its answer leaves. A rule
    about one resource of another project (another project's public share)
    is the service's to enforce again with that resource as the target."""
    if rule == PER_ACTION or policy.check_of(rule).anyone:
        # Also the versions documents, answered without a token (no caller).
        guarded = responder
    else:

        @functools.wraps(responder)
        def guarded(self, req, resp, *args, **kwargs):
            req.context.policy_rule = rule
            result = responder(self, req, resp, *args, **kwargs)
            _enforce_pending(req)
            return result
    guarded.__policy_rule__ = rule
    return guarded


def _enforce_pending(req: falcon.Request) -> None:
    rule = getattr(req.context, "policy_rule", None)
    if rule is not None:
        req.context.policy_rule = None
        policy.enforce(req.context.caller, rule)


class Resource:
    """Every responder (``on_<method>[_<suffix>]``) a subclass defines must
    name its policy rule in ``POLICY`` (responder name -> rule in
    :data:`shareflow.policy.RULES`, or :data:`PER_ACTION`); the rule is
    enforced before the responder acts (see :func:`_guarded`). A responder
    without one is an error when the class is defined: no route goes unpoliced."""

    POLICY: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if not name.startswith("on_") or not callable(value):
                continue
            rule = cls.POLICY.get(name)
            if rule is None:
                raise MissingPolicy(f"{cls.__name__}.{name} has no policy rule in {cls.__name__}.POLICY")
            setattr(cls, name, _guarded(value, rule))

    def __init__(self, config: Config, services):
        self.config = config
        self.services = services

    def view_context(self, req: falcon.Request) -> ViewContext:
        _enforce_pending(req)
        caller = req.context.caller
        return ViewContext(
            version=req.context.api_version,
            is_admin=bool(caller and caller.is_admin),
            base_url=root_url(self.config.api.public_url, req.prefix),
            project_in_path=req.context.project_in_path,
            default_share_type=self.config.default_share_type,
        )


def caller(req: falcon.Request) -> Caller:
    """Who is calling; first checks the responder's policy rule (see :func:`_guarded`)."""
    _enforce_pending(req)
    return req.context.caller


def version(req: falcon.Request) -> APIVersion:
    return req.context.api_version


def require_version(req: falcon.Request, low: str, high: str | None = None) -> None:
    if not version(req).within(low, high):
        raise NotFound(f"{req.method} {req.path} not at {version(req)}", user_message=NOT_AT_THIS_VERSION)


def body(req: falcon.Request) -> Any:
    """The decoded body; first checks the responder's policy rule (see :func:`_guarded`)."""
    _enforce_pending(req)
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


class Action(NamedTuple):
    """One action of ``POST .../action``: its microversions, its handler
    ``(req, resp, resource_id, info)`` and its policy rule. ``experimental``:
    only with Manila's experimental header (a 404 without it, before policy)."""

    low: str
    high: str | None
    handler: Callable
    rule: str
    experimental: bool = False


#: An action resource's actions by name.
Actions = dict[str, Action]

#: Manila's header asking for experimental APIs.
EXPERIMENTAL_HEADER = "X-OpenStack-Manila-API-Experimental"


def experimental(req: falcon.Request) -> bool:
    flag = req.get_header(EXPERIMENTAL_HEADER) or ""
    return flag.strip().lower() in ("true", "t", "yes", "y", "1", "on")


def dispatch_action(req: falcon.Request, resp: falcon.Response, resource_id: str, actions: Actions, *,
                    kind: str, unsupported: frozenset[str] = frozenset()) -> None:
    """Manila's ``POST .../action``: a body of exactly one key naming the
    action. Actions Manila has and this service does not (``unsupported``)
    and unknown ones are 400; one outside its microversions is 404; then the
    action's policy rule, then its handler."""
    data = body(req)
    if not isinstance(data, dict) or len(data) != 1:
        raise InvalidInput("action body must have exactly one key", user_message=MALFORMED_BODY)
    (name, info), = data.items()
    if name not in actions:
        if name in unsupported:
            raise InvalidInput(f"{kind} action {name} is not supported by this service.")
        raise InvalidInput(f"There is no such action: {name}")
    action = actions[name]
    if not version(req).within(action.low, action.high):
        raise NotFound(f"action {name} not at {version(req)}", user_message=NOT_AT_THIS_VERSION)
    if action.experimental:
        if not experimental(req):
            raise NotFound(f"{name} without {EXPERIMENTAL_HEADER}", user_message=NOT_AT_THIS_VERSION)
        resp.set_header(EXPERIMENTAL_HEADER, "True")
    policy.enforce(caller(req), action.rule)
    action.handler(req, resp, resource_id, info)
