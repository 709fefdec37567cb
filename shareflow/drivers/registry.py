"""Builds a backend's four driver roles from its configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shareflow.config import BackendConfig
from shareflow.db.engine import Database
from shareflow.drivers.export.ganesha import GaneshaExportDriver
from shareflow.drivers.export.ganesha_server import RESTART_WAIT, GaneshaServer
from shareflow.drivers.fault import FaultInjectingProxy
from shareflow.drivers.network.flat import FlatNetworkHelper
from shareflow.drivers.network.static import StaticNetworkHelper
from shareflow.drivers.server.netns import NetnsServerHelper
from shareflow.drivers.server.static import StaticServerHelper, static_server_id
from shareflow.drivers.share import registry as share_drivers
from shareflow.exceptions import ConfigError


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


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
    #: (for whoever starts and supervises managed servers); share servers of
    #: DHSS=true backends are not here (the server helper supervises them).
    ganesha_servers: dict[str, GaneshaServer] = field(default_factory=dict)


def build_backend(cfg: BackendConfig, *, step_timeout: float, db: Database | None = None,
                  service_host: str = "localhost", clock: Callable[[], datetime] | None = None) -> Backend:
    """``db``, ``service_host`` and ``clock`` are needed by DHSS=true backends
    (share servers and network allocations live in the database)."""
    share = share_drivers.get(cfg.share_driver).build(cfg.share_config, timeout=step_timeout)
    if cfg.driver_handles_share_servers:
        if db is None:
            raise ConfigError(f"backend {cfg.name}: driver_handles_share_servers=true needs the database")
        clock = clock or _utcnow
        server_helper = NetnsServerHelper(cfg, db, service_host=service_host, clock=clock, timeout=step_timeout)
        servers: dict[str, GaneshaServer] = {}
        roles = {
            "share": share,
            # Share servers are found by id when a task names one; the
            # resolver is the helper's own (never fault-injected).
            "export": GaneshaExportDriver(servers, timeout=step_timeout, resolve=server_helper.ganesha),
            "network": FlatNetworkHelper(db, clock=clock),
            "server": server_helper,
        }
    else:
        servers = {static_server_id(cfg.name): GaneshaServer(
            cfg.ganesha, timeout=step_timeout,
            # Only the conductor pool restarts a server it manages.
            restart_wait=RESTART_WAIT if cfg.ganesha.managed else 0.0)}
        roles = {
            "share": share,
            "export": GaneshaExportDriver(servers, timeout=step_timeout),
            "network": StaticNetworkHelper(cfg.name),
            "server": StaticServerHelper(cfg.name, cfg.ganesha.address),
        }
    if cfg.fault_plan is not None:
        # A hang ends (as a failure) after the same bound a real hung step
        # would get, so a forgotten plan cannot stall a run forever.
        roles = {k: FaultInjectingProxy(v, cfg.fault_plan, hang_limit=step_timeout) for k, v in roles.items()}
    return Backend(name=cfg.name, config=cfg, ganesha_servers=servers, **roles)
