"""Snapshots, shares created from them, and reverting a share to one: validate
as Manila does, change status conditionally, record and post the job, undo
the status change when the job cannot be posted.

Manila's behaviour followed here: manila/api/v2/share_snapshots.py (create,
update, delete, reset_status, force_delete), manila/api/v2/shares.py
(``_create`` with ``snapshot_id``, ``_revert``), manila/share/api.py
(``create`` from a snapshot, ``create_snapshot``, ``delete_snapshot``,
``revert_to_snapshot``) and manila/share/manager.py (what a revert ends in).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from shareflow import policy
from shareflow.config import Config
from shareflow.db import share_types as types_db
from shareflow.db import shares as shares_db
from shareflow.db import snapshots as snapshots_db
from shareflow.db.engine import Database
from shareflow.db.models import Share, ShareSnapshot
from shareflow.domain import states, validation
from shareflow.engine import operations
from shareflow.engine.posting import JobPoster
from shareflow.exceptions import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    OverLimit,
    ShareflowError,
)
from shareflow.scheduler.scheduler import Placement
from shareflow.services.context import Caller
from shareflow.services.quotas import enforce as enforce_quota

LOG = logging.getLogger(__name__)

SNAPSHOT_SUPPORT = "snapshot_support"
CREATE_FROM_SNAPSHOT_SUPPORT = "create_share_from_snapshot_support"
REVERT_SUPPORT = "revert_to_snapshot_support"

#: Statuses a snapshot may be deleted from without force (Manila's delete_snapshot).
DELETABLE = (states.AVAILABLE, states.ERROR)
#: What an admin's reset_status may set, in Manila's order of the ones we have.
RESETTABLE = tuple(s for s in (
    states.AVAILABLE, states.ERROR, states.ERROR_DELETING, states.DELETING, states.CREATING,
    states.RESTORING,
) if s in states.SNAPSHOT_RESETTABLE)
NAME_MAX = 255


class Unprocessable(ShareflowError):
    """Manila's ``HTTPUnprocessableEntity`` (422; its fault body is ``computeFault``)."""

    http_status = 422
    manila_name = "computeFault"


def invalid_input(reason: str) -> InvalidInput:
    """Manila's ``exception.InvalidInput``."""
    return InvalidInput(reason, user_message=f"Invalid input received: {reason}.")


def display_field(value, field: str) -> str | None:
    """Manila's check_display_field_length, and text only."""
    if value is None:
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise invalid_input(f"{field} must be a string")
    if len(value) > NAME_MAX:
        raise invalid_input(f"{field} can only be {NAME_MAX} characters long")
    return value


def type_supports(share: Share, key: str) -> bool:
    """A capability of the share, from its share type's extra specs (Manila
    infers False for each when the type does not say)."""
    specs = share.share_type.specs() if share.share_type is not None else {}
    try:
        return validation.boolean(specs.get(key, "False"), key)
    except InvalidInput:
        return False


@dataclass(frozen=True)
class NewShareSource:
    """What a share created from a snapshot takes from it."""

    snapshot_id: str
    size: int
    share_type_id: str | None
    availability_zone: str | None
    share_network_id: str | None
    #: The snapshot's share's backend; None when it is no longer configured.
    placement: Placement | None


