"""Who is asking: the project, user and roles of one request."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    project_id: str
    user_id: str | None = None
    is_admin: bool = False
    request_id: str | None = None

    @property
    def scope(self) -> str | None:
        """The project a query is restricted to; None for admins (all projects)."""
        return None if self.is_admin else self.project_id
