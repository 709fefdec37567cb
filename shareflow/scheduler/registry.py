"""Filters and weighers by name: the one place configuration names are
resolved, so an unknown name stops the service at start-up."""

from __future__ import annotations

from collections.abc import Iterable

from shareflow.exceptions import ConfigError
from shareflow.scheduler.filters import FILTERS, BaseFilter
from shareflow.scheduler.weighers import WEIGHERS, BaseWeigher

#: Always applied, first, whatever the configuration lists: a disabled
#: backend gets no new shares, and a reschedule never returns to a pool it
#: already tried (Manila removes disabled services before its filters run).
MANDATORY_FILTERS = ("ServiceEnabledFilter", "RetryFilter")

#: ``scheduler_default_filters``: Manila's default list, in its order,
#: without the filter for what shareflow lacks (replication).
DEFAULT_FILTERS = (
    "OnlyHostFilter",
    "AvailabilityZoneFilter",
    "CapacityFilter",
    "CapabilitiesFilter",
    "DriverFilter",
    "CreateFromSnapshotFilter",
    "AffinityFilter",
    "AntiAffinityFilter",
)
#: ``scheduler_default_weighers``.
DEFAULT_WEIGHERS = ("CapacityWeigher",)


def filter_names() -> tuple[str, ...]:
    return tuple(FILTERS)


def weigher_names() -> tuple[str, ...]:
    return tuple(WEIGHERS)


def check_names(names: Iterable[str], known: Iterable[str], what: str) -> tuple[str, ...]:
    """``names`` as a tuple; ConfigError naming the first unknown or repeated one."""
    known = tuple(known)
    out: list[str] = []
    for name in names:
        if name not in known:
            raise ConfigError(f"unknown {what} {name!r}; known: {', '.join(known)}")
        if name in out:
            raise ConfigError(f"{what} {name!r} is listed twice")
        out.append(name)
    return tuple(out)


def check_filters(names: Iterable[str]) -> tuple[str, ...]:
    return check_names(names, FILTERS, "filter")


def check_weighers(names: Iterable[str]) -> tuple[str, ...]:
    """Also refuses one weigher listed under two of its names (its weight
    would count twice)."""
    names = check_names(names, WEIGHERS, "weigher")
    seen: dict[type[BaseWeigher], str] = {}
    for name in names:
        cls = WEIGHERS[name]
        if cls in seen:
            raise ConfigError(f"weigher {name!r} is {seen[cls]!r} again")
        seen[cls] = name
    return names


def make_filter(name: str) -> BaseFilter:
    check_filters([name])
    return FILTERS[name]()


def make_weigher(name: str, multiplier: float) -> BaseWeigher:
    check_weighers([name])
    return WEIGHERS[name](multiplier)
