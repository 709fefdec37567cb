"""The weighers: capacity (spread, stack, thin), first fit, normalisation."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from shareflow.scheduler.filter_scheduler import FilterScheduler
from shareflow.scheduler.weighers import WEIGHERS, CapacityWeigher, FirstFitWeigher, normalize
from tests.fixtures.pools import make_pool, make_spec


def hosts(pools):
    return [p.backend for p in pools]


def test_weighers_by_name():
    assert WEIGHERS == {"CapacityWeigher": CapacityWeigher, "FirstFitWeigher": FirstFitWeigher,
                        "first_fit": FirstFitWeigher}


def test_normalize():
    assert normalize([]) == []
    assert normalize([5, 5]) == [0.0, 0.0]
    assert normalize([10, 20, 15]) == [0.0, 1.0, 0.5]
    # Unknown weights sort just outside the known ones.
    assert normalize([-math.inf, 10, 20]) == [0.0, pytest.approx(1 / 11), 1.0]
    assert normalize([math.inf, 10, 20]) == [1.0, 0.0, pytest.approx(10 / 11)]


def test_capacity_weigher_raw_weights_thick_and_thin():
    thick = make_pool("thick", total=100, free=80, allocated=50, reserved_percentage=10)
    thin = make_pool("thin", total=100, free=80, allocated=150, thin_provisioning=True,
                     max_over_subscription_ratio=2.0, reserved_percentage=10)
    weights = CapacityWeigher().weigh([thick, thin], make_spec())
    # thick: min(80, 100 - 50) - 10 = 40; thin: 100 x 2 - 150 - 10 = 40.
    assert weights == [40.0, 40.0]
    # A type that says thick weighs the thin pool by its real room.
    assert CapacityWeigher().weigh([thin], make_spec(extra_specs={"thin_provisioning": "False"})) == [-60.0]


def test_capacity_weigher_puts_unusable_figures_last_whatever_the_sign():
    broken = make_pool("broken", total=None)
    assert CapacityWeigher(1.0).weigh([broken], make_spec()) == [-math.inf]
    assert CapacityWeigher(-1.0).weigh([broken], make_spec()) == [math.inf]
    pools = [broken, make_pool("small", free=10), make_pool("big", free=90)]
    spread = FilterScheduler([], [("CapacityWeigher", 1.0)])
    stack = FilterScheduler([], [("CapacityWeigher", -1.0)])
    assert hosts(spread.rank(pools, make_spec())) == ["big", "small", "broken"]
    assert hosts(stack.rank(pools, make_spec())) == ["small", "big", "broken"]


def test_positive_multiplier_spreads_negative_stacks():
    pools = [make_pool("a", free=30), make_pool("b", free=70), make_pool("c", free=50)]
    spread = FilterScheduler([], [("CapacityWeigher", 1.0)])
    stack = FilterScheduler([], [("CapacityWeigher", -1.0)])
    assert hosts(spread.rank(pools, make_spec())) == ["b", "c", "a"]
    assert hosts(stack.rank(pools, make_spec())) == ["a", "c", "b"]


def test_spreading_over_successive_shares():
    # Two equal pools: each share placed makes the other one the better choice.
    pools = {"a": make_pool("a", free=100), "b": make_pool("b", free=100)}
    scheduler = FilterScheduler(["CapacityFilter"], [("CapacityWeigher", 1.0)])
    placed = []
    for _ in range(4):
        best = scheduler.select(list(pools.values()), make_spec(size=10))
        placed.append(best.backend)
        pools[best.backend] = replace(best, allocated_capacity_gb=best.allocated_capacity_gb + 10)
    assert placed == ["a", "b", "a", "b"]


def test_first_fit_follows_configured_order_then_host_name():
    pools = [make_pool("c", order=2), make_pool("a", order=1, service_host="h2"),
             make_pool("b", order=1, service_host="h1"), make_pool("z", order=0, free=1)]
    for name in ("first_fit", "FirstFitWeigher"):
        scheduler = FilterScheduler([], [(name, 1.0)])
        assert hosts(scheduler.rank(pools, make_spec())) == ["z", "b", "a", "c"]


def test_first_fit_ignores_free_space_but_filters_still_apply():
    pools = [make_pool("first", order=0, free=5), make_pool("second", order=1, free=90)]
    scheduler = FilterScheduler(["CapacityFilter"], [("first_fit", 1.0)])
    assert scheduler.select(pools, make_spec(size=5)).backend == "first"
    assert scheduler.select(pools, make_spec(size=6)).backend == "second"


def test_weighers_add_up_with_their_multipliers():
    # "a" is first in order but small; "b" big: the multipliers decide.
    pools = [make_pool("a", order=0, free=10), make_pool("b", order=1, free=90)]
    capacity_wins = FilterScheduler([], [("CapacityWeigher", 2.0), ("first_fit", 1.0)])
    order_wins = FilterScheduler([], [("CapacityWeigher", 1.0), ("first_fit", 2.0)])
    assert hosts(capacity_wins.rank(pools, make_spec())) == ["b", "a"]
    assert hosts(order_wins.rank(pools, make_spec())) == ["a", "b"]
    weighed = capacity_wins.decide(pools, make_spec()).ranked
    assert [w.weight for w in weighed] == [2.0, 1.0]


def test_ties_are_broken_by_pool_name_whatever_the_input_order():
    pools = [make_pool("b"), make_pool("a"), make_pool("c")]
    scheduler = FilterScheduler([], [("CapacityWeigher", 1.0)])
    assert hosts(scheduler.rank(pools, make_spec())) == ["a", "b", "c"]
    assert hosts(scheduler.rank(list(reversed(pools)), make_spec())) == ["a", "b", "c"]
