"""How much a pool can still take: the arithmetic the CapacityFilter and the
CapacityWeigher share (Manila's ``use_thin_logic``/``thin_provisioning`` and
the free-space formulas of its capacity filter and weigher).

Thick: the space a pool can still give is what is free on disk, but never
more than what is not yet promised to its shares (shareflow does not
overcommit a thick pool, whatever the disk shows), less the reserved
percentage of its total. Thin: a pool may promise up to
``total x max_over_subscription_ratio``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from shareflow.scheduler import extra_specs_ops
from shareflow.scheduler.pool_state import PoolState

THIN_PROVISIONING = "thin_provisioning"
RESERVED_PERCENTAGE = "reserved_percentage"
MAX_OVER_SUBSCRIPTION_RATIO = "max_over_subscription_ratio"
#: Manila's defaults for a driver that does not report them.
DEFAULT_RESERVED_PERCENTAGE = 0.0
DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO = 20.0


class UnknownCapacity(ValueError):
    """A pool reported its capacity figures in a form that cannot be used."""


def use_thin_logic(extra_specs: Mapping[str, str]) -> bool:
    """Whether the share type lets a thin pool over-subscribe: yes unless its
    ``thin_provisioning`` spec (plain or ``capabilities:`` scoped) says false."""
    spec = extra_specs.get(THIN_PROVISIONING)
    if spec is None:
        spec = extra_specs.get(f"capabilities:{THIN_PROVISIONING}")
    if spec is None:
        return True
    plain = extra_specs_ops.bool_from_string(spec, default=None)
    if plain is not None:
        return plain
    return extra_specs_ops.match(True, spec)


def thin_capable(pool: PoolState) -> bool:
    """The pool reports thin provisioning (a bool, or a list holding True)."""
    value = pool.capabilities.get(THIN_PROVISIONING, False)
    values = value if isinstance(value, list) else [value]
    return any(extra_specs_ops.bool_from_string(v) is True for v in values)


def uses_thin(pool: PoolState, extra_specs: Mapping[str, str]) -> bool:
    return thin_capable(pool) and use_thin_logic(extra_specs)


def _number(pool: PoolState, key: str, default: float) -> float:
    raw: Any = pool.capabilities.get(key, default)
    if raw is None:
        raw = default
    if isinstance(raw, bool):
        raise UnknownCapacity(f"{pool.host}: {key} is {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise UnknownCapacity(f"{pool.host}: {key} is {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise UnknownCapacity(f"{pool.host}: {key} is {raw!r}")
    return value


def reserved_fraction(pool: PoolState) -> float:
    return _number(pool, RESERVED_PERCENTAGE, DEFAULT_RESERVED_PERCENTAGE) / 100


def over_subscription_ratio(pool: PoolState) -> float:
    return _number(pool, MAX_OVER_SUBSCRIPTION_RATIO, DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO)


def _figures(pool: PoolState) -> tuple[float, float, float]:
    figures = (pool.total_capacity_gb, pool.free_capacity_gb, pool.allocated_capacity_gb)
    try:
        if any(isinstance(f, bool) for f in figures):
            raise TypeError
        total, free, allocated = (float(f) for f in figures)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UnknownCapacity(f"{pool.host}: capacity not reported ({figures})") from None
    if not all(math.isfinite(f) for f in (total, free, allocated)):
        raise UnknownCapacity(f"{pool.host}: capacity not reported ({figures})")
    return total, free, allocated


def thick_free_gb(pool: PoolState) -> float:
    """What a thick pool can still give (whole GiB, Manila's floor)."""
    total, free, allocated = _figures(pool)
    return math.floor(min(free, total - allocated) - total * reserved_fraction(pool))


def virtual_free_gb(pool: PoolState) -> float:
    """What a thin pool can still promise (whole GiB): its over-subscribed
    size less what it has promised and its reserve."""
    total, _, allocated = _figures(pool)
    reserved = reserved_fraction(pool)
    return math.floor(total * over_subscription_ratio(pool) - allocated - total * reserved)


def can_hold(pool: PoolState, size_gb: float, extra_specs: Mapping[str, str]) -> bool:
    """Whether the pool can take a new share of ``size_gb`` (the CapacityFilter).

    Raises :class:`UnknownCapacity` when the pool's figures are unusable."""
    total, free, allocated = _figures(pool)
    if total <= 0:
        return False
    if uses_thin(pool, extra_specs):
        ratio = over_subscription_ratio(pool)
        if ratio < 1:
            # Manila refuses a thin pool configured below 1: it could promise
            # less than it holds, which is a misconfiguration, not a policy.
            return False
        if (allocated + size_gb) / total > ratio:
            return False
        # Manila's second test: the real free space, scaled by the ratio,
        # must still cover the share.
        real_free = math.floor(free - total * reserved_fraction(pool))
        return real_free * ratio >= size_gb
    return thick_free_gb(pool) >= size_gb
