"""Manila's ``services`` (admins; manila/api/v2/services.py): shareflow's
processes under Manila's binary names, with their liveness and whether an
admin disabled them.

* ``manila-share``: one per share service ``host@backend``, as its conductors
  report it (:class:`~shareflow.services.backends.BackendService`); ``status``
  is the admin's disable, which the scheduler honours;
* ``manila-scheduler``: one per conductor host (``host``): the conductors
  place the shares they create, so a host's scheduler is alive exactly when
  its conductors report; it cannot be disabled on its own (there is no
  separate scheduler process to stop);
* ``manila-api``: one per API node (``host`` of its configuration), from the
  heartbeat its API processes write (:mod:`shareflow.api.heartbeat`).

``state`` is ``up`` when the service reported within ``[scheduler]
pool_stale_after`` (the part Manila's ``service_down_time`` plays): the same
interval after which the scheduler stops placing on a pool, so a share
service shown ``up`` is one the scheduler would use.

Manila's ``id`` is its table's integer key; shareflow's rows are keyed by
host, so the id here is a stable 31-bit number derived from binary and host
(the same on every API node and across restarts; nothing takes it as input).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from shareflow import policy
from shareflow.db import share_services
from shareflow.db.engine import Database
from shareflow.exceptions import InvalidInput, NotFound
from shareflow.services.backends import BackendService, BackendView, _utcnow
from shareflow.services.context import Caller

SHARE = share_services.SHARE_BINARY
SCHEDULER = "manila-scheduler"
API = share_services.API_BINARY
#: Manila's filters of ``GET /services``, each compared for equality.
FILTERS = ("host", "binary", "zone", "state", "status")


@dataclass(frozen=True)
class ServiceView:
    id: int
    binary: str
    host: str
    zone: str | None
    #: ``enabled`` / ``disabled``
    status: str
    #: ``up`` / ``down``
    state: str
    updated_at: datetime | None
    disabled_reason: str | None = None

    def as_filterable(self) -> dict:
        return {"host": self.host, "binary": self.binary, "zone": self.zone, "state": self.state,
                "status": self.status}


def service_id(binary: str, host: str) -> int:
    return zlib.crc32(f"{binary}\x00{host}".encode()) & 0x7FFFFFFF


def _view(binary: str, host: str, *, zone, disabled: bool, alive: bool, updated_at,
          reason: str | None = None) -> ServiceView:
    return ServiceView(id=service_id(binary, host), binary=binary, host=host, zone=zone,
                       status="disabled" if disabled else "enabled", state="up" if alive else "down",
                       updated_at=updated_at, disabled_reason=reason if disabled else None)


def _schedulers(backends: list[BackendView]) -> list[ServiceView]:
    by_host: dict[str, list[BackendView]] = {}
    for b in backends:
        by_host.setdefault(b.service_host, []).append(b)
    out = []
    for host, mine in by_host.items():
        reports = [b.last_report for b in mine if b.last_report is not None]
        out.append(_view(SCHEDULER, host, zone=next((b.availability_zone for b in mine if b.availability_zone),
                                                   None),
                         disabled=False, alive=any(b.alive for b in mine),
                         updated_at=max(reports, default=None)))
    return out


class ServiceListService:
    def __init__(self, db: Database, backends: BackendService, *, stale_after: float,
                 clock: Callable[[], datetime] = _utcnow):
        self._db = db
        self._backends = backends
        self._stale_after = timedelta(seconds=stale_after)
        self._clock = clock

    def authorize(self, caller: Caller, action: str) -> None:
        """Manila's ``service:index`` / ``service:update``: admins only."""
        policy.enforce(caller, f"service:{action}")

    def _all(self) -> list[ServiceView]:
        backends = self._backends.list()
        out = [_view(SHARE, b.host, zone=b.availability_zone, disabled=b.disabled, alive=b.alive,
                     updated_at=b.last_report, reason=b.disabled_reason) for b in backends]
        out += _schedulers(backends)
        now = self._clock()
        with self._db.read() as s:
            for row in share_services.list_(s, binary=API):
                out.append(_view(API, row.host, zone=row.availability_zone, disabled=False,
                                 alive=now - row.updated_at <= self._stale_after, updated_at=row.updated_at))
        return sorted(out, key=lambda v: (v.binary, v.host))

    def list(self, caller: Caller, filters: Mapping[str, str]) -> list[ServiceView]:
        """Every service; each of Manila's filters present keeps the services
        whose field equals its value (an unknown value keeps none). Other
        query keys are ignored, as Manila ignores them."""
        policy.enforce(caller, "service:index")
        wanted = {k: filters[k] for k in FILTERS if k in filters}
        return [v for v in self._all() if all(v.as_filterable()[k] == value for k, value in wanted.items())]

    def set_disabled(self, caller: Caller, host, binary, disabled: bool, *,
                     reason: str | None = None) -> ServiceView:
        """Manila's ``PUT /services/disable|enable``: only a share service
        (``manila-share``, ``host@backend``) can be disabled; it then gets no
        new shares (the same as ``shareflow backend disable``)."""
        policy.enforce(caller, "service:update")
        if not isinstance(host, str) or not isinstance(binary, str):
            raise InvalidInput("host and binary must be strings")
        found = next((v for v in self._all() if v.host == host and v.binary == binary), None)
        if found is None:
            raise NotFound(f"no service {binary} on {host}",
                           user_message=f"Could not find binary {binary} on host {host}.")
        if binary != SHARE:
            raise InvalidInput(f"{binary} cannot be disabled",
                               user_message=f"Only share services ({SHARE}) can be disabled or enabled: "
                                            f"{binary} on {host} is not one.")
        backend = self._backends.disable(host, reason=reason) if disabled else self._backends.enable(host)
        return _view(SHARE, backend.host, zone=backend.availability_zone, disabled=backend.disabled,
                     alive=backend.alive, updated_at=backend.last_report, reason=backend.disabled_reason)
