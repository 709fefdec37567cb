"""What the scheduler sees: Manila's ``GET /scheduler-stats/pools`` (admins;
manila/api/v2/scheduler_stats.py and the scheduler's ``get_pools``).

The pools are the conductors' reports the scheduler would place on now:
reported within ``stale_after`` by an enabled share service (Manila's host
manager skips services that are down or disabled). Each is Manila's
``{name: host@backend#pool, host, backend, pool, capabilities}``.

Filters, as Manila applies them: ``host``, ``backend`` and ``pool`` are
regular expressions matched at the start of the pool's value; from 2.23 a
``share_type`` (name or id; 400 when there is none) filters by its extra
specs as capabilities; ``capabilities`` (a dict) likewise. Any other key
is not a key of a pool, so no pool passes it (Manila's ``_passes_filters``);
before 2.23 that includes ``share_type``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from shareflow.db import share_types as types_db
from shareflow.db.engine import Database
from shareflow.exceptions import Forbidden, InvalidInput, NotFound
from shareflow.scheduler.pool_state import PoolState
from shareflow.scheduler.scheduler import Scheduler
from shareflow.services.context import Caller

REGEX_FILTERS = ("host", "backend", "pool")
#: Extra specs that say where, not what (Manila's CapabilitiesFilter ignores them).
IGNORED_SPECS = frozenset({"availability_zones", "capabilities:availability_zones"})
MAX_FILTER = 255


def _require_admin(caller: Caller, action: str) -> None:
    if not caller.is_admin:
        raise Forbidden(f"scheduler_stats:pools:{action} by a non-admin",
                        user_message=f"Policy doesn't allow scheduler_stats:pools:{action} to be performed.")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _bool_word(text: str) -> bool | None:
    return {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}.get(text)


def _float_op(fn: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
    def compare(value: str, wanted: str) -> bool:
        try:
            return fn(float(value), float(wanted))
        except ValueError:
            return False
    return compare


#: Manila's extra-spec operators (manila/scheduler/filters/extra_specs_ops.py).
OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "=": _float_op(operator.ge), "==": _float_op(operator.eq), "!=": _float_op(operator.ne),
    ">=": _float_op(operator.ge), "<=": _float_op(operator.le),
    "s==": operator.eq, "s!=": operator.ne, "s<": operator.lt, "s<=": operator.le,
    "s>": operator.gt, "s>=": operator.ge,
    "<in>": lambda value, wanted: wanted in value,
    "<is>": lambda value, wanted: _bool_word(value) is not None and _bool_word(value) == _bool_word(wanted),
}


def spec_matches(value: Any, wanted: str) -> bool:
    """One capability value against one extra spec (case-insensitive, as
    Manila's); a boolean capability matches ``True``/``False`` words."""
    text, wanted = _as_text(value), str(wanted).lower()
    words = wanted.split()
    op = words[0] if words else None
    if op == "<or>":
        return text in words[1::2]
    method = OPERATORS.get(op) if op else None
    if method is None:
        if isinstance(value, bool) and _bool_word(wanted) is not None:
            return value == _bool_word(wanted)
        return text == wanted
    return len(words) > 1 and method(text, words[1])


def capabilities_satisfied(capabilities: Mapping[str, Any], specs: Mapping[str, str]) -> bool:
    """Manila's ``capabilities_satisfied``: every unscoped or ``capabilities:``
    extra spec is met by the capability of its name (a list: by one of its
    values); other scopes are not capabilities and are ignored."""
    for key, wanted in specs.items():
        if key in IGNORED_SPECS:
            continue
        scope = key.split(":")
        if len(scope) > 1 and scope[0] != "capabilities":
            continue
        if scope[0] == "capabilities":
            scope = scope[1:]
        cap: Any = capabilities
        for part in scope:
            cap = cap.get(part) if isinstance(cap, Mapping) else None
            if cap is None:
                return False
        values = cap if isinstance(cap, list) else [cap]
        if not any(spec_matches(v, wanted) for v in values):
            return False
    return True


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
        _require_admin(caller, action)
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
                    not wanted_caps or capabilities_satisfied(pool.capabilities, wanted_caps)):
                out.append(data)
        return sorted(out, key=lambda d: d["name"])
