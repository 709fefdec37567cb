"""Falcon middleware: request ids, body limit, authentication, microversions,
the optional ``/{project_id}`` path segment, JSON bodies, and rendering answers.

Order matters and follows Manila's paste pipeline (request_id, sizelimit,
authtoken, then the API router that reads the microversion and the body):
a request without a valid token is a 401 whatever else is wrong with it.
Every ``process_response`` runs even when a request failed (falcon's
independent middleware), so error bodies carry the ids and version too.
"""

from __future__ import annotations

import logging
import uuid

import falcon

from shareflow.api import codec, errors, microversions
from shareflow.api.codec import MALFORMED_BODY, decode_json  # noqa: F401 (resources import them from here)
from shareflow.auth import Authenticator
from shareflow.exceptions import InvalidInput, OverLimit
from shareflow.services.context import Caller

LOG = logging.getLogger(__name__)

#: Paths answered without authentication: the versions documents.
PUBLIC_PATHS = frozenset({"/", "/v2"})
V2_PREFIX = "/v2"
#: Methods whose body is decoded (and so checked). A DELETE's body is never
#: used, but one that is sent is held to the same rules as any other.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_v2(path: str) -> bool:
    return path == V2_PREFIX or path.startswith(V2_PREFIX + "/")


class RenderMiddleware:
    """Renders ``resp.media`` to bytes in ``process_response``; registered
    first, so this runs after every other middleware's ``process_response``.

    Falcon renders media after all middleware and error handlers: a value it
    cannot encode there (a lone surrogate, an object JSON does not know)
    becomes a 500 whose body is dropped, an empty answer. Rendered here, the
    same failure is still answered with Manila's 500 body."""

    def process_response(self, req, resp, resource, req_succeeded) -> None:
        media = resp.media
        if media is None or resp.text is not None or resp.data is not None:
            return
        try:
            resp.data = codec.render(media)
        except Exception as error:  # a bug: never an empty or half-written body
            LOG.error("cannot render the answer to %s %s [%s]", req.method, req.path,
                      getattr(req.context, "request_id", None), exc_info=error)
            errors.internal_error(resp)
        resp.content_type = falcon.MEDIA_JSON


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
            roles=tuple(identity.roles), request_id=req.context.request_id,
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
    404, not a 400; see :mod:`shareflow.api.codec` for what a body must be."""

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
            codec.require_json(req.content_type)
            req.context.body = decode_json(raw)
