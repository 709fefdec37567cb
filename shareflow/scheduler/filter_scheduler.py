"""Manila's filter scheduler: filter the reported pools, then weigh the rest.

Order of decisions, for one request:

1. the mandatory filters (``ServiceEnabledFilter``, ``RetryFilter``), then
   the configured filters, each in turn over the pools the previous ones
   kept; once none is left the rest are not run, and :class:`NoValidHost`
   names the filter that removed the last ones (Manila's "the last executed
   filter was ...");
2. each weigher over the survivors only: its raw weights normalised to 0..1
   across them, times its multiplier, added up;
3. highest total first; equal totals by pool name, so that every scheduler
   process ranks the same pools the same way.

Pure: no I/O, no clock. Which pools are fresh enough to consider (``[scheduler]
pool_stale_after``) is decided by whoever reads the reports.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from shareflow.exceptions import NoValidHost
from shareflow.scheduler import registry
from shareflow.scheduler.filters import BaseFilter
from shareflow.scheduler.pool_state import PoolState, RequestSpec
from shareflow.scheduler.weighers import BaseWeigher, normalize

LOG = logging.getLogger(__name__)

#: Manila's text for a filter that removed the last candidates.
FILTER_MESSAGE = "No storage could be allocated for this share request, {} filter didn't succeed."


@dataclass(frozen=True)
class WeighedPool:
    pool: PoolState
    weight: float


@dataclass(frozen=True)
class Decision:
    """What the scheduler saw and did for one request (for job records)."""

    #: Passing pools, best first, with their total weights.
    ranked: tuple[WeighedPool, ...]
    #: The filter after which no pool was left (None if some passed, or
    #: if there was no pool to start with).
    last_filter: str | None
    #: Pool hosts removed by each filter that removed any, in filter order.
    removed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    considered: int = 0


class FilterScheduler:
    def __init__(self, filter_names: Iterable[str],
                 weigher_specs: Iterable[tuple[str, float]] | Mapping[str, float]):
        """``filter_names`` in the order to run them; ``weigher_specs`` as
        ``(name, multiplier)`` pairs (or a mapping). Unknown or repeated
        names raise ConfigError."""
        names = registry.check_filters(filter_names)
        ordered = registry.MANDATORY_FILTERS + tuple(n for n in names if n not in registry.MANDATORY_FILTERS)
        self._filters: tuple[BaseFilter, ...] = tuple(registry.make_filter(n) for n in ordered)
        specs = list(weigher_specs.items() if isinstance(weigher_specs, Mapping) else weigher_specs)
        registry.check_weighers([n for n, _ in specs])
        self._weighers: tuple[BaseWeigher, ...] = tuple(registry.make_weigher(n, m) for n, m in specs)

    @classmethod
    def from_config(cls, config) -> FilterScheduler:
        """From a ``shareflow.config.SchedulerConfig``."""
        return cls(config.default_filters, config.weigher_specs())

    @property
    def filter_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self._filters)

    @property
    def weigher_specs(self) -> tuple[tuple[str, float], ...]:
        return tuple((w.name, w.multiplier) for w in self._weighers)

    def decide(self, pools: Sequence[PoolState], spec: RequestSpec) -> Decision:
        """Filter, then weigh (see the module docstring)."""
        candidates = sorted(pools, key=lambda p: p.host)
        removed: dict[str, tuple[str, ...]] = {}
        last_filter: str | None = None
        for f in self._filters:
            if not candidates:
                break
            kept = [p for p in candidates if f.passes(p, spec)]
            if len(kept) != len(candidates):
                kept_hosts = {p.host for p in kept}
                removed[f.name] = tuple(p.host for p in candidates if p.host not in kept_hosts)
                LOG.debug("%s removed %s", f.name, ", ".join(removed[f.name]))
            candidates = kept
            if not candidates:
                last_filter = f.name
        return Decision(ranked=tuple(self._weigh(candidates, spec)), last_filter=last_filter,
                        removed=removed, considered=len(pools))

    def _weigh(self, candidates: list[PoolState], spec: RequestSpec) -> list[WeighedPool]:
        totals = [0.0] * len(candidates)
        if candidates:
            for w in self._weighers:
                for i, weight in enumerate(normalize(w.weigh(candidates, spec))):
                    totals[i] += w.multiplier * weight
        # candidates are sorted by host, and sorted() is stable: ties stay by host.
        order = sorted(range(len(candidates)), key=lambda i: -totals[i])
        return [WeighedPool(candidates[i], totals[i]) for i in order]

    def rank(self, pools: Sequence[PoolState], spec: RequestSpec) -> list[PoolState]:
        """The pools that pass every filter, best first (maybe none)."""
        return [w.pool for w in self.decide(pools, spec).ranked]

    def select(self, pools: Sequence[PoolState], spec: RequestSpec) -> PoolState:
        """The best pool; :class:`NoValidHost` when none passes."""
        decision = self.decide(pools, spec)
        if decision.ranked:
            return decision.ranked[0].pool
        raise no_valid_host(decision, self._filters)


def no_valid_host(decision: Decision, filters: Sequence[BaseFilter]) -> NoValidHost:
    if decision.last_filter is None:
        return NoValidHost("No storage pool has been reported by a share service: are the "
                           "conductors running?")
    f = next(f for f in filters if f.name == decision.last_filter)
    message = FILTER_MESSAGE.format(f.detail_word) if f.detail_word else None
    return NoValidHost(
        f"Failed to find a weighted host, the last executed filter was {f.name}.",
        last_filter=f.name, detail_id=f.detail_id, user_message=message,
    )
