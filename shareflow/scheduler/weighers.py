"""The scheduler's weighers: each gives every candidate pool a raw weight.

As in Manila (``manila/scheduler/weighers/base.py``), the scheduler
normalises each weigher's weights to 0..1 across the candidates (all equal:
all 0), multiplies them by the weigher's multiplier and adds them up; the
highest total wins. A positive multiplier prefers what the weigher scores
high, a negative one what it scores low.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from shareflow.scheduler import capacity
from shareflow.scheduler.pool_state import PoolState, RequestSpec


class BaseWeigher:
    #: The name the configuration uses (Manila's class name).
    name: ClassVar[str] = ""
    #: Other names the configuration accepts for it.
    aliases: ClassVar[tuple[str, ...]] = ()

    def __init__(self, multiplier: float = 1.0):
        self.multiplier = float(multiplier)

    def weigh(self, pools: Sequence[PoolState], spec: RequestSpec) -> list[float]:
        """Raw weights, one per pool (higher is better before the multiplier).
        ``-inf``/``inf`` mean "unknown": normalisation puts them just below the
        lowest/above the highest known weight."""
        raise NotImplementedError


class CapacityWeigher(BaseWeigher):
    """Free capacity: what a thick pool can still give, or for a thin pool
    the over-subscribed (virtual) free space (``shareflow.scheduler.capacity``).
    The default multiplier 1.0 spreads shares over pools; a negative one
    stacks them (fills the fullest pool first). A pool whose figures are
    unusable sorts last either way."""

    name = "CapacityWeigher"

    def weigh(self, pools: Sequence[PoolState], spec: RequestSpec) -> list[float]:
        return [self._weigh_one(pool, spec) for pool in pools]

    def _weigh_one(self, pool: PoolState, spec: RequestSpec) -> float:
        try:
            if capacity.uses_thin(pool, spec.extra_specs):
                return float(capacity.virtual_free_gb(pool))
            return float(capacity.thick_free_gb(pool))
        except capacity.UnknownCapacity:
            return -math.inf if self.multiplier > 0 else math.inf


class FirstFitWeigher(BaseWeigher):
    """The seed's first-fit policy: the configured order of backends
    (``PoolState.config_order``, lower first), then the pool's name so that
    hosts configured alike are ordered the same way by every scheduler."""

    name = "FirstFitWeigher"
    aliases = ("first_fit",)

    def weigh(self, pools: Sequence[PoolState], spec: RequestSpec) -> list[float]:
        order = sorted(range(len(pools)), key=lambda i: (pools[i].config_order, pools[i].host))
        weights = [0.0] * len(pools)
        for rank, i in enumerate(order):
            weights[i] = -float(rank)
        return weights


def normalize(weights: Sequence[float]) -> list[float]:
    """Weights scaled to 0..1 (Manila's ``normalize``), unknown (infinite)
    weights first replaced by one below the lowest / above the highest known."""
    if not weights:
        return []
    known = [w for w in weights if math.isfinite(w)]
    low = min(known) if known else 0.0
    high = max(known) if known else 0.0
    values = [low - 1 if w == -math.inf else high + 1 if w == math.inf else w for w in weights]
    lo, hi = min(values), max(values)
    if lo == hi:
        return [0.0] * len(values)
    return [(v - lo) / (hi - lo) for v in values]


#: Every weigher, by each of its names.
WEIGHERS: dict[str, type[BaseWeigher]] = {
    alias: cls
    for cls in (CapacityWeigher, FirstFitWeigher)
    for alias in (cls.name, *cls.aliases)
}
