"""Admin recovery of shares: ``reset_status`` and ``force_delete``
(manila/api/openstack/wsgi.py ``AdminActionsMixin``, manila/share/api.py
``delete(force=True)``).

Both are overrides, not transitions: an admin may set any status a share can
have, from any status, and force-delete a share whatever its status. They are
still single conditional writes (``WHERE status = <the status read>``), so an
override that races a job's own status change fails cleanly instead of
silently undoing it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from shareflow import policy
from shareflow.config import Config
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import Share, ShareSnapshot
from shareflow.domain import states
from shareflow.engine.posting import JobPoster, JobSpec
from shareflow.exceptions import Conflict, InvalidInput
from shareflow.flows.delete_share import delete_share, share_flow_kwargs
from shareflow.scheduler.scheduler import Placement
from shareflow.services import scheduler_hints
from shareflow.services.context import Caller

LOG = logging.getLogger(__name__)

#: Statuses in which the share is some job's to finish: ``pending_size`` stays
#: for that job (set by an extend or shrink) when an admin resets to one of
#: these; anything else settles it.
_KEEPS_PENDING_SIZE = frozenset({states.EXTENDING, states.SHRINKING})


def valid_status(body: Any) -> str:
    """manila ``AdminActionsMixin.validate_update``: ``{"status": S}`` with S
    one of the statuses a share can have (``states.SHARE_RESETTABLE``)."""
    try:
        status = body["status"]
    except (TypeError, KeyError, IndexError):
        raise InvalidInput("no status", user_message="Must specify 'status'") from None
    if not isinstance(status, str) or status not in states.SHARE_RESETTABLE:
        raise InvalidInput(
            f"invalid status {status!r}",
            user_message=f"Invalid state. Valid states: {', '.join(sorted(states.SHARE_RESETTABLE))}.",
        )
    return status


class ShareAdminService:
    def __init__(self, config: Config, db: Database, poster: JobPoster, *,
                 clock: Callable[[], datetime]):
        self._config = config
        self._db = db
        self._poster = poster
        self._clock = clock

    def reset_status(self, caller: Caller, share_id: str, body: Any) -> None:
        """Set the share's status, as asked. Policy first, then the share, then
        the body (Manila's order). A reset to a status no job owns clears
        ``pending_size``, so quotas count the share's recorded size again."""
        policy.enforce(caller, "share:reset_status")
        now = self._clock()
        with self._db.write() as s:
            share = shares_db.get(s, share_id, None)
            status = valid_status(body)
            values = {} if status in _KEEPS_PENDING_SIZE else {"pending_size": None}
            if not shares_db.override_status(s, share_id, status, now=now, expected=share.status, **values):
                raise Conflict(f"share {share_id} changed status while it was reset",
                               user_message=f"Share {share_id} changed status; try again.")
        LOG.info("share %s: status reset from %s to %s by %s", share_id, share.status, status, caller.user_id)

    def reset_task_state(self, caller: Caller, share_id: str, body: Any) -> None:
        """Manila's share ``reset_task_state``: policy, then the body, then
        the share (a share that is not there is 404 whatever the body)."""
        policy.enforce(caller, "share:reset_task_state")
        task_state = valid_task_state(body)
        with self._db.write() as s:
            share = shares_db.get(s, share_id, None)
            share.task_state = task_state
            share.updated_at = self._clock()
        LOG.info("share %s: task_state reset to %s by %s", share_id, task_state, caller.user_id)

    def force_delete(self, caller: Caller, share_id: str) -> None:
        """Delete the share whatever its status: a share that never reached a
        backend is marked deleted at once; any other is taken into
        ``deleting`` and gets a delete job, whose steps all tolerate what they
        remove being absent already. As in Manila, a share with snapshots
        is not deleted even so."""
        policy.enforce(caller, "share:force_delete")
        now = self._clock()
        with self._db.write() as s:
            share = shares_db.get(s, share_id, None)
            snapshots = s.scalar(sa.select(sa.func.count()).select_from(ShareSnapshot).where(
                ShareSnapshot.share_id == share_id, ShareSnapshot.deleted_at.is_(None)))
            if snapshots:
                raise InvalidInput(f"Invalid share: Share still has {snapshots} dependent snapshots.")
            # As a delete does (Manila's delete(force=True) too): out of its hints' partners' lists.
            scheduler_hints.unlink(s, share_id)
            previous = share.status
            if not shares_db.override_status(s, share_id, states.DELETING, now=now, expected=previous,
                                             pending_size=None):
                raise Conflict(f"share {share_id} changed status while it was force-deleted",
                               user_message=f"Share {share_id} changed status; try again.")
            if share.backend is None:
                # Never placed on a backend: nothing exists there to remove.
                shares_db.mark_deleted(s, share_id, now=now)
                return
            spec = JobSpec(
                operation="delete_share", backend=share.backend, resource_type=states.SHARE,
                resource_id=share_id, factory=delete_share,
                factory_kwargs=share_flow_kwargs(Placement.of_share(share)),
                store={"share_id": share_id, "resource_id": share_id},
                project_id=share.project_id, request_id=caller.request_id,
            )
            job = self._poster.record(s, spec)
        LOG.info("share %s: force-deleted from %s by %s", share_id, previous, caller.user_id)
        self._poster.post_or_undo(job, spec, undo=lambda s: _back_to(s, share_id, previous, self._clock()))


#: Manila's ``constants.TASK_STATE_STATUSES`` (and None): what an admin may
#: set a share's ``task_state`` to. This service runs no migrations, so it
#: never sets one itself; the column is the admin's to reset.
TASK_STATES = frozenset({
    "migration_starting", "migration_in_progress", "migration_completing", "migration_success",
    "migration_error", "migration_cancelled", "migration_driver_in_progress",
    "migration_driver_phase1_done", "data_copying_starting", "data_copying_in_progress",
    "data_copying_completing", "data_copying_completed", "data_copying_cancelled", "data_copying_error",
})


def valid_task_state(body: Any) -> str | None:
    """The request schema (a known state or null), then
    ``AdminActionsMixin.validate_update``: ``task_state`` must be given."""
    if not isinstance(body, dict):
        raise InvalidInput("reset_task_state must be an object",
                           user_message="Invalid input for field/attribute reset_task_state.")
    for key in ("task_state", "os-task_state"):
        if key in body and body[key] is not None and body[key] not in TASK_STATES:
            raise InvalidInput(f"invalid {key} {body[key]!r}", user_message=(
                f"Invalid input for field/attribute {key}. Value: {body[key]}. "
                f"Valid states: None, {', '.join(sorted(TASK_STATES))}."))
    if "task_state" not in body:
        raise InvalidInput("no task_state", user_message="Must specify 'task_state'")
    return body["task_state"]


def _back_to(session, share_id: str, status: str, now: datetime) -> None:
    """Undo of our own just-committed change when its job could not be posted."""
    share = session.get(Share, share_id)
    if share is not None and share.status == states.DELETING and share.deleted_at is None:
        share.status = status
        share.updated_at = now
