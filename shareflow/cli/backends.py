"""``shareflow backend list | show | disable | enable``: the share services
``host@backend`` and their pools as their conductors last reported them
(capabilities, capacity, shares, last report, whether the conductors are
alive, the start-up ensure), and an admin's disable: a disabled backend gets
no new shares, its existing shares keep working (Manila's ``openstack share
service set --disable``). Read from and written to the database, like
``shareflow network``.

    shareflow backend list
    shareflow backend show storage1@local
    shareflow backend disable storage1@local --reason "disk replacement"
    shareflow backend enable storage1@local
"""

from __future__ import annotations

import json

from shareflow.cli.options import admin_database, subcommand
from shareflow.cli.output import console, table
from shareflow.scheduler.scheduler import stale_after_of
from shareflow.services.backends import BackendService, BackendView, PoolView


def register(subparsers) -> None:
    parser = subparsers.add_parser("backend", help="share services (host@backend): pools, capacity, disable")
    commands = parser.add_subparsers(dest="backend_command", required=True)
    subcommand(commands, "list", cmd_list, help="list the share services and their pools")
    show = subcommand(commands, "show", cmd_show, help="show one backend: HOST@BACKEND (or a backend name on one host)")
    show.add_argument("backend", metavar="HOST@BACKEND")
    disable = subcommand(commands, "disable", cmd_disable, help="place no new shares on HOST@BACKEND")
    disable.add_argument("backend", metavar="HOST@BACKEND")
    disable.add_argument("--reason", default=None, help="why (shown by list and show)")
    enable = subcommand(commands, "enable", cmd_enable, help="place new shares on HOST@BACKEND again")
    enable.add_argument("backend", metavar="HOST@BACKEND")


def _run(args, action):
    with admin_database(args) as (config, db):
        return action(BackendService(db, stale_after=stale_after_of(config)))


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def pool_dict(p: PoolView) -> dict:
    return {
        "host": p.host, "pool": p.pool, "availability_zone": p.availability_zone,
        "total_capacity_gb": p.total_capacity_gb, "free_capacity_gb": p.free_capacity_gb,
        "allocated_capacity_gb": p.allocated_capacity_gb, "shares": p.shares,
        "reported_at": _iso(p.reported_at), "capabilities": p.capabilities,
        "ensure": p.ensure, "ensure_started_at": _iso(p.ensure_started_at),
        "ensure_finished_at": _iso(p.ensure_finished_at), "ensure_seconds": p.ensure_seconds,
        "ensure_volumes": p.ensure_volumes, "ensure_failures": p.ensure_failures,
    }


def as_dict(b: BackendView) -> dict:
    out = {
        "host": b.host, "service_host": b.service_host, "backend": b.backend,
        "availability_zone": b.availability_zone, "disabled": b.disabled, "disabled_reason": b.disabled_reason,
        "last_report": _iso(b.last_report), "alive": b.alive, "shares": b.shares,
        "pools": [pool_dict(p) for p in b.pools],
    }
    if len(b.pools) == 1:
        # One pool per backend: its start-up ensure is the backend's.
        (pool,) = b.pools
        out.update({k: v for k, v in pool_dict(pool).items() if k.startswith("ensure")})
    return out


def cmd_list(args) -> int:
    backends = _run(args, lambda svc: svc.list())
    if args.json:
        print(json.dumps([as_dict(b) for b in backends], indent=2))
        return 0
    rows = table("HOST@BACKEND", "POOL", "STATUS", "DHSS", "FREE/TOTAL GB", "ALLOCATED GB", "SHARES",
                 "LAST REPORT", "START-UP ENSURE")
    for b in backends:
        status = b.status + (f" ({b.disabled_reason})" if b.disabled and b.disabled_reason else "")
        for p in b.pools or (None,):
            rows.add_row(
                b.host, p.pool if p else "-", status, str(p.driver_handles_share_servers).lower() if p else "-",
                f"{p.free_capacity_gb}/{p.total_capacity_gb}" if p else "-",
                str(p.allocated_capacity_gb) if p else "-", str(p.shares) if p else "0",
                _iso(b.last_report) or "never", p.ensure if p else "-",
            )
    console().print(rows)
    return 0


def _show(data: dict) -> None:
    rows = table("FIELD", "VALUE")
    for key, value in data.items():
        if key == "pools":
            continue
        rows.add_row(key, "-" if value is None else str(value))
    for pool in data["pools"]:
        rows.add_row("pool", pool["host"])
        for key in ("total_capacity_gb", "free_capacity_gb", "allocated_capacity_gb", "shares", "reported_at"):
            rows.add_row(f"  {key}", str(pool[key]))
        for key, value in sorted(pool["capabilities"].items()):
            rows.add_row(f"  capabilities.{key}", json.dumps(value) if not isinstance(value, str) else value)
    console().print(rows)


def _print(args, backend: BackendView) -> int:
    data = as_dict(backend)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        _show(data)
    return 0


def cmd_show(args) -> int:
    return _print(args, _run(args, lambda svc: svc.get(args.backend)))


def cmd_disable(args) -> int:
    return _print(args, _run(args, lambda svc: svc.disable(args.backend, reason=args.reason)))


def cmd_enable(args) -> int:
    return _print(args, _run(args, lambda svc: svc.enable(args.backend)))
