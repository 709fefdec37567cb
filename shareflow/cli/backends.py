"""``shareflow backend list | show``: the backends' pools as their conductors
last reported them, and when the conductor pool's start-up ensure (volumes
mounted, exports served, share servers restored) finished and how long it
took. Read from the database, like ``shareflow network``."""

from __future__ import annotations

import json

from shareflow import config as config_module
from shareflow.cli.options import add_common
from shareflow.db.engine import Database
from shareflow.services.backends import BackendService, BackendView


def register(subparsers) -> None:
    parser = subparsers.add_parser("backend", help="backends' pools: capacity and start-up ensure")
    commands = parser.add_subparsers(dest="backend_command", required=True)
    listing = commands.add_parser("list", help="list the backends' pools")
    add_common(listing)
    listing.set_defaults(func=cmd_list)
    show = commands.add_parser("show", help="show one backend (name, or host@backend#pool)")
    show.add_argument("backend", metavar="BACKEND")
    add_common(show)
    show.set_defaults(func=cmd_show)


def _run(args, action):
    config = config_module.load(getattr(args, "config", None))
    db = Database(config.database.url)
    try:
        return action(BackendService(db))
    finally:
        db.dispose()


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def as_dict(b: BackendView) -> dict:
    return {
        "host": b.host, "backend": b.backend, "pool": b.pool,
        "driver_handles_share_servers": b.driver_handles_share_servers,
        "total_capacity_gb": b.total_capacity_gb, "free_capacity_gb": b.free_capacity_gb,
        "reported_at": _iso(b.reported_at),
        "ensure": b.ensure,
        "ensure_started_at": _iso(b.ensure_started_at),
        "ensure_finished_at": _iso(b.ensure_finished_at),
        "ensure_seconds": b.ensure_seconds,
        "ensure_volumes": b.ensure_volumes,
        "ensure_failures": b.ensure_failures,
    }


def cmd_list(args) -> int:
    backends = _run(args, lambda svc: svc.list())
    if args.json:
        print(json.dumps([as_dict(b) for b in backends], indent=2))
        return 0
    rows = [("HOST", "DHSS", "FREE/TOTAL GB", "START-UP ENSURE")]
    rows += [(b.host, str(b.driver_handles_share_servers).lower(),
              f"{b.free_capacity_gb}/{b.total_capacity_gb}", b.ensure) for b in backends]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_show(args) -> int:
    data = as_dict(_run(args, lambda svc: svc.get(args.backend)))
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    width = max(len(k) for k in data)
    for key, value in data.items():
        print(f"{key.ljust(width)}  {'-' if value is None else value}")
    return 0
