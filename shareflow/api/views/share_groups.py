"""Share group types, share groups and share group snapshots as
manila/api/views/share_group_types.py, share_groups.py and
share_group_snapshots.py build them."""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.db.models import ShareGroup, ShareGroupSnapshot, ShareGroupType

GROUPS = "share-groups"
GROUP_SNAPSHOTS = "share-group-snapshots"


def group_type(gt: ShareGroupType, ctx: ViewContext, default_name: str | None) -> dict:
    view = {"id": gt.id, "name": gt.name, "is_public": gt.is_public, "group_specs": gt.specs(),
            "share_types": gt.share_type_ids()}
    if ctx.at_least("2.46"):
        view["is_default"] = default_name is not None and gt.name == default_name
    return view


def group_type_list(types: list[ShareGroupType], ctx: ViewContext, default_name: str | None) -> dict:
    return {"share_group_types": [group_type(t, ctx, default_name) for t in types]}


def group_type_access(type_id: str, projects: list[str]) -> dict:
    return {"share_group_type_access": [{"share_group_type_id": type_id, "project_id": p} for p in projects]}


def group_summary(group: ShareGroup, ctx: ViewContext) -> dict:
    return {"id": group.id, "name": group.name, "links": ctx.links(GROUPS, group.id)}


def group_detail(group: ShareGroup, ctx: ViewContext) -> dict:
    view = {
        "id": group.id, "name": group.name, "created_at": timestamp(group.created_at),
        "status": group.status, "description": group.description, "project_id": group.project_id,
        "host": group.host, "share_group_type_id": group.share_group_type_id,
        "source_share_group_snapshot_id": group.source_share_group_snapshot_id,
        "share_network_id": group.share_network_id, "share_types": group.share_type_ids(),
        "links": ctx.links(GROUPS, group.id),
    }
    if ctx.at_least("2.34"):
        view["availability_zone"] = group.availability_zone
        # Manila's consistent_snapshot_support: the backend's capability
        # (btrfs: one snapshot per member, taken by one job, not atomically).
        view["consistent_snapshot_support"] = None
    if ctx.is_admin:
        view["share_server_id"] = None
    return view


def group_list(groups: list[ShareGroup], ctx: ViewContext, *, detailed: bool) -> dict:
    render = group_detail if detailed else group_summary
    return {"share_groups": [render(g, ctx) for g in groups]}


def snapshot_summary(snap: ShareGroupSnapshot, ctx: ViewContext) -> dict:
    return {"id": snap.id, "name": snap.name, "links": ctx.links(GROUP_SNAPSHOTS, snap.id)}


def snapshot_detail(snap: ShareGroupSnapshot, ctx: ViewContext) -> dict:
    return {
        "id": snap.id, "name": snap.name, "created_at": timestamp(snap.created_at), "status": snap.status,
        "description": snap.description, "project_id": snap.project_id, "share_group_id": snap.share_group_id,
        "members": [{"id": m.id, "size": m.size, "share_id": m.share_id} for m in snap.members],
        "links": ctx.links(GROUP_SNAPSHOTS, snap.id),
    }


def snapshot_list(snaps: list[ShareGroupSnapshot], ctx: ViewContext, *, detailed: bool) -> dict:
    render = snapshot_detail if detailed else snapshot_summary
    return {"share_group_snapshots": [render(s, ctx) for s in snaps]}


def member_list(snap: ShareGroupSnapshot) -> dict:
    return {"share_group_snapshot_members": [
        {"id": m.id, "created_at": timestamp(m.created_at), "size": m.size, "share_protocol": m.share_proto,
         "project_id": m.project_id, "share_group_snapshot_id": snap.id, "share_id": m.share_id}
        for m in snap.members]}
