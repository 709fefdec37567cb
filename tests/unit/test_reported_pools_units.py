"""The pure parts of reported pools and per-host boards: what a conductor
reports of a backend, which boards it serves and how a job's backend
resolves on it, board keys, and where an existing share is."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from shareflow.drivers.registry import build_backend
from shareflow.drivers.share.btrfs import BtrfsShareDriver
from shareflow.engine.reports import pool_capabilities
from shareflow.engine.runtime import Runtime
from shareflow.engine.worker import board_checkpoints, board_keys, conductor_label
from shareflow.engine.zk import board_path
from shareflow.exceptions import ConfigError
from shareflow.scheduler.scheduler import Placement
from tests.api.conftest import make_config


@pytest.fixture
def config(tmp_path):
    return make_config(tmp_path, "127.0.0.1:1", "/x", with_backend=True)


def test_a_btrfs_backend_reports_btrfs_capabilities(config):
    backend = build_backend(config.backends[0], step_timeout=5)
    caps = pool_capabilities(backend)
    assert (caps["snapshot_support"], caps["create_share_from_snapshot_support"],
            caps["revert_to_snapshot_support"], caps["shrink_support"]) == (True, True, True, True)
    assert (caps["share_backend_name"], caps["storage_protocol"], caps["driver_name"], caps["vendor_name"]) == (
        "b1", "NFS", "BtrfsShareDriver", "shareflow")
    assert (caps["reserved_percentage"], caps["max_over_subscription_ratio"]) == (0, 1.0)
    assert caps["driver_handles_share_servers"] is False


def test_a_driver_with_its_own_capabilities_reports_them(config):
    class Thin(BtrfsShareDriver):
        def capabilities(self) -> dict:
            return {"thin_provisioning": True, "max_over_subscription_ratio": 2.0,
                    "driver_handles_share_servers": True, "snapshot_support": False}

    backend = build_backend(config.backends[0], step_timeout=5)
    backend = dataclasses.replace(backend, share=Thin(config.backends[0].share_config, timeout=5))
    caps = pool_capabilities(backend)
    assert (caps["thin_provisioning"], caps["max_over_subscription_ratio"], caps["snapshot_support"]) == (
        True, 2.0, False)
    # The configuration decides the mode; the keys every pool has are filled in.
    assert caps["driver_handles_share_servers"] is False
    assert (caps["share_backend_name"], caps["driver_name"]) == ("b1", "Thin")


def test_a_conductor_serves_its_hosts_boards_the_legacy_ones_and_the_schedulers(config):
    # Every host's conductors serve the scheduler's board: placing needs only the database.
    assert board_keys(config) == {"testhost@b1": "b1", "b1": "b1", "scheduler": "scheduler"}
    # A legacy board is served only where ZooKeeper has it (an upgraded host).
    assert board_keys(config, existing={"testhost@b1", "otherhost@b1"}) == {"testhost@b1": "b1",
                                                                           "scheduler": "scheduler"}
    assert board_keys(config, existing={"b1"}) == {"testhost@b1": "b1", "b1": "b1", "scheduler": "scheduler"}
    assert [conductor_label(k, b) for k, b in board_keys(config).items()] == ["b1", "legacy-b1", "scheduler"]
    # Its test checkpoints follow [scheduler] fault_plan, a backend's its own.
    assert not board_checkpoints(config, "scheduler", "scheduler").active
    runtime = Runtime(config=config, db=None, backends={"b1": "drivers of b1"}, locks=None, recorder=None,
                      clock=None)
    assert runtime.backend("testhost@b1") == runtime.backend("b1") == "drivers of b1"
    with pytest.raises(ConfigError, match="another host"):
        runtime.backend("otherhost@b1")
    with pytest.raises(ConfigError, match="not configured"):
        runtime.backend("testhost@b2")


def test_board_keys_are_path_components():
    assert board_path("/sf", "h@b") == "/sf/jobboards/h@b/jobs"
    assert board_path("/sf", "b") == "/sf/jobboards/b/jobs"
    for bad in ("", "h@b/x"):
        with pytest.raises(ValueError):
            board_path("/sf", bad)


def test_placement_of_a_share_is_its_host():
    share = SimpleNamespace(host="h@b#p", share_network_id="net", availability_zone="nova")
    p = Placement.of_share(share)
    assert (p.host, p.service_host, p.backend, p.backend_host, p.driver_handles_share_servers) == (
        "h@b#p", "h", "b", "h@b", True)
    assert Placement.of_share(SimpleNamespace(host=None, share_network_id=None, availability_zone=None)) is None


def test_the_backends_capacity_policy_is_reported_over_the_drivers(tmp_path):
    config = make_config(tmp_path, "127.0.0.1:1", "/x", with_backend=True)
    cfg = dataclasses.replace(config.backends[0], max_over_subscription_ratio=2.5, reserved_percentage=10,
                              thin_provisioning=False, filter_function="share.size <= 5")
    caps = pool_capabilities(build_backend(cfg, step_timeout=5))
    assert (caps["max_over_subscription_ratio"], caps["reserved_percentage"], caps["thin_provisioning"],
            caps["filter_function"]) == (2.5, 10, False, "share.size <= 5")
