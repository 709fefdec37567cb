"""Builds a backend's four driver roles from its configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shareflow.config import BackendConfig
from shareflow.drivers.base import ShareServerHelper
from shareflow.drivers.export.ganesha import GaneshaExportDriver
from shareflow.drivers.export.ganesha_server import RESTART_WAIT, GaneshaServer
from shareflow.drivers.fault import FaultInjectingProxy
from shareflow.drivers.network.flat import FlatNetworkHelper
from shareflow.drivers.network.static import StaticNetworkHelper
from shareflow.drivers.server.netns import NetnsServerHelper
from shareflow.drivers.server.static import StaticServerHelper, static_server_id
from shareflow.drivers.share import registry as share_drivers


@dataclass
class Backend:
    name: str
    config: BackendConfig
    #: ShareDriver, ExportDriver, NetworkHelper, and ServerHelper (DHSS=false)
    #: or ShareServerHelper (DHSS=true: the tasks keep its servers' records,
    #: ``shareflow.services.share_server_manager``) - or, when the backend has
    #: a fault plan, FaultInjectingProxy objects wrapping them.
    share: Any
    export: Any
    network: Any
    server: Any
    #: The Ganesha servers the export driver knows, by share server id
    #: (for whoever starts and supervises managed servers); share servers of
    #: DHSS=true backends are not here (the server helper supervises them,
    #: told which by the share server manager).
    ganesha_servers: dict[str, GaneshaServer] = field(default_factory=dict)


def share_server_helper() -> type[ShareServerHelper]:
    """The kind of share server helper DHSS=true backends use (one here), for
    what is asked of it without a backend at hand (its ``backend_details``)."""
    return NetnsServerHelper


def build_backend(cfg: BackendConfig, *, step_timeout: float) -> Backend:
    """Drivers know nothing of the database: the records of share servers and
    network allocations are their callers' (tasks and services)."""
    share = share_drivers.get(cfg.share_driver).build(cfg.share_config, timeout=step_timeout)
    if cfg.driver_handles_share_servers:
        server_helper = NetnsServerHelper(cfg, timeout=step_timeout)
        servers: dict[str, GaneshaServer] = {}
        roles = {
            "share": share,
            # Share servers are found by id when a task names one; the
            # resolver is the helper's own (never fault-injected).
            "export": GaneshaExportDriver(servers, timeout=step_timeout, resolve=server_helper.ganesha),
            "network": FlatNetworkHelper(),
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
