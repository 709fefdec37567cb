"""bench/scale.py measures what users run: the configuration that
``tests.fixtures.run_service.RunService`` gives ``shareflow run`` is
``etc/shareflow.toml`` except for its paths, ports, pool size and quotas."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from shareflow import config as config_mod
from tests.fixtures.run_service import RunService

REPO = Path(__file__).resolve().parents[2]


def _without(obj, *names):
    return {k: v for k, v in dataclasses.asdict(obj).items() if k not in names}


def test_generated_config_is_etc_default_but_for_paths_ports_pool_and_quotas(tmp_path):
    svc = RunService(tmp_path, pool_gb=123)
    path = tmp_path / "shareflow.toml"
    path.write_text(svc.config_text())
    ours = config_mod.load(path)
    etc = config_mod.load(REPO / "etc" / "shareflow.toml")

    assert ours.state_dir == svc.state_dir
    assert ours.database.url == f"sqlite:///{svc.state_dir / 'shareflow.db'}"
    assert ours.zookeeper.hosts == f"127.0.0.1:{svc.zk_port}" and ours.zookeeper.embedded
    assert (ours.api.host, ours.api.port) == ("127.0.0.1", svc.api_port)
    assert ours.quotas.shares == ours.quotas.gigabytes == config_mod.UNLIMITED
    # Everything else as etc/ has it (or its defaults).
    assert _without(ours.zookeeper, "hosts", "data_dir") == _without(etc.zookeeper, "hosts", "data_dir")
    assert _without(ours.api, "port") == _without(etc.api, "port")
    assert _without(ours.auth, "tokens_file") == _without(etc.auth, "tokens_file")
    assert ours.conductor == etc.conductor and ours.host == etc.host
    assert (ours.default_share_type, ours.availability_zone) == (etc.default_share_type, etc.availability_zone)
    assert (ours.quotas.snapshots, ours.quotas.snapshot_gigabytes) == (etc.quotas.snapshots,
                                                                        etc.quotas.snapshot_gigabytes)
    [b], [e] = ours.backends, etc.backends
    assert b.btrfs.image == svc.state_dir / "backends" / "local" / "pool.img" and b.btrfs.image_size_gb == 123
    assert _without(b, "btrfs", "ganesha", "share_servers") == _without(e, "btrfs", "ganesha", "share_servers")
    assert _without(b.ganesha, "port", "state_dir") == _without(e.ganesha, "port", "state_dir")
    assert b.ganesha.port == svc.nfs_port


def test_overrides_change_one_setting(tmp_path):
    svc = RunService(tmp_path, pool_gb=8, overrides={"conductor": {"poll_interval": 0.5}},
                     unlimited_quotas=False)
    path = tmp_path / "shareflow.toml"
    path.write_text(svc.config_text())
    cfg = config_mod.load(path)
    assert cfg.conductor.poll_interval == 0.5
    assert cfg.quotas == config_mod.QuotaConfig()
