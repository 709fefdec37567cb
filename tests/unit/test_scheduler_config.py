"""The [scheduler] section: named defaults, validated at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from shareflow import config
from shareflow.exceptions import ConfigError
from shareflow.scheduler.filter_scheduler import FilterScheduler


def parse(section: dict | None, tmp_path: Path) -> config.Config:
    data = {} if section is None else {"scheduler": section}
    return config.parse(data, tmp_path / "shareflow.toml")


def test_defaults(tmp_path):
    s = parse(None, tmp_path).scheduler
    assert s == config.SchedulerConfig()
    # Manila's default list and order, less ShareReplicationFilter.
    assert s.default_filters == ("OnlyHostFilter", "AvailabilityZoneFilter", "CapacityFilter",
                                 "CapabilitiesFilter", "DriverFilter", "CreateFromSnapshotFilter",
                                 "AffinityFilter", "AntiAffinityFilter")
    assert s.default_weighers == ("CapacityWeigher",)
    assert s.capacity_weight_multiplier == 1.0
    assert s.max_attempts == 3
    assert s.pool_stale_after == 90.0
    assert s.placement == config.DEFAULT_PLACEMENT == "api"  # one job per create
    assert s.weigher_specs() == (("CapacityWeigher", 1.0),)
    assert config.Config.__dataclass_fields__["scheduler"].default_factory is config.SchedulerConfig


def test_settings_are_read(tmp_path):
    s = parse({
        "default_filters": ["CapacityFilter", "CapabilitiesFilter"],
        "default_weighers": ["CapacityWeigher", "first_fit"],
        "capacity_weight_multiplier": -1,
        "max_attempts": 1,
        "pool_stale_after": 45.5,
        "placement": "conductor",
    }, tmp_path).scheduler
    assert s.default_filters == ("CapacityFilter", "CapabilitiesFilter")
    assert s.weigher_specs() == (("CapacityWeigher", -1.0), ("first_fit", 1.0))
    assert (s.max_attempts, s.pool_stale_after, s.placement) == (1, 45.5, "conductor")
    scheduler = FilterScheduler.from_config(s)
    assert scheduler.filter_names == ("ServiceEnabledFilter", "RetryFilter", "CapacityFilter", "CapabilitiesFilter")
    assert scheduler.weigher_specs == (("CapacityWeigher", -1.0), ("FirstFitWeigher", 1.0))
    assert parse({"default_weighers": []}, tmp_path).scheduler.weigher_specs() == ()


@pytest.mark.parametrize(
    "section,match",
    [
        ({"default_filters": ["CapacityFilter", "JsonFilter"]}, "unknown filter 'JsonFilter'"),
        ({"default_filters": ["CapacityFilter", "CapacityFilter"]}, "listed twice"),
        ({"default_filters": "CapacityFilter"}, "list of strings"),
        ({"default_filters": [1]}, "list of strings"),
        ({"default_weighers": ["GoodnessWeigher"]}, "unknown weigher 'GoodnessWeigher'"),
        ({"default_weighers": ["first_fit", "FirstFitWeigher"]}, "again"),
        ({"capacity_weight_multiplier": "high"}, "a number"),
        ({"capacity_weight_multiplier": True}, "a number"),
        ({"capacity_weight_multiplier": float("inf")}, "finite"),
        ({"max_attempts": 0}, "outside"),
        ({"max_attempts": 2.5}, "an integer"),
        ({"pool_stale_after": 0}, "greater than"),
        ({"scheduler_max_attempts": 3}, "unknown setting"),
        ({"placement": "scheduler"}, r"scheduler.placement: 'scheduler' is not one of \('api', 'conductor'\)"),
        ({"placement": "API"}, "is not one of"),
        ({"placement": True}, "placement"),
    ],
)
def test_bad_settings_stop_the_service(tmp_path, section, match):
    with pytest.raises(ConfigError, match=match) as e:
        parse(section, tmp_path)
    assert e.value.message.startswith("scheduler")


def test_the_sample_config_documents_the_section():
    root = Path(__file__).resolve().parents[2]
    text = (root / "etc" / "shareflow.toml").read_text()
    assert "[scheduler]" in text
    c = config.load(root / "etc" / "shareflow.toml")
    assert c.scheduler == config.SchedulerConfig()
    readme = (root / "README.md").read_text()
    assert "| `[scheduler]` |" in readme


def test_the_scheduler_boards_fault_plan_is_a_path_for_tests(tmp_path):
    assert parse(None, tmp_path).scheduler.fault_plan is None
    assert parse({"fault_plan": "faults-scheduler.json"}, tmp_path).scheduler.fault_plan == \
        (tmp_path / "faults-scheduler.json").resolve()


def test_no_backend_may_be_named_after_the_schedulers_board(tmp_path):
    """Its legacy bare-name board would be the scheduler's board."""
    data = {"backends": [{"name": "scheduler", "btrfs": {"mount_point": str(tmp_path / "p"),
                                                         "exports_dir": str(tmp_path / "e")}}]}
    with pytest.raises(ConfigError, match="'scheduler' is reserved"):
        config.parse(data, tmp_path / "shareflow.toml")
