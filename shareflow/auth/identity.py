"""The ``identity`` strategy: tokens of the built-in identity (Fernet, see
:mod:`shareflow.services.identity`) and, beside them, the static tokens of
``shareflow token`` for scripts."""

from __future__ import annotations

from shareflow.auth import UNAUTHENTICATED, Identity
from shareflow.auth.tokens import TokenFile
from shareflow.exceptions import NotAuthenticated
from shareflow.services.identity import IdentityService


class IdentityAuth:
    def __init__(self, identity: IdentityService, tokens: TokenFile):
        self.identity = identity
        self.tokens = tokens

    def authenticate(self, token: str | None, headers: dict[str, str]) -> Identity:
        if not token:
            raise NotAuthenticated("missing token", user_message=UNAUTHENTICATED)
        # A static token is a sha256 lookup in memory: tried first, it costs
        # Fernet tokens nothing measurable.
        record = self.tokens.lookup(token)
        if record is not None:
            return Identity(project_id=record.project_id, user_id=record.user_id, roles=record.roles)
        info = self.identity.validate(token)
        if info.project is None:
            raise NotAuthenticated(f"unscoped token of user {info.user.id}", user_message=UNAUTHENTICATED)
        return Identity(project_id=info.project.id, user_id=info.user.id, roles=info.role_names)
