"""What a conductor host reports of each pool it serves: capacity and
capabilities, for the scheduler of every API node (which has no backend
configuration of its own: it knows the pools only from these reports).

Reports are written on start (the pool's start-up ensure) and at every
housekeeping pass of each worker; each also beats the heart of the share
service ``host@backend`` (``services.updated_at``), which says whether its
conductors are alive.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from shareflow.config import DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO, DEFAULT_RESERVED_PERCENTAGE, Config
from shareflow.db import pools as pools_db
from shareflow.db.engine import Database
from shareflow.exceptions import ShareflowError
from shareflow.scheduler.pool_state import pool_host

LOG = logging.getLogger(__name__)

DRIVER_VERSION = "1.0"


def pool_capabilities(backend) -> dict:
    """The capabilities reported for ``backend`` (a built
    :class:`~shareflow.drivers.registry.Backend`), Manila's names: the
    driver's own (``ShareDriver.capabilities()``), with the keys every pool
    has filled in from its configuration (backend name, driver, and the
    DHSS mode, which the configuration decides whatever the driver could do)."""
    cfg = backend.config
    caps = dict(backend.share.capabilities())
    inner = getattr(backend.share, "_inner", backend.share)  # under a fault-injecting proxy
    caps.setdefault("share_backend_name", cfg.name)
    caps.setdefault("driver_name", type(inner).__name__)
    caps.setdefault("driver_version", DRIVER_VERSION)
    # The operator's word on capacity policy (the backend's configuration)
    # over the driver's; the named defaults where neither says.
    configured = {"reserved_percentage": cfg.reserved_percentage,
                  "max_over_subscription_ratio": cfg.max_over_subscription_ratio,
                  "thin_provisioning": cfg.thin_provisioning, "filter_function": cfg.filter_function}
    caps.update({k: v for k, v in configured.items() if v is not None})
    caps.setdefault("reserved_percentage", DEFAULT_RESERVED_PERCENTAGE)
    caps.setdefault("max_over_subscription_ratio", DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO)
    caps["driver_handles_share_servers"] = cfg.driver_handles_share_servers
    return caps


def _order(config: Config, name: str) -> int:
    return next((i for i, b in enumerate(config.backends) if b.name == name), 0)


def report_pool(db: Database, config: Config, backend, *, now: datetime, ensure_started: bool = False) -> None:
    """Report one backend's pool (raises ShareflowError when its capacity or
    the database cannot be read)."""
    cfg = backend.config
    cap = backend.share.capacity()
    fields = dict(
        host=pool_host(config.host, cfg.name, cfg.pool), backend=cfg.name, pool=cfg.pool,
        dhss=cfg.driver_handles_share_servers, total_gb=cap.total_gb, free_gb=cap.free_gb, now=now,
        capabilities=pool_capabilities(backend), availability_zone=config.availability_zone,
        config_order=_order(config, cfg.name),
    )
    with db.write() as s:
        if ensure_started:
            pools_db.ensure_started(s, **fields)
        else:
            pools_db.report(s, **fields)


def report_pools(db: Database, config: Config, backends, clock: Callable[[], datetime]) -> None:
    """Report every pool of ``backends``; one that cannot be read is logged
    and left to go stale (the others are still reported)."""
    for backend in backends:
        try:
            report_pool(db, config, backend, now=clock())
        except ShareflowError:
            LOG.exception("could not report the pool of backend %s", backend.name)
