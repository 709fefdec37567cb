"""The built-in identity's routes under ``/identity`` (Keystone v3's API):
version discovery and ``/v3/auth/tokens``. They are public to the app's
authentication middleware and authenticate their caller themselves, where
Keystone asks for one (validating or revoking a token)."""

from __future__ import annotations

import falcon

from shareflow.api.views import identity as view
from shareflow.api.views.common import root_url
from shareflow.auth import Authenticator, Identity
from shareflow.exceptions import Forbidden, InvalidInput, NotFound, NotAuthenticated
from shareflow.services.identity import IdentityService, TokenInfo

SUBJECT_TOKEN = "X-Subject-Token"


class IdentityResource:
    def __init__(self, config, identity: IdentityService, authenticator: Authenticator):
        self.config = config
        self.identity = identity
        self.authenticator = authenticator

    def api_url(self, req: falcon.Request) -> str:
        return root_url(self.config.api.public_url, req.prefix)

    def identity_url(self, req: falcon.Request) -> str:
        return self.api_url(req) + view.IDENTITY_PATH

    def caller(self, req: falcon.Request) -> Identity:
        return self.authenticator.authenticate(req.get_header("X-Auth-Token"), req.headers)


class IdentityVersions(IdentityResource):
    """``GET /identity`` (300, every version) and ``GET /identity/v3`` (200, v3)."""

    def __init__(self, config, identity, authenticator, *, root: bool):
        super().__init__(config, identity, authenticator)
        self.root = root

    def on_get(self, req, resp) -> None:
        url = self.identity_url(req)
        if self.root:
            resp.status = 300
            resp.media = view.versions(url)
        else:
            resp.media = {"version": view.version(url)}


class AuthTokens(IdentityResource):
    """``/identity/v3/auth/tokens``: issue (POST), validate (GET, HEAD), revoke (DELETE)."""

    def on_post(self, req, resp) -> None:
        body = req.context.body
        if not isinstance(body, dict) or "auth" not in body:
            raise InvalidInput("no auth object", user_message="Expecting to find auth in request body.")
        info = self.identity.authenticate(body["auth"])
        self._answer(req, resp, info, status=201)

    def on_get(self, req, resp) -> None:
        self._answer(req, resp, self._subject(req))

    def on_head(self, req, resp) -> None:
        info = self._subject(req)
        resp.set_header(SUBJECT_TOKEN, info.token)
        resp.status = 200

    def on_delete(self, req, resp) -> None:
        self.identity.revoke(self._subject(req))
        resp.status = 204

    def _answer(self, req, resp, info: TokenInfo, status: int = 200) -> None:
        nocatalog = "nocatalog" in req.params
        resp.status = status
        resp.set_header(SUBJECT_TOKEN, info.token)
        resp.media = view.token(info, self.config.identity, self.api_url(req), with_catalog=not nocatalog)

    def _subject(self, req) -> TokenInfo:
        """The X-Subject-Token, for a caller allowed to see it: an admin, or its own user."""
        caller = self.caller(req)
        subject = req.get_header(SUBJECT_TOKEN)
        if not subject:
            raise InvalidInput("no X-Subject-Token", user_message="X-Subject-Token is required.")
        try:
            info = self.identity.validate(subject)
        except NotAuthenticated as e:
            raise NotFound(e.message, user_message=f"Could not find token: {subject[:16]}...") from None
        if not caller.is_admin and caller.user_id != info.user.id:
            raise Forbidden("the subject token is another user's",
                            user_message="You are not authorized to perform the requested action.")
        return info


def add_routes(app: falcon.App, config, identity: IdentityService, authenticator: Authenticator) -> None:
    prefix = view.IDENTITY_PATH
    app.add_route(prefix, IdentityVersions(config, identity, authenticator, root=True))
    app.add_route(prefix + "/v3", IdentityVersions(config, identity, authenticator, root=False))
    app.add_route(prefix + "/v3/auth/tokens", AuthTokens(config, identity, authenticator))
