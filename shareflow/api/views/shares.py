"""Shares as manila/api/views/shares.py builds them, field by field per microversion.

Features this service does not have (replication, share groups) get
Manila's neutral values: None or False.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from shareflow.api.microversions import APIVersion, parse
from shareflow.api.views.common import ViewContext, timestamp
from shareflow.domain import states, validation

COLLECTION = "shares"
#: Before 2.28 a syncing share showed its rules as out_of_sync (``translate_access_rules_status``).
OUT_OF_SYNC = "out_of_sync"


def summary(share, ctx: ViewContext) -> dict:
    return {"id": share.id, "name": share.name, "links": ctx.links(COLLECTION, share.id)}


def _type_flag(specs: dict[str, str], key: str) -> bool:
    """A boolean capability of the share, from its type (Manila copies these onto the share)."""
    try:
        return validation.boolean(specs.get(key, "False"), key)
    except Exception:  # a malformed spec value must not break reading shares
        return False


def _progress(share) -> str | None:
    if share.status in (states.CREATING, states.ERROR):
        return "0%"
    return "100%"


@dataclass(frozen=True)
class _Plan:
    """Which of Manila's version-gated fields a request gets: decided once
    per (microversion, admin) rather than a dozen comparisons per share."""

    legacy_locations: bool
    snapshot_support: bool
    task_state: bool
    type_id: bool
    rules_status: bool
    out_of_sync: bool
    replication: bool
    user_id: bool
    from_snapshot: bool
    revert: bool
    groups: bool
    mount_snapshot: bool
    progress: bool
    admin: bool


@functools.lru_cache(maxsize=256)
def _plan(version: APIVersion, is_admin: bool) -> _Plan:
    def since(v: str) -> bool:
        return version >= parse(v)

    return _Plan(
        legacy_locations=not since("2.9"), snapshot_support=since("2.2"), task_state=since("2.5"),
        type_id=since("2.6"), rules_status=since("2.10"), out_of_sync=not since("2.28"),
        replication=since("2.11"), user_id=since("2.16"), from_snapshot=since("2.24"),
        revert=since("2.27"), groups=since("2.31"), mount_snapshot=since("2.32"),
        progress=since("2.54"), admin=is_admin,
    )


def _type_fields(stype) -> tuple[str | None, dict]:
    """The type's name and the capabilities a share shows from it."""
    if stype is None:
        return None, {}
    specs = stype.specs()
    return stype.name, {
        "snapshot_support": _type_flag(specs, "snapshot_support"),
        "create_share_from_snapshot_support": _type_flag(specs, "create_share_from_snapshot_support"),
        "revert_to_snapshot_support": _type_flag(specs, "revert_to_snapshot_support"),
        "mount_snapshot_support": _type_flag(specs, "mount_snapshot_support"),
        "replication_type": specs.get("replication_type"),
    }


def detail(share, ctx: ViewContext, *, _types: dict | None = None, _links=None) -> dict:
    """A share (an ORM row or a :class:`~shareflow.db.share_records.ShareRecord`).
    ``_types`` memoises type fields across a list; ``_links`` builds links."""
    plan = _plan(ctx.version, ctx.is_admin)
    if _types is None:
        type_name, flags = _type_fields(share.share_type)
    else:
        key = share.share_type_id
        if key not in _types:
            _types[key] = _type_fields(share.share_type)
        type_name, flags = _types[key]
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
        "links": (_links or ctx.links)(COLLECTION, share.id),
        "is_public": share.is_public,
    }
    if plan.legacy_locations:
        # Manila's model: the first path always, the list only once available.
        paths = [el.path for el in share.export_locations if plan.admin or not el.is_admin_only]
        view["export_location"] = paths[0] if paths else None
        view["export_locations"] = paths if share.status == states.AVAILABLE else []
    if plan.snapshot_support:
        view["snapshot_support"] = flags.get("snapshot_support", False)
    if plan.task_state:
        view["task_state"] = share.task_state
    if plan.type_id:
        view["share_type"] = share.share_type_id
        view["share_type_name"] = type_name
    if plan.rules_status:
        rules = share.access_rules_status
        if plan.out_of_sync and rules == states.RULES_SYNCING:
            rules = OUT_OF_SYNC
        view["access_rules_status"] = rules
    if plan.replication:
        view["replication_type"] = flags.get("replication_type")
        view["has_replicas"] = False
    if plan.user_id:
        view["user_id"] = share.user_id
    if plan.from_snapshot:
        view["create_share_from_snapshot_support"] = flags.get("create_share_from_snapshot_support", False)
    if plan.revert:
        view["revert_to_snapshot_support"] = flags.get("revert_to_snapshot_support", False)
    if plan.groups:
        view["share_group_id"] = share.share_group_id
        view["source_share_group_snapshot_member_id"] = None
    if plan.mount_snapshot:
        view["mount_snapshot_support"] = flags.get("mount_snapshot_support", False)
    if plan.progress:
        view["progress"] = _progress(share)
    if plan.admin:
        view["share_server_id"] = share.share_server_id
        view["host"] = share.host
    return view


def list_view(shares: list, ctx: ViewContext, *, detailed: bool, count: int | None = None,
              next_href: str | None = None) -> dict:
    """Manila's list body: ``shares``, ``count`` when asked (2.42), and
    ``shares_links`` with the ``next`` page when there may be one."""
    links = ctx.link_builder()
    if detailed:
        types: dict = {}
        items = [detail(s, ctx, _types=types, _links=links) for s in shares]
    else:
        items = [{"id": s.id, "name": s.name, "links": links(COLLECTION, s.id)} for s in shares]
    body: dict = {"shares": items}
    if count is not None:
        body["count"] = count
    if next_href is not None:
        body["shares_links"] = [{"rel": "next", "href": next_href}]
    return body
