"""Share instances and snapshot instances, Manila's admin view of where a
share (snapshot) lives (manila/api/v2/share_instances.py,
share_instance_export_locations.py, share_snapshot_instances.py).

shareflow keeps one instance per share and per snapshot: an instance is read
from its share (snapshot) row, its id derived from the share's
(:mod:`shareflow.domain.instance_ids`), and an admin action on an instance
is the same action on its share (snapshot), by the services that already
do it. Every call is admin-only, as Manila's default policy says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from shareflow import policy
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import ExportLocation, Share, ShareSnapshot
from shareflow.domain import instance_ids
from shareflow.exceptions import InvalidInput, NotFound
from shareflow.services.admin import ShareAdminService, valid_status
from shareflow.services.context import Caller
from shareflow.services.snapshots import RESETTABLE as SNAPSHOT_RESETTABLE
from shareflow.services.snapshots import SnapshotService

#: The share columns an instance list filters on from 2.35 (manila.db's
#: ``share_instance_get_all``); other query parameters are ignored, as there.
INSTANCE_FILTERS = ("export_location_id", "export_location_path", "host", "share_server_id", "status")


def instance_not_found(instance_id: str) -> NotFound:
    return NotFound(f"Share instance {instance_id} could not be found.")


@dataclass(frozen=True)
class ShareInstance:
    id: str
    share: Share

    @classmethod
    def of(cls, share: Share) -> ShareInstance:
        return cls(instance_ids.share_instance_id(share.id), share)


@dataclass(frozen=True)
class SnapshotInstance:
    id: str
    snapshot: ShareSnapshot
    share_instance_id: str

    @classmethod
    def of(cls, snap: ShareSnapshot) -> SnapshotInstance:
        return cls(instance_ids.snapshot_instance_id(snap.id), snap,
                   instance_ids.share_instance_id(snap.share_id))


class InstanceService:
    def __init__(self, db: Database, share_admin: ShareAdminService, snapshots: SnapshotService):
        self._db = db
        self._share_admin = share_admin
        self._snapshots = snapshots

    # --- share instances ----------------------------------------------------------

    def list(self, caller: Caller, filters: dict[str, Any] | None = None, *,
             soft_deleted: bool = False) -> list[ShareInstance]:
        """Every live share's instance, oldest first. ``filters``: see
        INSTANCE_FILTERS; ``host`` matches ``host@backend`` and its pools.
        No share is ever soft-deleted here (no recycle bin), so asking for
        soft-deleted ones finds none."""
        policy.enforce(caller, "share_instance:index")
        if soft_deleted:
            return []
        conds = [Share.deleted_at.is_(None)]
        filters = {k: v for k, v in (filters or {}).items() if k in INSTANCE_FILTERS and v}
        location = []
        if "export_location_id" in filters:
            location.append(ExportLocation.id == filters["export_location_id"])
        if "export_location_path" in filters:
            location.append(ExportLocation.path == filters["export_location_path"])
        if location:
            conds.append(Share.export_locations.any(sa.and_(*location)))
        if "host" in filters:
            host = filters["host"]
            conds.append(sa.or_(Share.host == host, Share.host.startswith(host + "#", autoescape=True)))
        if "share_server_id" in filters:
            conds.append(Share.share_server_id == filters["share_server_id"])
        if "status" in filters:
            conds.append(Share.status == filters["status"])
        with self._db.read() as s:
            shares = s.scalars(sa.select(Share).where(*conds).order_by(Share.created_at, Share.id)).all()
            return [ShareInstance.of(share) for share in shares]

    def get(self, caller: Caller, instance_id: str, *, rule: str = "share_instance:show") -> ShareInstance:
        policy.enforce(caller, rule)
        share_id = instance_ids.share_of_instance(instance_id)
        with self._db.read() as s:
            share = s.get(Share, share_id) if share_id else None
            if share is None or share.deleted_at is not None:
                raise instance_not_found(instance_id)
            return ShareInstance.of(share)

    def of_share(self, caller: Caller, share_id: str) -> list[ShareInstance]:
        """``GET /shares/{id}/instances``: policy ``share_instance:index``."""
        policy.enforce(caller, "share_instance:index")
        with self._db.read() as s:
            return [ShareInstance.of(shares_db.get(s, share_id))]

    def export_locations(self, caller: Caller, instance_id: str, *, rule: str) -> list[ExportLocation]:
        """An instance's export locations, admin-only ones included; Manila's
        404 text for an instance it does not find."""
        policy.enforce(caller, rule)
        try:
            instance = self.get(caller, instance_id)
        except NotFound:
            raise NotFound(f"Share instance '{instance_id}' not found.") from None
        return list(instance.share.export_locations)

    def reset_status(self, caller: Caller, instance_id: str, body: Any) -> None:
        """Manila's order: policy, the body, then the instance; then the
        share's own reset (a conditional write, see ShareAdminService)."""
        policy.enforce(caller, "share_instance:reset_status")
        valid_status(body)
        instance = self.get(caller, instance_id)
        self._share_admin.reset_status(caller, instance.share.id, body)

    def force_delete(self, caller: Caller, instance_id: str) -> None:
        """The only instance of a share is the share: force-deleting it is the
        share's force_delete (its job, its refusal while snapshots exist)."""
        policy.enforce(caller, "share_instance:force_delete")
        instance = self.get(caller, instance_id)
        self._share_admin.force_delete(caller, instance.share.id)

    # --- snapshot instances -----------------------------------------------------

    def snapshot_instances(self, caller: Caller, *, snapshot_id: str | None, detailed: bool) -> list[SnapshotInstance]:
        policy.enforce(caller, "share_snapshot_instance:" + ("detail" if detailed else "index"))
        q = sa.select(ShareSnapshot).where(ShareSnapshot.deleted_at.is_(None))
        if snapshot_id:
            q = q.where(ShareSnapshot.id == snapshot_id)
        with self._db.read() as s:
            return [SnapshotInstance.of(snap) for snap in
                    s.scalars(q.order_by(ShareSnapshot.created_at, ShareSnapshot.id)).all()]

    def snapshot_instance(self, caller: Caller, instance_id: str) -> SnapshotInstance:
        policy.enforce(caller, "share_snapshot_instance:show")
        return self._snapshot_instance(instance_id)

    def _snapshot_instance(self, instance_id: str) -> SnapshotInstance:
        snapshot_id = instance_ids.snapshot_of_instance(instance_id)
        with self._db.read() as s:
            snap = s.get(ShareSnapshot, snapshot_id) if snapshot_id else None
            if snap is None or snap.deleted_at is not None:
                raise NotFound(f"Snapshot instance {instance_id} could not be found.")
            return SnapshotInstance.of(snap)

    def reset_snapshot_instance_status(self, caller: Caller, instance_id: str, body: Any) -> None:
        """Policy, the body, the instance (Manila's order), then the
        snapshot's own reset, which knows the statuses a snapshot may have."""
        policy.enforce(caller, "share_snapshot_instance:reset_status")
        status = _status_of(body)
        instance = self._snapshot_instance(instance_id)
        self._snapshots.reset_status(caller, instance.snapshot.id, status)


def _status_of(body: Any) -> str:
    """The snapshot reset's own checks, made before the instance is looked up."""
    if not isinstance(body, dict) or body.get("status") is None:
        raise InvalidInput("no status", user_message="Must specify 'status'")
    status = body["status"]
    if not isinstance(status, str) or status not in SNAPSHOT_RESETTABLE:
        raise InvalidInput(f"Invalid state. Valid states: {', '.join(SNAPSHOT_RESETTABLE)}.")
    return status