def new_share_source(session: Session, config: Config, caller: Caller, snapshot_id, *, size: int | None,
                     share_type, share_proto: str, availability_zone: str | None,
                     share_network_id: str | None) -> NewShareSource:
    """Check a create-share request that names ``snapshot_id`` and fill in
    what it inherits: the snapshot's size when none was given, the parent
    share's type, availability zone, share network and backend (the new share
    is made on the backend that holds the snapshot)."""
    snap = snapshots_db.get(session, snapshot_id, caller.scope)
    parent = shares_db.get_any(session, snap.share_id)
    if parent is None:
        raise snapshots_db.not_found(snapshot_id)
    if share_network_id and share_network_id != parent.share_network_id:
        raise InvalidInput("Share network ID should be the same as snapshot's parent share's or empty")
    share_network_id = share_network_id or parent.share_network_id
    if not type_supports(parent, CREATE_FROM_SNAPSHOT_SUPPORT):
        raise InvalidInput(
            f"A new share may not be created from snapshot '{snap.id}', because the snapshot's "
            "parent share does not have that capability."
        )
    if snap.status != states.AVAILABLE:
        raise InvalidInput(f"snapshot {snap.id} is {snap.status}",
                           user_message="Invalid share snapshot: status must be 'available'.")
    if size is None:
        size = snap.size
    if size < snap.size:
        raise invalid_input(f"Share size '{size}' must be equal or greater than snapshot size")
    if availability_zone is None:
        availability_zone = parent.availability_zone
    elif availability_zone != parent.availability_zone:
        raise invalid_input("The specified availability zone must be the same as the parent share "
                            "when creating from snapshot")
    if share_type is not None:
        if not isinstance(share_type, str):
            raise InvalidInput("share_type must be a share type name or id.")
        if types_db.get_by_name_or_id(session, share_type).id != parent.share_type_id:
            raise invalid_input(
                "Invalid share type specified: the requested share type must match the type of "
                "the source share. If a share type is not specified when requesting a new share "
                "from a snapshot, the share type of the source share will be applied to the new share"
            )
    if share_proto != snap.share_proto:
        raise invalid_input(f"A share created from snapshot {snap.id} must have its protocol "
                            f"({snap.share_proto})")
    return NewShareSource(
        snapshot_id=snap.id, size=size, share_type_id=parent.share_type_id,
        availability_zone=availability_zone, share_network_id=share_network_id,
        placement=Placement.of_share(parent),
    )


