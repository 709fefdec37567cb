"""Choosing a backend pool for a new share: filter, then weigh.

Filters: the pool's DHSS mode matches the share type's, and it has room
(reported free space, and the space promised to its live shares, which is
never overcommitted). Weigher: most free space first. Both figures are one
row each (the conductor's report and the pool's ``allocated_capacity_gb``
counter), so placing a share costs the same however many a pool holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from shareflow.config import BackendConfig, Config
from shareflow.db import pools as pools_db


@dataclass(frozen=True)
class Placement:
    backend: BackendConfig
    host: str


class Scheduler:
    def __init__(self, config: Config):
        self._config = config

    def place(self, session: Session, *, dhss: bool, size_gb: int) -> Placement | None:
        """The best pool for the share, or None when no pool can take it."""
        candidates: list[tuple[int, BackendConfig, str]] = []
        for backend in self._config.backends:
            if backend.driver_handles_share_servers != dhss:
                continue
            host = backend.host(self._config.host)
            report = pools_db.get(session, host)
            if report is None:
                # No conductor has reported this pool yet: its size is unknown,
                # so the share can only be placed if nothing else can.
                candidates.append((-1, backend, host))
                continue
            promised = pools_db.allocated_gb(session, backend.name)
            free = min(report.free_capacity_gb, report.total_capacity_gb - promised)
            if free >= size_gb:
                candidates.append((free, backend, host))
        if not candidates:
            return None
        _, backend, host = max(candidates, key=lambda c: c[0])
        return Placement(backend=backend, host=host)

    def has_room(self, session: Session, backend_name: str, increase_gb: int) -> bool:
        """Whether the pool a share lives on can take ``increase_gb`` more (an
        extend), by the same measure as :meth:`place`; a pool no conductor has
        reported yet is given the benefit of the doubt (its driver decides)."""
        backend = self._config.backend(backend_name)
        report = pools_db.get(session, backend.host(self._config.host))
        if report is None:
            return True
        promised = pools_db.allocated_gb(session, backend.name)
        return min(report.free_capacity_gb, report.total_capacity_gb - promised) >= increase_gb
