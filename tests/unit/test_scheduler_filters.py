"""Each scheduler filter, passing and failing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shareflow.scheduler import capabilities as caps
from shareflow.scheduler.filters import (
    FILTERS,
    AffinityFilter,
    AntiAffinityFilter,
    OnlyHostFilter,
    AvailabilityZoneFilter,
    CapabilitiesFilter,
    CapacityFilter,
    CreateFromSnapshotFilter,
    DriverFilter,
    RetryFilter,
    ServiceEnabledFilter,
)
from tests.fixtures.pools import make_pool, make_spec


def test_every_filter_is_registered_under_its_class_name():
    assert {name: cls.__name__ for name, cls in FILTERS.items()} == {n: n for n in FILTERS}
    assert len(FILTERS) == 10


# --- ServiceEnabledFilter / RetryFilter -------------------------------------


def test_disabled_pools_are_dropped():
    f = ServiceEnabledFilter()
    assert f.passes(make_pool(), make_spec())
    assert not f.passes(make_pool(enabled=False), make_spec())


def test_pools_already_tried_are_dropped():
    a, b = make_pool("a"), make_pool("b")
    spec = make_spec(ignore_hosts=frozenset({a.host}))
    assert not RetryFilter().passes(a, spec)
    assert RetryFilter().passes(b, spec)
    assert RetryFilter().passes(a, make_spec())


# --- AvailabilityZoneFilter -------------------------------------------------


def test_availability_zone_of_the_request():
    f = AvailabilityZoneFilter()
    pool = make_pool(az="az1")
    assert f.passes(pool, make_spec())
    assert f.passes(pool, make_spec(availability_zone="az1"))
    assert not f.passes(pool, make_spec(availability_zone="az2"))


@pytest.mark.parametrize("key", ["availability_zones", "capabilities:availability_zones"])
def test_availability_zones_of_the_share_type(key):
    f = AvailabilityZoneFilter()
    spec = make_spec(extra_specs={key: "az1, az3"})
    assert f.passes(make_pool(az="az1"), spec)
    assert f.passes(make_pool(az="az3"), spec)
    assert not f.passes(make_pool(az="az2"), spec)
    # The request's zone and the type's list must both allow the pool.
    assert not f.passes(make_pool(az="az1"), make_spec(availability_zone="az1",
                                                       extra_specs={key: "az3"}))


# --- CapacityFilter ---------------------------------------------------------


def test_thick_pool_needs_the_space_free():
    f = CapacityFilter()
    pool = make_pool(total=100, free=10)
    assert f.passes(pool, make_spec(size=10))
    assert not f.passes(pool, make_spec(size=11))


def test_thick_pool_never_overcommits_what_it_promised():
    # The disk shows 80 GiB free, but 50 of the 100 are promised to shares
    # that have not written their data yet: only 50 can be given.
    f = CapacityFilter()
    pool = make_pool(total=100, free=80, allocated=50)
    assert f.passes(pool, make_spec(size=50))
    assert not f.passes(pool, make_spec(size=51))


def test_thick_pool_keeps_its_reserved_percentage():
    f = CapacityFilter()
    pool = make_pool(total=100, free=30, reserved_percentage=10)
    assert f.passes(pool, make_spec(size=20))
    assert not f.passes(pool, make_spec(size=21))


def test_thin_pool_over_subscribes_up_to_its_ratio():
    f = CapacityFilter()
    # 2.0 x 100 may be promised; 150 already are.
    pool = make_pool(total=100, free=90, allocated=150, thin_provisioning=True, max_over_subscription_ratio=2.0)
    assert f.passes(pool, make_spec(size=50))
    assert not f.passes(pool, make_spec(size=51))
    # Without thin provisioning the same pool has nothing left to promise.
    thick = make_pool(total=100, free=90, allocated=150, thin_provisioning=False, max_over_subscription_ratio=2.0)
    assert not f.passes(thick, make_spec(size=1))


def test_thin_pool_with_a_list_capability():
    pool = make_pool(total=100, free=100, allocated=100, thin_provisioning=[True, False],
                     max_over_subscription_ratio=2.0)
    assert CapacityFilter().passes(pool, make_spec(size=10))


@pytest.mark.parametrize("thin_spec", ["False", "<is> False", "false"])
def test_a_type_that_says_thick_gets_thick_logic_on_a_thin_pool(thin_spec):
    pool = make_pool(total=100, free=90, allocated=150, thin_provisioning=True, max_over_subscription_ratio=2.0)
    spec = make_spec(size=10, extra_specs={"thin_provisioning": thin_spec})
    assert not CapacityFilter().passes(pool, spec)
    scoped = make_spec(size=10, extra_specs={"capabilities:thin_provisioning": thin_spec})
    assert not CapacityFilter().passes(pool, scoped)


@pytest.mark.parametrize("thin_spec", ["True", "<is> True"])
def test_a_type_that_says_thin_gets_thin_logic(thin_spec):
    pool = make_pool(total=100, free=90, allocated=150, thin_provisioning=True, max_over_subscription_ratio=2.0)
    assert CapacityFilter().passes(pool, make_spec(size=10, extra_specs={"thin_provisioning": thin_spec}))


def test_thin_pool_still_needs_real_free_space_times_the_ratio():
    # Manila's second test: floor(free - reserve) x ratio must cover the share.
    pool = make_pool(total=100, free=2, allocated=10, thin_provisioning=True, max_over_subscription_ratio=2.0)
    assert CapacityFilter().passes(pool, make_spec(size=4))
    assert not CapacityFilter().passes(pool, make_spec(size=5))


def test_thin_pool_with_a_ratio_below_one_is_refused():
    pool = make_pool(total=100, free=100, thin_provisioning=True, max_over_subscription_ratio=0.5)
    assert not CapacityFilter().passes(pool, make_spec(size=1))


def test_thin_pool_without_a_reported_ratio_uses_manilas_default():
    pool = make_pool(total=10, free=10, allocated=190, thin_provisioning=True)  # 20.0 by default
    assert CapacityFilter().passes(pool, make_spec(size=10))
    assert not CapacityFilter().passes(pool, make_spec(size=11))


@pytest.mark.parametrize("kwargs", [
    {"total": 0, "free": 0},
    {"total": None},
    {"free": float("nan")},
    {"free": "unknown"},
    {"allocated": True},
    {"reserved_percentage": "lots"},
    {"reserved_percentage": -5},
])
def test_unusable_figures_fail_the_pool(kwargs):
    assert not CapacityFilter().passes(make_pool(**kwargs), make_spec(size=1))


# --- CapabilitiesFilter -----------------------------------------------------


def test_driver_handles_share_servers_is_matched():
    f = CapabilitiesFilter()
    assert f.passes(make_pool(), make_spec(dhss=False))
    assert not f.passes(make_pool(), make_spec(dhss=True))
    assert f.passes(make_pool(driver_handles_share_servers=True), make_spec(dhss=True))


@pytest.mark.parametrize("key", ["snapshot_support", "capabilities:snapshot_support"])
def test_unscoped_and_capabilities_scoped_keys_are_compared(key):
    f = CapabilitiesFilter()
    assert f.passes(make_pool(snapshot_support=True), make_spec(extra_specs={key: "True"}))
    assert not f.passes(make_pool(snapshot_support=False), make_spec(extra_specs={key: "True"}))
    assert f.passes(make_pool(snapshot_support=False), make_spec(extra_specs={key: "False"}))


def test_boolean_specs_are_matched_with_is():
    # A capability reported as a string is still matched by its truth.
    pool = make_pool(revert_to_snapshot_support="true")
    assert CapabilitiesFilter().passes(pool, make_spec(extra_specs={"revert_to_snapshot_support": "True"}))
    spec = make_spec(extra_specs={"revert_to_snapshot_support": "True"})
    assert caps.scheduler_extra_specs(spec)["revert_to_snapshot_support"] == "<is> True"


def test_other_scopes_are_ignored():
    spec = make_spec(extra_specs={"share_type_access:is_public": "nope", "provisioning:max_share_size": "1",
                                  "vendor:option": "x", "availability_zones": "elsewhere",
                                  "capabilities:availability_zones": "elsewhere"})
    assert CapabilitiesFilter().passes(make_pool(), spec)


def test_a_capability_the_pool_does_not_report_fails_it():
    # How a type asks for what only one driver has (Manila's behaviour).
    spec = make_spec(extra_specs={"image_files": "<is> True"})
    assert not CapabilitiesFilter().passes(make_pool(), spec)
    assert CapabilitiesFilter().passes(make_pool(image_files=True), spec)


def test_standard_boolean_capabilities_default_to_false():
    # Manila's driver base reports them false unless the driver says otherwise.
    pool = make_pool()
    bare = replace(pool, capabilities={k: v for k, v in pool.capabilities.items()
                                       if k != "revert_to_snapshot_support"})
    assert CapabilitiesFilter().passes(bare, make_spec(extra_specs={"revert_to_snapshot_support": "False"}))
    assert not CapabilitiesFilter().passes(bare, make_spec(extra_specs={"revert_to_snapshot_support": "True"}))


def test_share_backend_name_and_operators():
    f = CapabilitiesFilter()
    assert f.passes(make_pool("fast"), make_spec(extra_specs={"share_backend_name": "fast"}))
    assert not f.passes(make_pool("bulk"), make_spec(extra_specs={"share_backend_name": "fast"}))
    assert f.passes(make_pool("bulk"), make_spec(extra_specs={"share_backend_name": "<or> fast <or> bulk"}))
    assert f.passes(make_pool(iops=500), make_spec(extra_specs={"capabilities:iops": ">= 400"}))
    assert not f.passes(make_pool(iops=300), make_spec(extra_specs={"capabilities:iops": ">= 400"}))


def test_storage_protocol_defaults_to_the_shares_protocol():
    f = CapabilitiesFilter()
    assert f.passes(make_pool(storage_protocol="NFS_CIFS"), make_spec())
    assert not f.passes(make_pool(storage_protocol="CEPHFS"), make_spec())
    assert f.passes(make_pool(storage_protocol="CEPHFS"), make_spec(share_proto="CEPHFS"))
    # A type that names one decides instead.
    assert f.passes(make_pool(storage_protocol="CEPHFS"),
                    make_spec(extra_specs={"storage_protocol": "CEPHFS"}))


def test_list_capabilities_match_any_value():
    f = CapabilitiesFilter()
    pool = make_pool(storage_protocol=["NFS", "CIFS"], compression=[True, False])
    assert f.passes(pool, make_spec(extra_specs={"compression": "<is> False"}))
    assert f.passes(pool, make_spec(extra_specs={"storage_protocol": "<all-in> nfs cifs"}))
    assert not f.passes(pool, make_spec(extra_specs={"storage_protocol": "<all-in> nfs cephfs"}))


def test_nested_capabilities_scope():
    f = CapabilitiesFilter()
    pool = make_pool(qos={"max_iops": 1000})
    assert f.passes(pool, make_spec(extra_specs={"capabilities:qos:max_iops": ">= 500"}))
    assert not f.passes(pool, make_spec(extra_specs={"capabilities:qos:min_iops": ">= 500"}))


def test_default_qos_type_needs_qos_type_support():
    f = CapabilitiesFilter()
    spec = make_spec(extra_specs={"default_qos_type": "gold"})
    assert not f.passes(make_pool(), spec)
    assert f.passes(make_pool(qos_type_support=True), spec)


def test_a_share_from_a_snapshot_ignores_share_backend_name():
    pool = make_pool("bulk")
    spec = make_spec(extra_specs={"share_backend_name": "fast"}, snapshot_host=pool.host)
    assert CapabilitiesFilter().passes(pool, spec)


# --- DriverFilter -----------------------------------------------------------


def test_a_pool_without_a_filter_function_passes():
    assert DriverFilter().passes(make_pool(), make_spec())


def test_filter_function_over_share_stats_capabilities_and_extra_specs():
    f = DriverFilter()
    pool = make_pool(total=100, filter_function="share.size <= 10 and stats.total_capacity_gb >= 100")
    assert f.passes(pool, make_spec(size=10))
    assert not f.passes(pool, make_spec(size=11))
    pool = make_pool(tier=2, filter_function="capabilities.tier >= extra.min_tier")
    assert f.passes(pool, make_spec(extra_specs={"min_tier": "2"}))
    assert not f.passes(pool, make_spec(extra_specs={"min_tier": "3"}))
    pool = make_pool(filter_function="extra_specs.gold == 'yes' || share.size < 2")
    assert f.passes(pool, make_spec(size=5, extra_specs={"gold": "yes"}))
    assert f.passes(pool, make_spec(size=1, extra_specs={"gold": "no"}))
    assert not f.passes(pool, make_spec(size=5, extra_specs={"gold": "no"}))


@pytest.mark.parametrize("function", [
    "extra.missing > 1",                      # a name the request does not have
    "share.size >",                           # malformed
    "__import__('os').system('true')",        # refused
    "1 / 0",                                  # fails when evaluated
])
def test_a_filter_function_in_error_fails_the_pool(function):
    assert not DriverFilter().passes(make_pool(filter_function=function), make_spec())


# --- CreateFromSnapshotFilter -----------------------------------------------


def test_share_from_snapshot_stays_on_the_snapshots_pool():
    f = CreateFromSnapshotFilter()
    here = make_pool("a")
    same_backend_other_pool = make_pool("a", pool="pool1")
    other_host = make_pool("a", service_host="h2")
    spec = make_spec(snapshot_host=here.host)
    assert f.passes(here, spec)
    assert not f.passes(same_backend_other_pool, spec)
    assert not f.passes(other_host, spec)
    # Not from a snapshot: every pool.
    assert f.passes(other_host, make_spec())


# --- AffinityFilter / AntiAffinityFilter / OnlyHostFilter (scheduler_hints) --


def test_same_host_keeps_only_the_pools_of_the_named_shares():
    a, b = make_pool("a"), make_pool("b")
    f = AffinityFilter()
    assert f.passes(a, make_spec()) and f.passes(b, make_spec())  # no hint: every pool
    spec = make_spec(same_host=frozenset({a.host}))
    assert f.passes(a, spec) and not f.passes(b, spec)
    # The named shares are on no common pool (or gone): no pool at all.
    assert not f.passes(a, make_spec(same_host=frozenset()))


def test_different_host_drops_the_pools_of_the_named_shares():
    a, b = make_pool("a"), make_pool("b")
    f = AntiAffinityFilter()
    assert f.passes(a, make_spec()) and f.passes(b, make_spec())
    spec = make_spec(different_host=frozenset({a.host}))
    assert not f.passes(a, spec) and f.passes(b, spec)


def test_only_host_names_a_pool_or_a_backend():
    a0, a1, b = make_pool("a", pool="p0"), make_pool("a", pool="p1"), make_pool("b")
    f = OnlyHostFilter()
    assert all(f.passes(p, make_spec()) for p in (a0, a1, b))
    pool_spec = make_spec(only_host=a1.host)
    assert [f.passes(p, pool_spec) for p in (a0, a1, b)] == [False, True, False]
    backend_spec = make_spec(only_host=a0.backend_host)
    assert [f.passes(p, backend_spec) for p in (a0, a1, b)] == [True, True, False]
