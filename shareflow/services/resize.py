"""Extend and shrink a share: validate as Manila does, take the share
conditionally into ``extending``/``shrinking`` with ``pending_size`` set, post
the job (``shareflow.flows.resize``), and undo the status change if it cannot
be posted.

``pending_size`` is the size the request asks for. It is written in the same
transaction as the status change, so the quota count (the larger of ``size``
and ``pending_size``, see ``shareflow.db.quotas``) holds the extra gigabytes
from the moment the request is accepted until the job settles them: the job's
last step makes it the new ``size``; a failed or reverted job clears it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow import policy
from shareflow.config import Config
from shareflow.db import messages as messages_db
from shareflow.db import pools as pools_db
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import Share, ShareType
from shareflow.domain import states
from shareflow.engine.outcomes import MESSAGE_RESOURCE_SHARE
from shareflow.engine import operations
from shareflow.engine.posting import JobPoster
from shareflow.exceptions import Forbidden, InvalidInput, OverLimit
from shareflow.flows.resize import EXTEND, SHRINK
from shareflow.scheduler.scheduler import Scheduler
from shareflow.services.context import Caller
from shareflow.services.quotas import enforce as enforce_quota

LOG = logging.getLogger(__name__)

#: manila/api/v2/shares.py ``_get_valid_extend_parameters`` / ``_shrink``.
NEW_SIZE_MESSAGE = "New share size must be specified as an integer."
#: Manila's constants.DB_MAX_INT: the largest new_size its schema accepts.
DB_MAX_INT = 0x7FFFFFFF
#: manila/share/api.py ``shrink``: a refused shrink may be retried with another size.
SHRINKABLE = (states.AVAILABLE, states.SHRINKING_POSSIBLE_DATA_LOSS_ERROR)
#: Manila's message action "extend" and detail "no valid host", and their text.
ACTION_EXTEND = "008"
DETAIL_NO_VALID_HOST = "002"
EXTEND_NO_VALID_HOST_MESSAGE = (
    "extend: No storage could be allocated for this share request. "
    "Trying again with a different size or share type may succeed."
)


def new_size(value: Any) -> int:
    """A whole number of GiB: an integer or a string of digits (Manila's
    ``non_negative_integer``); anything else is Manila's one message."""
    size = None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        size = int(value)
    if size is None or not 0 <= size <= DB_MAX_INT:
        raise InvalidInput(f"new_size {value!r} is not an integer", user_message=NEW_SIZE_MESSAGE)
    return size


def _type_specs(session: Session, share: Share) -> dict[str, str]:
    """The share's type's extra specs (its ``thin_provisioning`` decides how
    the pool's room is counted); none when the type is gone."""
    stype = session.get(ShareType, share.share_type_id) if share.share_type_id else None
    return stype.specs() if stype is not None else {}


