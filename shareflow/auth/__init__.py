"""Who is calling: turning an ``X-Auth-Token`` into a project, a user and roles.

Three strategies (``[auth] strategy`` in the configuration):

* ``tokens`` - tokens issued with ``shareflow token issue``, checked against
  the hashes in the tokens file (:mod:`shareflow.auth.tokens`);
* ``keystone`` - an existing OpenStack Keystone validates each token
  (:mod:`shareflow.auth.keystone`), as keystonemiddleware does for Manila;
* ``noauth`` - Manila's noauth middleware, for local development only: the
  token is ``user:project`` or just ``project``, and everyone is an admin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from shareflow.auth.tokens import ADMIN_ROLE, MEMBER_ROLE, TokenFile
from shareflow.config import AuthConfig
from shareflow.exceptions import ConfigError, NotAuthenticated

LOG = logging.getLogger(__name__)

#: Manila's noauth defaults when a request carries no token at all.
NOAUTH_DEFAULT = "admin"
UNAUTHENTICATED = "The request you have made requires authentication."


@dataclass(frozen=True)
class Identity:
    project_id: str
    user_id: str
    roles: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


class Authenticator(Protocol):
    def authenticate(self, token: str | None, headers: dict[str, str]) -> Identity:
        """``headers`` as falcon gives them: names in upper case."""


class TokenAuth:
    def __init__(self, tokens: TokenFile):
        self.tokens = tokens

    def authenticate(self, token: str | None, headers: dict[str, str]) -> Identity:
        record = self.tokens.lookup(token) if token else None
        if record is None:
            raise NotAuthenticated(
                "missing token" if not token else "unknown token", user_message=UNAUTHENTICATED
            )
        return Identity(project_id=record.project_id, user_id=record.user_id, roles=record.roles)


class NoAuth:
    """manila/api/middleware/auth.py ``NoAuthMiddlewareBase``, except that a
    request without a token is served as ``admin:admin`` (or the
    ``X-Auth-User``/``X-Auth-Project-Id`` headers) instead of being answered
    with a fake-token 204: that answer only ever confused curl users."""

    def authenticate(self, token: str | None, headers: dict[str, str]) -> Identity:
        if not token:
            user = headers.get("X-AUTH-USER") or NOAUTH_DEFAULT
            project = headers.get("X-AUTH-PROJECT-ID") or NOAUTH_DEFAULT
        else:
            user, _, project = token.partition(":")
            project = project or user
        if not user or not project:
            raise NotAuthenticated("empty noauth token", user_message=UNAUTHENTICATED)
        return Identity(project_id=project, user_id=user, roles=(ADMIN_ROLE, MEMBER_ROLE))


def from_config(config: AuthConfig) -> Authenticator:
    if config.strategy == "tokens":
        return TokenAuth(TokenFile(config.tokens_file))
    if config.strategy == "keystone":
        from shareflow.auth.keystone import KeystoneAuth

        return KeystoneAuth(config.keystone)
    if config.strategy == "noauth":
        LOG.warning(
            "auth.strategy is 'noauth': every request is trusted and every caller is an "
            "admin. Use it for local development only."
        )
        return NoAuth()
    raise ConfigError(f"auth.strategy: unknown strategy {config.strategy!r}")
