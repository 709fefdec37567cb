"""The filter scheduler's order of decisions, and NoValidHost."""

from __future__ import annotations

import pytest

from shareflow import exceptions
from shareflow.exceptions import ConfigError, NoValidHost
from shareflow.scheduler import registry
from shareflow.scheduler.filter_scheduler import FilterScheduler
from tests.fixtures.pools import make_pool, make_spec

DEFAULT = FilterScheduler(registry.DEFAULT_FILTERS, [("CapacityWeigher", 1.0)])


def backends(pools):
    return [p.backend for p in pools]


def test_mandatory_filters_run_first_and_once():
    s = FilterScheduler(["CapacityFilter", "RetryFilter"], [])
    assert s.filter_names == ("ServiceEnabledFilter", "RetryFilter", "CapacityFilter")
    assert DEFAULT.filter_names == ("ServiceEnabledFilter", "RetryFilter", *registry.DEFAULT_FILTERS)


def test_filters_before_weighers():
    # The roomiest pool cannot do snapshots: the weigher never sees it, and the
    # survivors' weights are normalised among themselves.
    pools = [make_pool("huge", free=1000, total=1000, snapshot_support=False),
             make_pool("mid", free=60), make_pool("small", free=20)]
    spec = make_spec(extra_specs={"snapshot_support": "True"})
    decision = DEFAULT.decide(pools, spec)
    assert backends(w.pool for w in decision.ranked) == ["mid", "small"]
    assert [w.weight for w in decision.ranked] == [1.0, 0.0]
    assert decision.removed == {"CapabilitiesFilter": (pools[0].host,)}
    assert decision.last_filter is None and decision.considered == 3
    assert DEFAULT.select(pools, spec).backend == "mid"


def test_filters_run_in_order_and_stop_when_none_is_left():
    pools = [make_pool("a", az="az1", free=5), make_pool("b", az="az2", free=50)]
    spec = make_spec(size=10, availability_zone="az1")
    decision = DEFAULT.decide(pools, spec)
    assert decision.ranked == ()
    assert decision.last_filter == "CapacityFilter"
    # The zone filter ran first (it removed b); nothing ran after CapacityFilter.
    assert list(decision.removed) == ["AvailabilityZoneFilter", "CapacityFilter"]


def test_no_valid_host_names_the_filter_that_removed_the_last_pools():
    pools = [make_pool("a", free=5), make_pool("b", free=50, snapshot_support=False)]
    with pytest.raises(NoValidHost) as e:
        DEFAULT.select(pools, make_spec(size=10, extra_specs={"snapshot_support": "True"}))
    err = e.value
    assert err.last_filter == "CapabilitiesFilter"
    assert str(err) == ("No valid host was found. Failed to find a weighted host, the last executed "
                        "filter was CapabilitiesFilter.")
    assert err.detail_id == "008"
    assert err.user_message == ("No storage could be allocated for this share request, Capabilities "
                                "filter didn't succeed.")
    assert isinstance(err, exceptions.StorageError)


def test_no_valid_host_by_capacity():
    with pytest.raises(NoValidHost) as e:
        DEFAULT.select([make_pool(free=5)], make_spec(size=10))
    assert e.value.last_filter == "CapacityFilter" and e.value.detail_id == "009"


def test_no_valid_host_without_any_pool():
    with pytest.raises(NoValidHost) as e:
        DEFAULT.select([], make_spec())
    assert e.value.last_filter is None
    assert e.value.detail_id == "002"
    assert e.value.user_message == exceptions.NO_VALID_HOST_MESSAGE
    assert "No valid host was found" in str(e.value)


def test_ignore_hosts_moves_a_reschedule_to_the_next_best_pool():
    pools = [make_pool("a", free=90), make_pool("b", free=60), make_pool("c", free=30)]
    first = DEFAULT.select(pools, make_spec())
    second = DEFAULT.select(pools, make_spec(ignore_hosts=frozenset({first.host})))
    third = DEFAULT.select(pools, make_spec(ignore_hosts=frozenset({first.host, second.host})))
    assert backends([first, second, third]) == ["a", "b", "c"]
    with pytest.raises(NoValidHost) as e:
        DEFAULT.select(pools, make_spec(ignore_hosts=frozenset(p.host for p in pools)))
    assert e.value.last_filter == "RetryFilter" and e.value.detail_id == "013"


def test_ignore_hosts_applies_even_when_not_configured():
    pools = [make_pool("a", free=90), make_pool("b", free=60)]
    s = FilterScheduler([], [("CapacityWeigher", 1.0)])
    assert s.select(pools, make_spec(ignore_hosts=frozenset({pools[0].host}))).backend == "b"


def test_disabled_pools_get_no_new_shares():
    pools = [make_pool("a", free=90, enabled=False), make_pool("b", free=10)]
    assert DEFAULT.rank(pools, make_spec()) == [pools[1]]
    with pytest.raises(NoValidHost) as e:
        DEFAULT.select(pools[:1], make_spec())
    assert e.value.last_filter == "ServiceEnabledFilter"
    assert e.value.detail_id == "002"


def test_types_land_where_their_specs_say():
    # The demonstration, in the small: a btrfs-like pool with revert,
    # an image-like pool with a capability of its own, and a type nothing fits.
    btrfs = make_pool("btrfs", free=50, revert_to_snapshot_support=True)
    image = make_pool("image", free=90, image_files=True)
    fast = make_spec(extra_specs={"snapshot_support": "True", "revert_to_snapshot_support": "True"})
    bulk = make_spec(extra_specs={"image_files": "<is> True"})
    named = make_spec(extra_specs={"share_backend_name": "btrfs"})
    nothing = make_spec(extra_specs={"share_backend_name": "nowhere"})
    assert DEFAULT.select([btrfs, image], fast).backend == "btrfs"
    assert DEFAULT.select([btrfs, image], bulk).backend == "image"
    assert DEFAULT.select([btrfs, image], named).backend == "btrfs"
    with pytest.raises(NoValidHost, match="CapabilitiesFilter"):
        DEFAULT.select([btrfs, image], nothing)


def test_share_from_snapshot_goes_to_the_snapshots_pool_only():
    small, big = make_pool("small", free=20), make_pool("big", free=90)
    spec = make_spec(snapshot_host=small.host, extra_specs={"share_backend_name": "big"})
    assert DEFAULT.rank([small, big], spec) == [small]


def test_rank_is_empty_instead_of_raising():
    assert DEFAULT.rank([make_pool(free=1)], make_spec(size=5)) == []


@pytest.mark.parametrize(
    "filters,weighers,match",
    [
        (["NoSuchFilter"], [], "unknown filter 'NoSuchFilter'"),
        (["CapacityFilter", "CapacityFilter"], [], "listed twice"),
        ([], [("GoodnessWeigher", 1.0)], "unknown weigher 'GoodnessWeigher'"),
        ([], [("first_fit", 1.0), ("FirstFitWeigher", 1.0)], "'FirstFitWeigher' is 'first_fit' again"),
    ],
)
def test_unknown_names_are_config_errors(filters, weighers, match):
    with pytest.raises(ConfigError, match=match):
        FilterScheduler(filters, weighers)


def test_weigher_specs_as_a_mapping():
    s = FilterScheduler([], {"CapacityWeigher": -2.0})
    assert s.weigher_specs == (("CapacityWeigher", -2.0),)
