"""Share instances, snapshot instances and (empty) share replicas as
manila/api/views/share_instance.py, share_snapshot_instances.py and
share_replicas.py build them, field by field per microversion."""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.domain import states
from shareflow.services.instances import ShareInstance, SnapshotInstance


def _progress(status: str) -> str:
    # What shareflow's share view says too: no driver reports a partial copy.
    return "0%" if status in (states.CREATING, states.ERROR) else "100%"


def share_instance(instance: ShareInstance, ctx: ViewContext) -> dict:
    share = instance.share
    view = {
        "id": instance.id,
        "share_id": share.id,
        "availability_zone": share.availability_zone,
        "created_at": timestamp(share.created_at),
        "host": share.host,
        "status": share.status,
        "share_network_id": share.share_network_id,
        "share_server_id": share.share_server_id,
    }
    if not ctx.at_least("2.9"):
        # An admin's view: admin-only paths too (Manila's instance model lists them all).
        paths = [el.path for el in share.export_locations]
        view["export_location"] = paths[0] if paths else None
        view["export_locations"] = paths
    if ctx.at_least("2.10"):
        view["access_rules_status"] = share.access_rules_status
    if ctx.at_least("2.11"):
        view["replica_state"] = None  # no replication: never a replica
    if ctx.at_least("2.22"):
        view["share_type_id"] = share.share_type_id
    if ctx.at_least("2.30"):
        view["cast_rules_to_readonly"] = False
    if ctx.at_least("2.54"):
        view["progress"] = _progress(share.status)
    if ctx.at_least("2.71"):
        view["updated_at"] = timestamp(share.updated_at)
    return view


def share_instance_detail(instance: ShareInstance, ctx: ViewContext) -> dict:
    return {"share_instance": share_instance(instance, ctx)}


def share_instance_list(instances: list[ShareInstance], ctx: ViewContext) -> dict:
    return {"share_instances": [share_instance(i, ctx) for i in instances]}


def snapshot_instance(instance: SnapshotInstance, *, detailed: bool) -> dict:
    snap = instance.snapshot
    if not detailed:
        return {"id": instance.id, "snapshot_id": snap.id, "status": snap.status}
    return {
        "id": instance.id,
        "snapshot_id": snap.id,
        "created_at": timestamp(snap.created_at),
        "updated_at": timestamp(snap.updated_at),
        "status": snap.status,
        "share_id": snap.share_id,
        "share_instance_id": instance.share_instance_id,
        "progress": _progress(snap.status),
        "provider_location": snap.provider_location,
    }


def snapshot_instance_detail(instance: SnapshotInstance) -> dict:
    return {"snapshot_instance": snapshot_instance(instance, detailed=True)}


def snapshot_instance_list(instances: list[SnapshotInstance], *, detailed: bool) -> dict:
    return {"snapshot_instances": [snapshot_instance(i, detailed=detailed) for i in instances]}


def replica_list() -> dict:
    """No share is replicated here, so no share has a replica."""
    return {"share_replicas": []}
