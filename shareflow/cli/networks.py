"""``shareflow network create | list | show | delete``: the provider networks
tenants' share networks name (Manila's ``neutron_net_id`` is a network's id or
name, ``neutron_subnet_id`` its subnet id).

Runs through the same service the admin API uses, directly on the database
(like ``shareflow token``): the same validation, nothing written when it fails,
errors on stderr and exit status 1.

    shareflow network create tenants --bridge br-tenants --cidr 192.0.2.0/24 \\
        --gateway 192.0.2.1 --range 192.0.2.100-192.0.2.199 --mtu 1500
"""

from __future__ import annotations

import json

from shareflow.cli.options import admin_database, subcommand
from shareflow.services.context import Caller
from shareflow.services.networks import ProviderNetworkService, ProviderNetworkUsage
from shareflow.wiring import new_uuid, utcnow

OPERATOR = Caller(project_id="shareflow-cli", user_id="operator", is_admin=True)


def register(subparsers) -> None:
    parser = subparsers.add_parser("network", help="provider networks offered to tenants' share networks")
    commands = parser.add_subparsers(dest="network_command", required=True)

    create = subcommand(commands, "create", cmd_create, help="register a provider network")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--bridge", required=True, help="Linux bridge on the storage hosts")
    create.add_argument("--cidr", required=True, help="IPv4 network, e.g. 192.0.2.0/24")
    create.add_argument("--gateway", default=None, help="gateway address (default: none)")
    create.add_argument("--range", dest="ranges", action="append", metavar="START-END", default=None,
                        help="addresses share servers get (repeatable; default: the whole CIDR "
                             "minus network, broadcast and gateway)")
    create.add_argument("--mtu", default=None, help="MTU, 576 to 9000 (default 1500)")

    subcommand(commands, "list", cmd_list, help="list provider networks and their usage")

    show = subcommand(commands, "show", cmd_show, help="show one provider network (by id or name)")
    show.add_argument("network", metavar="NETWORK")

    delete = subcommand(commands, "delete", cmd_delete, help="delete a provider network nothing uses")
    delete.add_argument("network", metavar="NETWORK")


def _run(args, action):
    with admin_database(args) as (_config, db):
        return action(ProviderNetworkService(db, clock=utcnow, new_id=new_uuid))


def as_dict(usage: ProviderNetworkUsage) -> dict:
    net = usage.network
    return {
        "id": net.id, "name": net.name, "subnet_id": net.subnet_id, "bridge": net.bridge,
        "cidr": net.cidr, "gateway": net.gateway, "mtu": net.mtu,
        "allocation_ranges": [{"start": r.first, "end": r.last} for r in net.ranges],
        "capacity": usage.capacity, "allocated": usage.allocated,
        "share_network_subnets": usage.share_network_subnets,
        "created_at": net.created_at.isoformat(),
    }


def _print_one(args, usage: ProviderNetworkUsage) -> None:
    data = as_dict(usage)
    if args.json:
        print(json.dumps(data, indent=2))
        return
    data["allocation_ranges"] = ", ".join(f"{r['start']}-{r['end']}" for r in data["allocation_ranges"])
    data["gateway"] = data["gateway"] or "-"
    width = max(len(k) for k in data)
    for key, value in data.items():
        print(f"{key.ljust(width)}  {value}")


def cmd_create(args) -> int:
    usage = _run(args, lambda svc: svc.create(
        OPERATOR, name=args.name, bridge=args.bridge, cidr=args.cidr, gateway=args.gateway,
        mtu=args.mtu, allocation_ranges=args.ranges,
    ))
    _print_one(args, usage)
    return 0


def cmd_list(args) -> int:
    usages = _run(args, lambda svc: svc.list(OPERATOR))
    if args.json:
        print(json.dumps([as_dict(u) for u in usages], indent=2))
        return 0
    rows = [("ID", "NAME", "BRIDGE", "CIDR", "GATEWAY", "MTU", "USED", "SUBNET ID")]
    rows += [(u.network.id, u.network.name, u.network.bridge, u.network.cidr, u.network.gateway or "-",
              str(u.network.mtu), f"{u.allocated}/{u.capacity}", u.network.subnet_id) for u in usages]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_show(args) -> int:
    _print_one(args, _run(args, lambda svc: svc.get(OPERATOR, args.network)))
    return 0


def cmd_delete(args) -> int:
    def delete(svc):
        usage = svc.get(OPERATOR, args.network)
        svc.delete(OPERATOR, usage.network.id)
        return usage

    usage = _run(args, delete)
    print(f"deleted provider network {usage.network.name} ({usage.network.id})")
    return 0
