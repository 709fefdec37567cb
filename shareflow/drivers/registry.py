"""Builds a backend's four driver roles from its configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shareflow.config import BackendConfig
from shareflow.drivers.export.ganesha import GaneshaExportDriver
from shareflow.drivers.export.ganesha_server import GaneshaServer
from shareflow.drivers.fault import FaultInjectingProxy
from shareflow.drivers.network.static import StaticNetworkHelper
from shareflow.drivers.server.static import StaticServerHelper, static_server_id
from shareflow.drivers.share.btrfs import BtrfsShareDriver
from shareflow.exceptions import ConfigError


@dataclass
class Backend:
    name: str
    config: BackendConfig
    #: ShareDriver, ExportDriver, NetworkHelper, ServerHelper - or, when the
    #: backend has a fault plan, FaultInjectingProxy objects wrapping them.
    share: Any
    export: Any
    network: Any
    server: Any
    #: The Ganesha servers the export driver knows, by share server id
    #: (for whoever starts and supervises managed servers).
    ganesha_servers: dict[str, GaneshaServer] = field(default_factory=dict)


def build_backend(cfg: BackendConfig, *, step_timeout: float) -> Backend:
    if cfg.share_driver != "btrfs":
        raise ConfigError(f"backend {cfg.name}: unknown share driver {cfg.share_driver!r}")
    if cfg.driver_handles_share_servers:
        raise ConfigError(f"backend {cfg.name}: driver_handles_share_servers=true is not supported yet")
    servers = {static_server_id(cfg.name): GaneshaServer(cfg.ganesha, timeout=step_timeout)}
    roles = {
        "share": BtrfsShareDriver(cfg.btrfs, timeout=step_timeout),
        "export": GaneshaExportDriver(servers, timeout=step_timeout),
        "network": StaticNetworkHelper(cfg.name),
        "server": StaticServerHelper(cfg.name, cfg.ganesha.address),
    }
    if cfg.fault_plan is not None:
        # A hang ends (as a failure) after the same bound a real hung step
        # would get, so a forgotten plan cannot stall a run forever.
        roles = {k: FaultInjectingProxy(v, cfg.fault_plan, hang_limit=step_timeout) for k, v in roles.items()}
    return Backend(name=cfg.name, config=cfg, ganesha_servers=servers, **roles)
