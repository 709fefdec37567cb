"""Snapshots as manila/api/views/share_snapshots.py builds them, per microversion:
``provider_location`` from 2.12 and for admins only, ``project_id`` and
``user_id`` from 2.17 (``metadata`` comes with 2.73, past our maximum)."""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.db.models import ShareSnapshot

COLLECTION = "snapshots"


def summary(snap: ShareSnapshot, ctx: ViewContext) -> dict:
    return {"id": snap.id, "name": snap.name, "links": ctx.links(COLLECTION, snap.id)}


def detail(snap: ShareSnapshot, ctx: ViewContext) -> dict:
    view = {
        "id": snap.id,
        "share_id": snap.share_id,
        "share_size": snap.share_size,
        "created_at": timestamp(snap.created_at),
        "status": snap.status,
        "name": snap.name,
        "description": snap.description,
        "size": snap.size,
        "share_proto": snap.share_proto,
        "links": ctx.links(COLLECTION, snap.id),
    }
    if ctx.at_least("2.12") and ctx.is_admin:
        view["provider_location"] = snap.provider_location
    if ctx.at_least("2.17"):
        view["user_id"] = snap.user_id
        view["project_id"] = snap.project_id
    return view


def list_view(snaps: list[ShareSnapshot], ctx: ViewContext, *, detailed: bool,
              next_href: str | None = None) -> dict:
    """Manila's body: ``snapshots``, and the next page under Manila's own key
    ``share_snapshots_links`` (``count`` comes with 2.79, past our maximum)."""
    build = detail if detailed else summary
    body: dict = {"snapshots": [build(s, ctx) for s in snaps]}
    if next_href is not None:
        body["share_snapshots_links"] = [{"rel": "next", "href": next_href}]
    return body
