"""What the scheduler sees: Manila's ``GET /scheduler-stats/pools`` (admins;
manila/api/v2/scheduler_stats.py and the scheduler's ``get_pools``).

The pools are the conductors' reports the scheduler would place on now:
reported within ``stale_after`` by an enabled share service (Manila's host
manager skips services that are down or disabled). Each is Manila's
``{name: host@backend#pool, host, backend, pool, capabilities}``.

Filters, as Manila applies them: ``host``, ``backend`` and ``pool`` are
regular expressions matched at the start of the pool's value; from 2.23 a
``share_type`` (name or id; 400 when there is none) filters by its extra
specs as capabilities; ``capabilities`` (a dict) likewise (Manila's
``capabilities_satisfied``: :func:`shareflow.scheduler.capabilities.satisfied`). Any other key
is not a key of a pool, so no pool passes it (Manila's ``_passes_filters``);
before 2.23 that includes ``share_type``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shareflow import policy
from shareflow.db import share_types as types_db
from shareflow.db.engine import Database
from shareflow.exceptions import InvalidInput, NotFound
from shareflow.scheduler import capabilities
from shareflow.scheduler.pool_state import PoolState
from shareflow.scheduler.scheduler import Scheduler
from shareflow.services.context import Caller

REGEX_FILTERS = ("host", "backend", "pool")
MAX_FILTER = 255


def pool_dict(pool: PoolState) -> dict:
    return {"name": pool.host, "host": pool.service_host, "backend": pool.backend, "pool": pool.pool,
            "capabilities": dict(pool.capabilities)}


def _regex(value: str, name: str) -> re.Pattern:
    if not isinstance(value, str) or len(value) > MAX_FILTER or "\x00" in value:
        raise InvalidInput(f"Invalid {name} filter.")
    try:
        return re.compile(value)
    except re.error:
        raise InvalidInput(f"Invalid {name} filter: not a regular expression.") from None


class SchedulerStatsService:
    def __init__(self, db: Database, scheduler: Scheduler):
        self._db = db
        self._scheduler = scheduler

    def pools(self, caller: Caller, filters: Mapping[str, Any], *, action: str = "index",
              share_type_filter: bool = True) -> list[dict]:
        """The pools the scheduler sees, Manila's filters applied.
        ``filters['capabilities']`` is a dict (the API parses it);
        ``share_type_filter``: the microversion knows ``share_type`` (2.23)."""
        policy.enforce(caller, f"scheduler_stats:pools:{action}")
        filters = dict(filters)
        wanted_caps: dict[str, str] = {}
        with self._db.read() as s:
            if share_type_filter and filters.get("share_type"):
                ref = filters.pop("share_type")
                try:
                    stype = types_db.get_by_name_or_id(s, ref)
                except NotFound:
                    raise InvalidInput(f"Share type {ref} not found.") from None
                wanted_caps.update(stype.specs())
            elif share_type_filter:
                filters.pop("share_type", None)
            pools = [p for p in self._scheduler.pools(s) if p.enabled]
        if "capabilities" in filters:
            caps = filters.pop("capabilities")
            if not isinstance(caps, Mapping):
                raise InvalidInput("Invalid capabilities filter.")
            wanted_caps.update(caps)
        patterns = {key: _regex(filters.pop(key), key) for key in REGEX_FILTERS if key in filters}
        if filters:
            return []  # a key no pool has: nothing passes (Manila)
        out = []
        for pool in pools:
            data = pool_dict(pool)
            if all(p.match(data[key] or "") for key, p in patterns.items()) and (
                    not wanted_caps or capabilities.satisfied(pool.capabilities, wanted_caps)):
                out.append(data)
        return sorted(out, key=lambda d: d["name"])
