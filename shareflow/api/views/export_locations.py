"""Export locations as manila/api/views/export_locations.py builds them."""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.db.models import ExportLocation
from shareflow.domain import instance_ids


def _view(el: ExportLocation, ctx: ViewContext, *, detailed: bool) -> dict:
    view = {"id": el.id, "path": el.path}
    if ctx.at_least("2.14"):
        view["preferred"] = bool(el.preferred)
    if ctx.is_admin:
        # The share's one instance (shareflow.domain.instance_ids).
        view["share_instance_id"] = instance_ids.share_instance_id(el.share_id)
        view["is_admin_only"] = bool(el.is_admin_only)
    if detailed:
        view["created_at"] = timestamp(el.created_at)
        view["updated_at"] = timestamp(el.updated_at)
    return view


def detail(el: ExportLocation, ctx: ViewContext) -> dict:
    return {"export_location": _view(el, ctx, detailed=True)}


def list_view(locations: list[ExportLocation], ctx: ViewContext) -> dict:
    return {"export_locations": [_view(el, ctx, detailed=False) for el in locations]}
