"""The backends' pools as their conductors report them: capacity, and the
conductor pool's last start-up ensure (``shareflow backend list | show``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from shareflow.db import pools as pools_db
from shareflow.db.engine import Database
from shareflow.exceptions import InvalidInput, NotFound


@dataclass(frozen=True)
class BackendView:
    host: str
    backend: str
    pool: str
    driver_handles_share_servers: bool
    total_capacity_gb: int
    free_capacity_gb: int
    reported_at: datetime
    ensure_started_at: datetime | None
    ensure_finished_at: datetime | None
    ensure_seconds: float | None
    ensure_volumes: int | None
    ensure_failures: int | None

    @property
    def ensure(self) -> str:
        """One phrase for people: where the last start-up ensure is."""
        if self.ensure_started_at is None:
            return "never run"
        if self.ensure_finished_at is None:
            return f"running since {self.ensure_started_at.isoformat(timespec='seconds')}"
        failed = f", {self.ensure_failures} failed" if self.ensure_failures else ""
        return (f"finished {self.ensure_finished_at.isoformat(timespec='seconds')} in "
                f"{self.ensure_seconds:.1f} s ({self.ensure_volumes} volumes{failed})")


def _view(row) -> BackendView:
    return BackendView(
        host=row.host, backend=row.backend, pool=row.pool,
        driver_handles_share_servers=row.driver_handles_share_servers,
        total_capacity_gb=row.total_capacity_gb, free_capacity_gb=row.free_capacity_gb,
        reported_at=row.updated_at, ensure_started_at=row.ensure_started_at,
        ensure_finished_at=row.ensure_finished_at, ensure_seconds=row.ensure_seconds,
        ensure_volumes=row.ensure_volumes, ensure_failures=row.ensure_failures,
    )


class BackendService:
    def __init__(self, db: Database):
        self._db = db

    def list(self) -> list[BackendView]:
        with self._db.read() as s:
            return [_view(r) for r in pools_db.list_(s)]

    def get(self, name: str) -> BackendView:
        """By ``host@backend#pool``, or by backend name when one host has it."""
        if not isinstance(name, str) or not name or len(name) > 255:
            raise InvalidInput(f"invalid backend {name!r}")
        found = [b for b in self.list() if name in (b.host, b.backend)]
        if not found:
            raise NotFound(f"no backend {name!r} has reported", user_message=f"No backend {name} has reported.")
        if len(found) > 1:
            raise InvalidInput(f"backend {name!r} is on several hosts",
                               user_message=f"Backend {name} is on several hosts: name one of "
                                            + ", ".join(b.host for b in found))
        return found[0]