class ResizeService:
    def __init__(self, config: Config, db: Database, poster: JobPoster, *,
                 clock: Callable[[], datetime]):
        self._config = config
        self._db = db
        self._poster = poster
        self._scheduler = Scheduler.from_config(config, clock=clock)
        self._clock = clock

    def extend(self, caller: Caller, share_id: str, size: Any, *, force: bool = False) -> None:
        """manila/share/api.py ``extend``: the share must be ``available`` and
        the new size larger. ``force`` (admins, 2.64) skips the check that the
        pool has room; without it, a pool without room leaves the share
        ``available`` with a user message, as Manila's scheduler does."""
        size = new_size(size)
        if force:
            policy.enforce(caller, "share:force_extend")
        now = self._clock()
        with self._db.write() as s:
            share = shares_db.owned(s, share_id, caller.scope)
            if share.status != states.AVAILABLE:
                raise InvalidInput(
                    f"Invalid share: Share {share.id} status must be 'available' to extend, "
                    f"but current status is: {share.status}."
                )
            if size <= share.size:
                raise InvalidInput(
                    "Invalid input received: New size for extend must be greater than current size. "
                    f"(current: {share.size}, extended: {size})."
                )
            try:
                # The quota hook: counts the larger of size and pending_size,
                # and pending_size is written below, in this transaction.
                enforce_quota(s, self._config.quotas, share.project_id, gigabytes=size - share.size)
            except OverLimit as error:
                # Manila answers an extend over quota with 403, not 413.
                raise Forbidden(str(error), user_message=error.user_message) from error
            if not force and not self._scheduler.has_room(s, share.host, size - share.size,
                                                            _type_specs(s, share)):
                messages_db.create(
                    s, now=now, project_id=share.project_id, request_id=caller.request_id,
                    resource_type=MESSAGE_RESOURCE_SHARE, resource_id=share.id,
                    action_id=ACTION_EXTEND, detail_id=DETAIL_NO_VALID_HOST,
                    user_message=EXTEND_NO_VALID_HOST_MESSAGE,
                )
                return
            self._take(s, share, states.EXTENDING, size, now, action="extend")
            spec = self._spec(EXTEND, share, size, caller)
            job = self._poster.record(s, spec)
        self._poster.post_or_undo(job, spec, undo=operations.undo(EXTEND, share_id, states.AVAILABLE,
                                                                  clock=self._clock))

    def shrink(self, caller: Caller, share_id: str, size: Any) -> None:
        """manila/share/api.py ``shrink``: the share must be ``available`` (or
        its last shrink refused for possible data loss) and the new size
        smaller and positive. Whether the data fits is the backend's call."""
        size = new_size(size)
        now = self._clock()
        with self._db.write() as s:
            share = shares_db.owned(s, share_id, caller.scope)
            if share.status not in SHRINKABLE:
                raise InvalidInput(
                    f"Invalid share: Share {share.id} status must in ({', '.join(SHRINKABLE)}) to shrink, "
                    f"but current status is: {share.status}."
                )
            if size <= 0 or size >= share.size:
                raise InvalidInput(
                    "Invalid input received: New size for shrink must be less than current size and "
                    f"greater than 0 (current: {share.size}, new: {size})."
                )
            self._refuse_if_backend_cannot_shrink(s, share)
            previous = share.status
            self._take(s, share, states.SHRINKING, size, now, action="shrink")
            spec = self._spec(SHRINK, share, size, caller)
            job = self._poster.record(s, spec)
        self._poster.post_or_undo(job, spec, undo=operations.undo(SHRINK, share_id, previous,
                                                                  clock=self._clock))

    # --- steps ------------------------------------------------------------

    def _refuse_if_backend_cannot_shrink(self, session: Session, share: Share) -> None:
        """A share whose pool reports ``shrink_support`` false (XFS images
        cannot shrink) is refused here, before any status change or job: a
        capability, not a failed job. Read from its pool's last report (an API
        node has no backend configuration); a pool that never reported is left
        to its driver, which refuses the same."""
        pool = pools_db.pool_state(session, share.host or "", now=self._clock(), stale_after=None)
        if pool is not None and pool.capabilities.get("shrink_support") is False:
            driver = pool.capabilities.get("driver_name", "its driver")
            raise InvalidInput(
                f"Invalid share: Share {share.id} cannot be shrunk: its backend {pool.backend} "
                f"({driver}) does not support shrinking shares."
            )

    @staticmethod
    def _take(session: Session, share: Share, working: str, size: int, now: datetime, *, action: str) -> None:
        """The conditional change that makes the share this request's: from
        the status just checked, with ``pending_size`` recorded."""
        if not shares_db.set_status(session, share.id, working, now=now, expected={share.status},
                                    pending_size=size):
            current = session.scalar(sa.select(Share.status).where(Share.id == share.id))
            raise InvalidInput(
                f"Invalid share: Share {share.id} status changed to {current} while it was asked to {action}."
            )

    @staticmethod
    def _spec(operation: str, share: Share, size: int, caller: Caller):
        return operations.job_spec(
            operation, backend=share.backend, resource_id=share.id, caller=caller,
            store={"share_id": share.id, "new_size": size, "old_size": share.size},
            # The owner's: a failure's user message is for them, whoever asked.
            project_id=share.project_id,
        )
