"""Quota sets and absolute limits as manila/api/views/quota_sets.py and
manila/api/views/limits.py build them, field by field per microversion.

This service limits four resources (shares, gigabytes, snapshots,
snapshot_gigabytes). The other resources Manila has quotas for are not limited
here: they are shown as -1 (unlimited) with nothing in use, at the
microversions where Manila shows them, so a client finds every field it expects.
"""

from __future__ import annotations

from shareflow.api.views.common import ViewContext
from shareflow.db.quotas import RESOURCES, UNLIMITED

#: Manila's quota resources this service does not limit -> the microversion
#: from which Manila's quota-set view shows them.
UNLIMITED_RESOURCES = {
    "share_networks": "2.0",
    "share_groups": "2.40",
    "share_group_snapshots": "2.40",
    "share_replicas": "2.53",
    "replica_gigabytes": "2.53",
    "per_share_gigabytes": "2.62",
    "backups": "2.80",
    "backup_gigabytes": "2.80",
    "encryption_keys": "2.90",
}

#: manila/api/views/limits.py: resource -> (limit name, in-use name, from microversion).
ABSOLUTE_NAMES = {
    "gigabytes": ("maxTotalShareGigabytes", "totalShareGigabytesUsed", "2.0"),
    "snapshot_gigabytes": ("maxTotalSnapshotGigabytes", "totalSnapshotGigabytesUsed", "2.0"),
    "shares": ("maxTotalShares", "totalSharesUsed", "2.0"),
    "snapshots": ("maxTotalShareSnapshots", "totalShareSnapshotsUsed", "2.0"),
    "share_networks": ("maxTotalShareNetworks", "totalShareNetworksUsed", "2.0"),
    "share_replicas": ("maxTotalShareReplicas", "totalShareReplicasUsed", "2.53"),
    "replica_gigabytes": ("maxTotalReplicaGigabytes", "totalReplicaGigabytesUsed", "2.53"),
    "share_groups": ("maxTotalShareGroups", "totalShareGroupsUsed", "2.58"),
    "share_group_snapshots": ("maxTotalShareGroupSnapshots", "totalShareGroupSnapshotsUsed", "2.58"),
    "backups": ("maxTotalShareBackups", "totalShareBackupsUsed", "2.80"),
    "backup_gigabytes": ("maxTotalBackupGigabytes", "totalBackupGigabytesUsed", "2.80"),
}


def quota_set(values: dict, ctx: ViewContext, *, project_id: str | None = None,
              share_type: bool = False, detail: bool = False) -> dict:
    """``values`` maps each of our resources to its limit (or, with ``detail``,
    to ``{limit, in_use, reserved}``)."""
    unlimited = {"limit": UNLIMITED, "in_use": 0, "reserved": 0} if detail else UNLIMITED
    view = {key: values[key] for key in RESOURCES}
    if project_id is not None:
        view["id"] = project_id
    for key, since in UNLIMITED_RESOURCES.items():
        if key == "share_networks" and share_type:
            continue  # Manila: share-type quotas have no share networks
        if key.startswith("share_group") and share_type:
            continue
        if ctx.at_least(since):
            view[key] = dict(unlimited) if detail else unlimited
    return {"quota_set": view}


def limits(limits_: dict[str, int], used: dict[str, int], ctx: ViewContext) -> dict:
    absolute: dict[str, int] = {}
    for key, (max_name, used_name, since) in ABSOLUTE_NAMES.items():
        if not ctx.at_least(since):
            continue
        absolute[max_name] = limits_.get(key, UNLIMITED)
        absolute[used_name] = used.get(key, 0)
    return {"limits": {"rate": [], "absolute": absolute}}