class SnapshotService:
    def __init__(
        self, config: Config, db: Database, poster: JobPoster, *,
        clock: Callable[[], datetime], new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ):
        self._config = config
        self._db = db
        self._poster = poster
        self._clock = clock
        self._new_id = new_id

    # --- reading ------------------------------------------------------------

    def get(self, caller: Caller, snapshot_id: str) -> ShareSnapshot:
        with self._db.read() as s:
            return snapshots_db.get(s, snapshot_id, caller.scope)

    def list(self, caller: Caller, *, all_projects: bool = False, **query) -> list[ShareSnapshot]:
        everyone = all_projects and policy.authorize(caller, "share_snapshot:list_all_projects")
        scope = None if everyone else caller.project_id
        with self._db.read() as s:
            return snapshots_db.list_(s, scope, **query)

    def count_for_share(self, share_id: str) -> int:
        with self._db.read() as s:
            return snapshots_db.count_for_share(s, share_id)

    def usage(self, project_id: str) -> tuple[int, int]:
        """(snapshots, gigabytes) of the project's live snapshots."""
        with self._db.read() as s:
            return snapshots_db.usage(s, project_id)

    # --- creating and deleting ----------------------------------------------

    def create(self, caller: Caller, *, share_id, name=None, description=None) -> ShareSnapshot:
        """Manila's v2 create passes no ``force``: the share must be available."""
        if share_id is None:
            raise InvalidInput("Required parameter share_id not found.")
        if not isinstance(share_id, str):
            raise InvalidInput("Parameter share_id must be a string.")
        name = display_field(name, "name")
        description = display_field(description, "description")
        now = self._clock()
        with self._db.write() as s:
            share = shares_db.owned(s, share_id, caller.scope)
            if not type_supports(share, SNAPSHOT_SUPPORT):
                raise Unprocessable(
                    f"Snapshots cannot be created for share '{share.id}' since it does not have "
                    "that capability."
                )
            not_available = InvalidInput(f"share {share.id} is {share.status}",
                                         user_message="Invalid share: Source share status must be available.")
            if share.status != states.AVAILABLE or share.backend is None:
                raise not_available
            # The quota lock before any row lock (services.quotas).
            enforce_quota(s, self._config.quotas, caller.project_id, snapshots=1,
                          snapshot_gigabytes=share.size)
            # Holds the share's row while it is available: a concurrent delete
            # of the share (which counts its snapshots after its own
            # conditional update) then either sees this snapshot or wins.
            if not snapshots_db.hold_available_share(s, share.id):
                raise not_available
            snap = snapshots_db.create(
                s, now=now, id=self._new_id(), share_id=share.id, project_id=caller.project_id,
                user_id=caller.user_id, name=name, description=description, size=share.size,
                share_size=share.size, share_proto=share.share_proto, status=states.CREATING,
            )
            spec = self._spec("create_snapshot", share, snap.id, caller)
            job = self._poster.record(s, spec)
        self._poster.post_or_undo(job, spec, undo=operations.undo("create_snapshot", snap.id, None,
                                                                  clock=self._clock))
        return self.get(caller, snap.id)

    def update(self, caller: Caller, snapshot_id: str, *, fields: dict) -> ShareSnapshot:
        """Manila updates ``display_name`` and ``display_description`` (and
        ignores other keys); ``name``/``description`` are accepted too, as for shares."""
        columns = {"display_name": "name", "name": "name",
                   "display_description": "description", "description": "description"}
        changes = {columns[k]: display_field(v, k) for k, v in fields.items() if k in columns}
        with self._db.write() as s:
            snap = snapshots_db.get(s, snapshot_id, caller.scope)
            return snapshots_db.update_fields(s, snap, now=self._clock(), **changes)

    def delete(self, caller: Caller, snapshot_id: str) -> None:
        now = self._clock()
        with self._db.write() as s:
            snap = snapshots_db.get(s, snapshot_id, caller.scope)
            if snap.status not in DELETABLE or not snapshots_db.set_status(
                s, snap.id, states.DELETING, now=now, expected=set(DELETABLE)
            ):
                raise InvalidInput(
                    f"snapshot {snap.id} is {snap.status}",
                    user_message="Invalid share snapshot: Share Snapshot status must be one of "
                    f"{DELETABLE!r}.",
                )
            previous = snap.status
            job, spec = self._record_delete(s, snap, caller, force=False)
        self._poster.post_or_undo(job, spec, undo=operations.undo("delete_snapshot", snap.id, previous,
                                                                  clock=self._clock))

    def _record_delete(self, session: Session, snap: ShareSnapshot, caller: Caller, *, force: bool):
        share = shares_db.get_any(session, snap.share_id)
        spec = self._spec("delete_snapshot", share, snap.id, caller,
                          factory_kwargs={"force": True} if force else {})
        return self._poster.record(session, spec), spec

    # --- admin --------------------------------------------------------------------

    def reset_status(self, caller: Caller, snapshot_id: str, status) -> None:
        policy.enforce(caller, "share_snapshot:reset_status")
        if status is None:
            raise InvalidInput("Must specify 'status'")
        if status not in RESETTABLE:
            raise InvalidInput(f"Invalid state. Valid states: {', '.join(RESETTABLE)}.")
        with self._db.write() as s:
            snapshots_db.get(s, snapshot_id)
            snapshots_db.force_status(s, snapshot_id, status, now=self._clock())

    def force_delete(self, caller: Caller, snapshot_id: str) -> None:
        """Delete whatever the snapshot's status; the record goes even if the
        backend fails (Manila's ``delete_snapshot(force=True)``)."""
        policy.enforce(caller, "share_snapshot:force_delete")
        now = self._clock()
        with self._db.write() as s:
            snap = snapshots_db.get(s, snapshot_id)
            previous = snap.status
            snapshots_db.force_status(s, snap.id, states.DELETING, now=now)
            job, spec = self._record_delete(s, snap, caller, force=True)
        self._poster.post_or_undo(job, spec, undo=operations.undo("delete_snapshot", snap.id, previous,
                                                                  clock=self._clock))

    # --- revert ---------------------------------------------------------------------

    def revert(self, caller: Caller, share_id: str, snapshot_id) -> None:
        """The ``revert`` share action (2.27), with Manila's checks in its order."""
        if not isinstance(snapshot_id, str):
            raise InvalidInput("Invalid input for field/attribute revert: 'snapshot_id' is a "
                               "required property and must be a string.")
        try:
            snapshot_id = str(uuid.UUID(snapshot_id))
        except ValueError:
            raise InvalidInput(f"Invalid input for field/attribute snapshot_id: {snapshot_id!r} "
                               "is not a 'uuid'.") from None
        now = self._clock()
        with self._db.write() as s:
            share = shares_db.owned(s, share_id, caller.scope)
            try:
                snap = snapshots_db.get(s, snapshot_id, caller.scope)
            except NotFound as e:
                raise InvalidInput(e.message) from None  # Manila: HTTPBadRequest
            if not type_supports(share, REVERT_SUPPORT):
                raise InvalidInput(f"Share {share.id} may not be reverted to snapshot {snap.id}, "
                                   "because the share does not have that capability.")
            if snap.share_id != share.id:
                raise InvalidInput(f"Snapshot {snap.id} is not associated with share {share.id}.")
            if share.status != states.AVAILABLE:
                raise Conflict(f"Share {share.id} is in '{share.status}' state, but it must be in "
                               "'available' state to be reverted to a snapshot.")
            if snap.status != states.AVAILABLE:
                raise Conflict(f"Snapshot {snap.id} is in '{snap.status}' state, but it must be in "
                               "'available' state to be restored.")
            latest = snapshots_db.for_share(s, share.id)
            if not latest:
                raise InvalidInput(f"Could not determine the latest snapshot for share {share.id}.")
            if latest[0].id != snap.id:
                raise Conflict(
                    f"Snapshot {snap.id} may not be restored because it is not the most recent "
                    f"snapshot of share {share.id}. Currently the latest snapshot is {latest[0].id}."
                )
            if share.access_rules_status != states.RULES_ACTIVE:
                raise Conflict(f"Snapshot {snap.id} belongs to a share {share.id} which has access "
                               f"rules that are not {states.RULES_ACTIVE}.")
            growth = snap.size - share.size
            if growth > 0:
                try:
                    enforce_quota(s, self._config.quotas, share.project_id, gigabytes=growth)
                except OverLimit as e:
                    # Manila answers this one 403 (ShareSizeExceedsAvailableQuota).
                    raise Forbidden(
                        e.message,
                        user_message=f"Quota exceeded for {share.project_id}. Reverting share "
                        f"{share.id} to snapshot {snap.id} will increase the share's size by {growth}G.",
                    ) from None
            # Both conditionally: a request racing this one changes one of them first.
            if not shares_db.set_status(s, share.id, states.REVERTING, now=now, expected={states.AVAILABLE},
                                        pending_size=snap.size if growth > 0 else None):
                raise Conflict(f"Share {share.id} is no longer available; it cannot be reverted now.")
            if not snapshots_db.set_status(s, snap.id, states.RESTORING, now=now,
                                           expected={states.AVAILABLE}):
                raise Conflict(f"Snapshot {snap.id} is no longer available; it cannot be restored now.")
            spec = operations.job_spec(
                "revert_to_snapshot", backend=share.backend, resource_id=share.id, caller=caller,
                store={"share_id": share.id, "snapshot_id": snap.id, "snapshot_size": snap.size},
            )
            job = self._poster.record(s, spec)
            share_id, snap_id = share.id, snap.id
        self._poster.post_or_undo(job, spec, undo=operations.undo(
            "revert_to_snapshot", share_id, states.AVAILABLE, clock=self._clock, snapshot_id=snap_id))

    # --- jobs -----------------------------------------------------------------------

    def _spec(self, operation: str, share: Share | None, snapshot_id: str, caller: Caller,
              *, factory_kwargs: dict | None = None):
        if share is None or share.backend is None:
            raise Conflict(f"the share of snapshot {snapshot_id} is on no backend")
        return operations.job_spec(operation, backend=share.backend, resource_id=snapshot_id, caller=caller,
                                   store={"share_id": share.id, "snapshot_id": snapshot_id},
                                   factory_kwargs=factory_kwargs)


