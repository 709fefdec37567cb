"""Share services ``host@backend`` and their pools as the conductors report
them (``shareflow backend list | show | disable | enable``): capabilities,
capacity, shares, the last report and whether the conductors are alive, the
conductor pool's last start-up ensure, and an admin's disable (Manila's
``openstack share service set --disable``: no new shares are placed there;
existing ones keep working)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shareflow.db import pools as pools_db
from shareflow.db import share_services
from shareflow.db.engine import Database
from shareflow.exceptions import InvalidInput, NotFound

#: Manila's limit on ``disabled_reason``.
MAX_REASON = 255


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class PoolView:
    #: ``host@backend#pool``
    host: str
    pool: str
    availability_zone: str | None
    capabilities: dict
    total_capacity_gb: int
    free_capacity_gb: int
    allocated_capacity_gb: int
    shares: int
    reported_at: datetime
    ensure_started_at: datetime | None
    ensure_finished_at: datetime | None
    ensure_seconds: float | None
    ensure_volumes: int | None
    ensure_failures: int | None

    @property
    def driver_handles_share_servers(self) -> bool:
        return bool(self.capabilities.get("driver_handles_share_servers"))

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


@dataclass(frozen=True)
class BackendView:
    """One share service ``host@backend``."""

    #: ``host@backend``
    host: str
    service_host: str
    backend: str
    availability_zone: str | None
    disabled: bool
    disabled_reason: str | None
    #: The heartbeat: when its conductors last reported.
    last_report: datetime | None
    #: Whether they reported within the scheduler's ``stale_after``.
    alive: bool
    pools: tuple[PoolView, ...]

    @property
    def shares(self) -> int:
        return sum(p.shares for p in self.pools)

    @property
    def status(self) -> str:
        """Manila's service ``status`` and ``state`` in one word."""
        return ("disabled" if self.disabled else "enabled") + ("" if self.alive else ", down")


def _pool_view(session, row) -> PoolView:
    return PoolView(
        host=row.host, pool=row.pool, availability_zone=row.availability_zone,
        capabilities=pools_db.capabilities(row), total_capacity_gb=row.total_capacity_gb,
        free_capacity_gb=row.free_capacity_gb, allocated_capacity_gb=pools_db.allocated_gb(session, row.host),
        shares=pools_db.shares_count(session, row.host), reported_at=row.updated_at,
        ensure_started_at=row.ensure_started_at, ensure_finished_at=row.ensure_finished_at,
        ensure_seconds=row.ensure_seconds, ensure_volumes=row.ensure_volumes,
        ensure_failures=row.ensure_failures,
    )


def _service_key(name) -> str:
    if not isinstance(name, str) or not name or len(name) > 255:
        raise InvalidInput(f"invalid backend {name!r}", user_message=f"Invalid backend {name!r}: "
                           "give HOST@BACKEND.")
    return name


class BackendService:
    def __init__(self, db: Database, *, stale_after: float = pools_db.DEFAULT_POOL_STALE_AFTER,
                 clock: Callable[[], datetime] = _utcnow):
        self._db = db
        self._stale_after = timedelta(seconds=stale_after)
        self._clock = clock

    def list(self) -> list[BackendView]:
        """Every share service that ever reported, by ``host@backend``."""
        now = self._clock()
        with self._db.read() as s:
            pools: dict[str, list[PoolView]] = {}
            for row in pools_db.list_(s):
                pools.setdefault(row.host.partition("#")[0], []).append(_pool_view(s, row))
            services = {r.host: r for r in share_services.list_(s)}
        out = []
        for key in sorted(set(pools) | set(services)):
            row = services.get(key)
            mine = tuple(pools.get(key, ()))
            last = row.updated_at if row is not None else max((p.reported_at for p in mine), default=None)
            service_host, _, backend = key.partition("@")
            out.append(BackendView(
                host=key, service_host=service_host, backend=backend,
                availability_zone=(row.availability_zone if row is not None else None)
                or next((p.availability_zone for p in mine if p.availability_zone), None),
                disabled=bool(row is not None and row.disabled),
                disabled_reason=row.disabled_reason if row is not None else None,
                last_report=last, alive=last is not None and now - last <= self._stale_after, pools=mine,
            ))
        return out

    def get(self, name: str) -> BackendView:
        """By ``host@backend`` (or one of its pools, ``host@backend#pool``),
        or by backend name when only one host has it."""
        name = _service_key(name)
        key = name.partition("#")[0]
        found = [b for b in self.list() if key == b.host or ("@" not in key and key == b.backend)]
        if not found:
            raise NotFound(f"no backend {name!r} has reported", user_message=f"No backend {name} has reported.")
        if len(found) > 1:
            raise InvalidInput(f"backend {name!r} is on several hosts",
                               user_message=f"Backend {name} is on several hosts: name one of "
                                            + ", ".join(b.host for b in found))
        return found[0]

    def disable(self, name: str, *, reason: str | None = None) -> BackendView:
        """No new shares on the service's pools from now on (the scheduler
        skips them); its existing shares keep working."""
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
            raise InvalidInput("invalid reason", user_message=f"The reason must be a string of at most "
                                                              f"{MAX_REASON} characters.")
        return self._set(name, True, reason)

    def enable(self, name: str) -> BackendView:
        return self._set(name, False, None)

    def _set(self, name: str, disabled: bool, reason: str | None) -> BackendView:
        key = self.get(name).host
        with self._db.write() as s:
            share_services.set_disabled(s, key, disabled, reason=reason, now=self._clock())
        return self.get(key)
