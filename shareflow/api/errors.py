"""Every error leaves the API as Manila's fault body: ``{"<name>": {"code": N, "message": "..."}}``.

The body name follows the status code exactly as manila/api/openstack/wsgi.py
``Fault._fault_names`` does (405 is ``badMethod``; statuses it does not list,
406 among them, are ``computeFault``), so a client sees the same body it
would see from Manila. Three handlers are registered on the app:

* :class:`~shareflow.exceptions.ShareflowError` - the service's own errors,
  with their ``http_status`` and ``user_message``;
* ``falcon.HTTPError`` - falcon's routing errors (404, 405, bad query
  strings), rewritten into the same shape;
* ``Exception`` - a bug: logged with its traceback, answered with Manila's
  generic 500 body and nothing else.

The built-in identity's routes (``/identity/...``) answer in Keystone's
shape instead, ``{"error": {"code": N, "message": "...", "title": "..."}}``,
which keystoneauth1, openstacksdk and gophercloud read.

Every fault body is rendered to bytes by the handler itself, from a message
made encodable first (:func:`shareflow.api.codec.printable`), so answering an
error cannot fail in turn: an error whose message echoed a lone surrogate of
the request used to fail in falcon's late rendering and leave a 500 with an
empty body.
"""

from __future__ import annotations

import logging

import falcon

from shareflow.api import codec
from shareflow.api.views import identity as identity_view
from shareflow.exceptions import NotAuthenticated, ServiceUnavailable, ShareflowError

LOG = logging.getLogger(__name__)

FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    501: "notImplemented",
    503: "serviceUnavailable",
}
DEFAULT_FAULT_NAME = "computeFault"

#: webob's default explanations, which Manila returns when it gives no message.
DEFAULT_MESSAGES = {
    400: "The server could not comply with the request since it is either malformed "
         "or otherwise incorrect.",
    401: "This server could not verify that you are authorized to access the document "
         "you requested.",
    403: "Access was denied to this resource.",
    404: "The resource could not be found.",
    413: "Request is too large.",
    415: "The request media type is not supported by this server.",
}
INTERNAL_ERROR_MESSAGE = (
    "The server has either erred or is incapable of performing the requested operation."
)
UNAUTHENTICATED_MESSAGE = "The request you have made requires authentication."


#: The 500 answer, rendered once: what is sent when nothing else can be.
INTERNAL_ERROR_BODY = codec.render(
    {DEFAULT_FAULT_NAME: {"code": 500, "message": INTERNAL_ERROR_MESSAGE}}
)


def fault_body(status: int, message: str) -> dict:
    name = FAULT_NAMES.get(status, DEFAULT_FAULT_NAME)
    return {name: {"code": status, "message": codec.printable(message)}}


def internal_error(resp: falcon.Response) -> None:
    """Manila's generic 500, replacing whatever the response held."""
    resp.status = 500
    resp.media = None
    resp.text = None
    resp.data = INTERNAL_ERROR_BODY
    resp.content_type = falcon.MEDIA_JSON


def _is_identity(req) -> bool:
    """The built-in identity's routes answer errors in Keystone's shape,
    ``{"error": {"code", "message", "title"}}``, which its clients parse."""
    return req.path == "/identity" or req.path.startswith("/identity/")


def _answer(resp: falcon.Response, status: int, message: str, *, keystone: bool = False) -> None:
    try:
        if keystone:
            data = codec.render(identity_view.error(status, codec.printable(message)))
        else:
            data = codec.render(fault_body(status, message))
    except Exception:  # noqa: BLE001 - e.g. a message whose str() fails: still an answer
        LOG.exception("cannot render a %s fault body", status)
        internal_error(resp)
        return
    resp.status = status
    resp.media = None
    resp.text = None
    resp.data = data
    resp.content_type = falcon.MEDIA_JSON


def handle_shareflow_error(req, resp, error: ShareflowError, params) -> None:
    status = error.http_status
    if status >= 500 and not isinstance(error, ServiceUnavailable):
        # An operator-level failure (configuration, backend detail): log it,
        # tell the client only what Manila would.
        LOG.error("%s %s failed [%s]", req.method, req.path, _request_id(req), exc_info=error)
        _answer(resp, 500, INTERNAL_ERROR_MESSAGE, keystone=_is_identity(req))
        return
    if status >= 500:
        LOG.warning("%s %s: %s [%s]", req.method, req.path, error, _request_id(req))
    if isinstance(error, NotAuthenticated) and _is_identity(req):
        # Keystone's answer; the reason (wrong password, locked out) stays in the log.
        LOG.info("%s %s: 401: %s [%s]", req.method, req.path, error, _request_id(req))
    _answer(resp, status, error.user_message, keystone=_is_identity(req))
    if isinstance(error, NotAuthenticated):
        resp.set_header("WWW-Authenticate", 'Token realm="shareflow"')


def handle_http_error(req, resp, error: falcon.HTTPError, params) -> None:
    status = error.status_code
    if status == 405:
        message = f"The method {req.method} is not allowed for this resource."
    else:
        message = error.description or DEFAULT_MESSAGES.get(status) or error.title
    _answer(resp, status, message, keystone=_is_identity(req))
    for name, value in (error.headers or {}).items():
        resp.set_header(name, value)


def handle_unexpected(req, resp, error: Exception, params) -> None:
    LOG.error("unexpected error in %s %s [%s]", req.method, req.path, _request_id(req), exc_info=error)
    internal_error(resp)


def _request_id(req) -> str | None:
    return getattr(req.context, "request_id", None)


def _guarded(handler):
    """A handler that fails in turn (a bug in an error class, say) still
    answers Manila's 500 body: falcon would let that failure escape to the
    WSGI server, which answers with a page of its own."""

    def guarded(req, resp, error, params) -> None:
        try:
            handler(req, resp, error, params)
        except Exception as failure:  # noqa: BLE001 - the last line of defence
            LOG.error("the error handler for %r failed in %s %s [%s]", type(error).__name__, req.method,
                      req.path, _request_id(req), exc_info=failure)
            internal_error(resp)

    return guarded


def register(app: falcon.App) -> None:
    # Falcon picks the most specific handler by the exception's MRO, so the
    # order of registration does not matter; the catch-all goes first anyway.
    app.add_error_handler(Exception, _guarded(handle_unexpected))
    app.add_error_handler(falcon.HTTPError, _guarded(handle_http_error))
    app.add_error_handler(ShareflowError, _guarded(handle_shareflow_error))
