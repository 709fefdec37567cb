"""The availability zone setting: a named default, validated at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from shareflow.config import DEFAULT_AVAILABILITY_ZONE, parse
from shareflow.exceptions import ConfigError
from shareflow.services.availability_zones import resolve, zone_id


def test_default_is_nova_and_it_can_be_set(tmp_path: Path):
    assert DEFAULT_AVAILABILITY_ZONE == "nova"
    assert parse({}, tmp_path / "c.toml").availability_zone == "nova"
    config = parse({"availability_zone": "az-1"}, tmp_path / "c.toml")
    assert config.availability_zone == "az-1"
    assert resolve(config, None) == resolve(config, "az-1") == resolve(config, zone_id("az-1")) == "az-1"


@pytest.mark.parametrize("bad", ["", " az", "a;b", "x" * 256, 7])
def test_a_bad_zone_stops_the_service(tmp_path: Path, bad):
    with pytest.raises(ConfigError, match="availability_zone"):
        parse({"availability_zone": bad}, tmp_path / "c.toml")


def test_zone_ids_are_stable_and_distinct():
    assert zone_id("nova") == zone_id("nova") != zone_id("nova2")
