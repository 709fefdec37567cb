"""The share-driver registry: a backend's ``share_driver`` names an entry that
gives its configuration table (typed at start-up), its pool preparation and
its driver class; ``build_backend`` builds whatever the entry names, so a
third driver is one module that registers itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from shareflow import config
from shareflow.config import BtrfsConfig, ImageConfig
from shareflow.drivers.base import ShareDriver
from shareflow.drivers.registry import build_backend
from shareflow.drivers.share import registry
from shareflow.drivers.share.btrfs import BtrfsShareDriver
from shareflow.drivers.share.xfs_image import XfsImageShareDriver
from shareflow.exceptions import ConfigError


def parse(*backends: dict) -> config.Config:
    return config.parse({"backends": list(backends)}, Path("/srv/sf/etc/shareflow.toml"))


def test_both_drivers_are_registered_with_their_tables_and_classes():
    assert {"btrfs", "image"} <= set(registry.names())
    assert registry.get("btrfs").driver is BtrfsShareDriver and registry.get("btrfs").section == "btrfs"
    assert registry.get("image").driver is XfsImageShareDriver and registry.get("image").section == "image"
    with pytest.raises(ConfigError, match="unknown share driver 'lvm'"):
        registry.get("lvm")


def test_btrfs_stays_the_default_and_its_table_where_it_was():
    (b,) = parse({"name": "local", "btrfs": {"image": "pool.img"}}).backends
    assert b.share_driver == "btrfs" and isinstance(b.btrfs, BtrfsConfig)
    assert b.share_config is b.btrfs and b.driver_config is None
    assert b.btrfs.image == Path("/srv/sf/etc/pool.img")


def test_an_image_backend_has_its_own_typed_table_with_named_defaults():
    (b,) = parse({"name": "bulk", "share_driver": "image", "image": {"image": "bulk.img"}}).backends
    cfg = b.share_config
    assert isinstance(cfg, ImageConfig) and b.btrfs is None
    assert cfg.image == Path("/srv/sf/etc/bulk.img")
    assert cfg.mount_point == Path("/srv/sf/etc/var/backends/bulk/pool")
    assert cfg.exports_dir == Path("/srv/sf/etc/var/backends/bulk/exports")
    assert cfg.image_size_gb == config.DEFAULT_POOL_IMAGE_GB
    assert cfg.max_loop_devices == config.DEFAULT_MAX_LOOP_DEVICES


@pytest.mark.parametrize("backend,match", [
    ({"name": "a", "share_driver": "lvm"}, r"share_driver: 'lvm' is not one of \('btrfs', 'image'\)"),
    ({"name": "a", "share_driver": "image", "btrfs": {}}, "btrfs: applies only to backends with share_driver = 'btrfs'"),
    ({"name": "a", "image": {}}, "image: applies only to backends with share_driver = 'image'"),
    ({"name": "a", "share_driver": "image", "image": {"quota": 1}}, r"image: unknown setting\(s\): quota"),
    ({"name": "a", "share_driver": "image", "image": {"max_loop_devices": 0}}, "outside"),
])
def test_wrong_driver_tables_are_refused_at_start_up(backend, match):
    with pytest.raises(ConfigError, match=match):
        parse(backend)


def test_build_backend_takes_the_class_from_the_registry():
    btrfs_b, image_b = parse({"name": "fast"}, {"name": "bulk", "share_driver": "image"}).backends
    assert type(build_backend(btrfs_b, step_timeout=5).share) is BtrfsShareDriver
    assert type(build_backend(image_b, step_timeout=5).share) is XfsImageShareDriver


def test_capabilities_differ_where_the_drivers_do():
    btrfs_caps, image_caps = registry.capabilities_of("btrfs"), registry.capabilities_of("image")
    assert btrfs_caps["revert_to_snapshot_support"] and btrfs_caps["shrink_support"]
    assert not image_caps["revert_to_snapshot_support"] and not image_caps["shrink_support"]
    assert image_caps["filesystem"] == "xfs" and btrfs_caps["filesystem"] == "btrfs"
    assert (btrfs_caps["share_driver"], image_caps["share_driver"]) == ("btrfs", "image")


class _ThirdDriver(ShareDriver):
    """Only the registry's plumbing is under test: nothing is called."""

    CAPABILITIES = {"share_driver": "third"}

    def __init__(self, cfg, *, timeout):
        self.cfg = cfg

    create_volume = delete_volume = volume_path = list_volumes = create_snapshot = None
    delete_snapshot = list_snapshots = create_volume_from_snapshot = revert_to_snapshot = None
    capacity = ensure_volumes = resize_volume = used_bytes = None


def test_a_third_driver_is_one_registration():
    kind = registry.ShareDriverKind(
        name="third", section="third", parse=lambda s, d: {"where": s.str("where", str(d))},
        driver=_ThirdDriver, prepare_pool=lambda cfg, timeout: None)
    registry.register(kind)
    try:
        (b,) = parse({"name": "t", "share_driver": "third", "third": {"where": "/x"}}).backends
        assert b.share_config == {"where": "/x"}
        share = build_backend(b, step_timeout=5).share
        assert isinstance(share, _ThirdDriver) and share.cfg == {"where": "/x"}
        with pytest.raises(ConfigError, match="third: applies only"):
            parse({"name": "t", "third": {}})
    finally:
        del registry._kinds["third"]
