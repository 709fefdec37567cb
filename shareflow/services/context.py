"""Who is asking: the project, user and roles of one request."""

from __future__ import annotations

from dataclasses import dataclass

from shareflow import policy


@dataclass(frozen=True)
class Caller:
    """``roles`` are Keystone role names (the middleware passes the token's,
    possibly none at all). Left out (``None``), ``is_admin`` picks the admin's
    or a member's: code acting as an operator or for a project, e.g. the CLI.
    With roles given, ``is_admin`` is read from them."""

    project_id: str
    user_id: str | None = None
    is_admin: bool = False
    request_id: str | None = None
    roles: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        given = self.roles
        if given is None:
            given = (policy.ADMIN_ROLE,) if self.is_admin else (policy.MEMBER_ROLE,)
        roles = policy.effective_roles(given)
        object.__setattr__(self, "roles", roles)
        object.__setattr__(self, "is_admin", policy.ADMIN_ROLE in roles)

    @property
    def can_write(self) -> bool:
        """A member (or admin): may change its project's resources; a reader may not."""
        return policy.MEMBER_ROLE in self.roles

    @property
    def scope(self) -> str | None:
        """The project a query is restricted to; None for admins (all projects)."""
        return None if self.is_admin else self.project_id
