"""Share servers as manila/api/views/share_servers.py builds them, per
microversion (up to 2.65): ``is_auto_deletable`` and ``identifier`` from 2.49,
``share_network_subnet_id`` from 2.51, ``task_state`` and
``source_share_server_id`` from 2.57, ``security_service_update_support`` from
2.63. Features this service does not have get Manila's neutral values."""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.services.share_servers import ShareServerView


def _view(v: ShareServerView, ctx: ViewContext, *, detailed: bool) -> dict:
    row = v.server
    view = {
        "id": row.id,
        "project_id": row.project_id,
        "updated_at": timestamp(row.updated_at),
        "status": row.status,
        "host": row.host,
        "share_network_name": v.share_network_name,
        "share_network_id": row.share_network_id,
    }
    if detailed:
        view["created_at"] = timestamp(row.created_at)
        view["backend_details"] = dict(v.backend_details)
    if ctx.at_least("2.49"):
        view["is_auto_deletable"] = row.is_auto_deletable
        # Manila's identifier defaults to the server's id when the driver names none.
        view["identifier"] = row.id
    if ctx.within("2.51", "2.69"):
        view["share_network_subnet_id"] = row.share_network_subnet_id or None
    if ctx.at_least("2.57"):
        view["task_state"] = None
        view["source_share_server_id"] = None
    if ctx.at_least("2.63"):
        view["security_service_update_support"] = False
    return view


def detail(v: ShareServerView, ctx: ViewContext) -> dict:
    return _view(v, ctx, detailed=True)


def list_view(servers: list[ShareServerView], ctx: ViewContext) -> dict:
    return {"share_servers": [_view(v, ctx, detailed=False) for v in servers]}


def details_view(details: dict[str, str]) -> dict:
    return {"details": dict(details)}
