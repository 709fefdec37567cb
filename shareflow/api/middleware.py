"""Falcon middleware: request ids, body limit, authentication, microversions,
the optional ``/{project_id}`` path segment, and JSON bodies.

Order matters and follows Manila's paste pipeline (request_id, sizelimit,
authtoken, then the API router that reads the microversion and the body):
a request without a valid token is a 401 whatever else is wrong with it.
Every ``process_response`` runs even when a request failed (falcon's
independent middleware), so error bodies carry the ids and version too.
"""

from __future__ import annotations

import json
import uuid

import falcon

from shareflow.api import microversions
from shareflow.auth import Authenticator
from shareflow.exceptions import InvalidInput, OverLimit
from shareflow.services.context import Caller

#: Paths answered without authentication: the versions documents.
PUBLIC_PATHS = frozenset({"/", "/v2"})
V2_PREFIX = "/v2"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
MALFORMED_BODY = "Malformed request body"


def is_v2(path: str) -> bool:
    return path == V2_PREFIX or path.startswith(V2_PREFIX + "/")


class RequestIdMiddleware:
    """``req-<uuid>`` per request, answered as Manila (``x-compute-request-id``)
    and oslo.middleware (``x-openstack-request-id``) do; also echoes the
    microversion the request was served at, with ``Vary``."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.request_id = f"req-{uuid.uuid4()}"
        req.context.api_version = None
        req.context.caller = None
        req.context.raw_body = b""
        req.context.body = None
        req.context.project_in_path = None

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        request_id = req.context.request_id
        resp.set_header("x-compute-request-id", request_id)
        resp.set_header("x-openstack-request-id", request_id)
        version = req.context.api_version
        if version is not None:
            resp.set_header(microversions.HEADER, str(version))
            resp.set_header("Vary", microversions.HEADER)


class BodyLimitMiddleware:
    """Reads at most ``max_bytes`` of a body; anything larger is a 413 before
    any parsing or authentication work is spent on it."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        length = req.content_length
        if length is not None and length > self.max_bytes:
            raise OverLimit(f"body of {length} bytes", user_message="Request is too large.")
        if not length:
            return
        raw = req.bounded_stream.read(self.max_bytes + 1)
        if len(raw) > self.max_bytes:
            raise OverLimit("body over the limit", user_message="Request is too large.")
        req.context.raw_body = raw


class AuthMiddleware:
    def __init__(self, authenticator: Authenticator):
        self.authenticator = authenticator

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.path in PUBLIC_PATHS:
            return
        identity = self.authenticator.authenticate(req.get_header("X-Auth-Token"), req.headers)
        req.context.caller = Caller(
            project_id=identity.project_id, user_id=identity.user_id,
            is_admin=identity.is_admin, request_id=req.context.request_id,
        )


class MicroversionMiddleware:
    """Only ``/v2`` requests are versioned (Manila ignores the header on ``/``)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if is_v2(req.path):
            req.context.api_version = microversions.from_header(req.get_header(microversions.HEADER))


class RequestBodyMiddleware:
    """After routing: check the ``{project_id}`` segment and decode the JSON body.

    A project in the path that is not the caller's is Manila's 400 "Malformed
    request url" (``Resource._process_stack``), for admins too. The body is
    decoded only for routes that exist, so a bad body on an unknown path is a
    404, not a 400."""

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        project = params.pop("project_id", None)
        caller = req.context.caller
        if project is not None:
            if caller is not None and project != caller.project_id:
                raise InvalidInput(f"project {project!r} in the URL is not the caller's",
                                   user_message="Malformed request url")
            req.context.project_in_path = project
        raw = req.context.raw_body
        if raw and req.method in BODY_METHODS:
            req.context.body = decode_json(raw)


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return value


def decode_json(raw: bytes):
    """Strict JSON: no NaN/Infinity (not even as 1e999), no absurdly deep
    nesting, no huge integers (Python refuses those with a ValueError of its own)."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constants, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("request body is not valid JSON", user_message=MALFORMED_BODY) from None
