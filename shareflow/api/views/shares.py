"""Shares as manila/api/views/shares.py builds them, field by field per microversion.

Features this service does not have (replication, share groups) get
Manila's neutral values: None or False.
"""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.db.models import Share
from shareflow.domain import states, validation

COLLECTION = "shares"
#: Before 2.28 a syncing share showed its rules as out_of_sync (``translate_access_rules_status``).
OUT_OF_SYNC = "out_of_sync"


def summary(share: Share, ctx: ViewContext) -> dict:
    return {"id": share.id, "name": share.name, "links": ctx.links(COLLECTION, share.id)}


def _type_flag(specs: dict[str, str], key: str) -> bool:
    """A boolean capability of the share, from its type (Manila copies these onto the share)."""
    try:
        return validation.boolean(specs.get(key, "False"), key)
    except Exception:  # a malformed spec value must not break reading shares
        return False


def _visible_locations(share: Share, ctx: ViewContext) -> list:
    return [el for el in share.export_locations if ctx.is_admin or not el.is_admin_only]


def _progress(share: Share) -> str | None:
    if share.status in (states.CREATING, states.ERROR):
        return "0%"
    return "100%"


def detail(share: Share, ctx: ViewContext) -> dict:
    stype = share.share_type
    type_name = stype.name if stype is not None else None
    specs = stype.specs() if stype is not None else {}
    paths = [el.path for el in _visible_locations(share, ctx)]
    view = {
        "id": share.id,
        "size": share.size,
        "availability_zone": share.availability_zone,
        "created_at": timestamp(share.created_at),
        "status": share.status,
        "name": share.name,
        "description": share.description,
        "project_id": share.project_id,
        "snapshot_id": share.snapshot_id,
        "share_network_id": share.share_network_id,
        "share_proto": share.share_proto,
        "metadata": share.metadata_dict(),
        # Before 2.6 share_type is the type's name; volume_type stays the name.
        "share_type": type_name,
        "volume_type": type_name,
        "links": ctx.links(COLLECTION, share.id),
        "is_public": share.is_public,
    }
    if ctx.version.before("2.9"):
        # Manila's model: the first path always, the list only once available.
        view["export_location"] = paths[0] if paths else None
        view["export_locations"] = paths if share.status == states.AVAILABLE else []
    if ctx.at_least("2.2"):
        view["snapshot_support"] = _type_flag(specs, "snapshot_support")
    if ctx.at_least("2.5"):
        view["task_state"] = share.task_state
    if ctx.at_least("2.6"):
        view["share_type"] = share.share_type_id
        view["share_type_name"] = type_name
    if ctx.at_least("2.10"):
        rules = share.access_rules_status
        if ctx.version.before("2.28") and rules == states.RULES_SYNCING:
            rules = OUT_OF_SYNC
        view["access_rules_status"] = rules
    if ctx.at_least("2.11"):
        view["replication_type"] = specs.get("replication_type")
        view["has_replicas"] = False
    if ctx.at_least("2.16"):
        view["user_id"] = share.user_id
    if ctx.at_least("2.24"):
        view["create_share_from_snapshot_support"] = _type_flag(
            specs, "create_share_from_snapshot_support")
    if ctx.at_least("2.27"):
        view["revert_to_snapshot_support"] = _type_flag(specs, "revert_to_snapshot_support")
    if ctx.at_least("2.31"):
        view["share_group_id"] = None
        view["source_share_group_snapshot_member_id"] = None
    if ctx.at_least("2.32"):
        view["mount_snapshot_support"] = _type_flag(specs, "mount_snapshot_support")
    if ctx.at_least("2.54"):
        view["progress"] = _progress(share)
    if ctx.is_admin:
        view["share_server_id"] = share.share_server_id
        view["host"] = share.host
    return view


def list_view(shares: list[Share], ctx: ViewContext, *, detailed: bool, count: int | None = None) -> dict:
    build = detail if detailed else summary
    body = {"shares": [build(s, ctx) for s in shares]}
    if count is not None:
        body["count"] = count
    return body
