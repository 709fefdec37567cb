"""Per-project quotas: enforcing them, showing them, and changing them (admin).

Limits are the configured defaults (``[quotas]``) overlaid with a project's own
rows in ``quotas``; -1 means unlimited (Manila). Usage is the project's
``quota_usages`` counters (:mod:`shareflow.db.quotas`), which the database
keeps in the transaction of every write to shares and snapshots; it is read
in the same write transaction that is about to add to it, under a
per-project lock, so two requests can never both take the last unit and a
failed or reverted operation gives back exactly what it held.

:func:`enforce` is what the operations call. Each calls it inside its write
transaction, *before* the write that makes the new usage visible:

* create share: ``enforce(s, config.quotas, project, shares=1, gigabytes=size)``,
  then insert the share;
* extend share: ``enforce(s, config.quotas, project, gigabytes=new_size - size)``,
  then set ``pending_size = new_size`` (the job clears it when it ends; a
  failed extend then counts only ``size`` again); Manila answers an extend
  over quota 403 with the same message (manila/api/v2/shares.py ``_extend``);
* create snapshot: ``enforce(s, config.quotas, project, snapshots=1,
  snapshot_gigabytes=share.size)``, then insert the snapshot.

Lock order: on PostgreSQL :func:`enforce` takes the project's quota lock (a
transaction-scoped advisory lock) and holds it to the end of the transaction.
Call it *before* any statement that locks a row (a conditional ``UPDATE`` of
the share, a no-op update that holds it): a request that locks share X and
then waits for the quota lock, while another holds the quota lock and waits
for X, is a deadlock that PostgreSQL breaks by failing one of them (503).
Checking first loses nothing: no other request adds to the counters while
the lock is held.

Going over answers 413 ``overLimit`` with Manila's message (manila/exception.py
``ShareSizeExceedsAvailableQuota``, ``ShareLimitExceeded``,
``SnapshotSizeExceedsAvailableQuota``, ``SnapshotLimitExceeded``), and as the
error leaves the transaction, nothing is written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shareflow import policy
from shareflow.config import MAX_QUOTA, QuotaConfig
from shareflow.db import quotas as quotas_db
from shareflow.db import share_types as types_db
from shareflow.db.engine import Database
from shareflow.db.quotas import GIGABYTES, RESOURCES, SHARES, SNAPSHOT_GIGABYTES, SNAPSHOTS, UNLIMITED
from shareflow.domain import validation
from shareflow.exceptions import Forbidden, InvalidInput, NotFound, OverLimit
from shareflow.services.context import Caller

LOG = logging.getLogger(__name__)

SHARE_GIGABYTES_EXCEEDED = (
    "Requested share exceeds allowed project/user or share type gigabytes quota."
)
SHARES_EXCEEDED = (
    "Maximum number of shares allowed ({allowed}) either per project/user or share type "
    "quota is exceeded."
)
SNAPSHOT_GIGABYTES_EXCEEDED = (
    "Requested snapshot exceeds allowed project/user or share type gigabytes quota."
)
SNAPSHOTS_EXCEEDED = (
    "Maximum number of snapshots allowed ({allowed}) either per project/user or share type "
    "quota is exceeded."
)
#: Checked in this order, as manila/share/api.py does (size before count).
_CHECKS = (
    (GIGABYTES, SHARE_GIGABYTES_EXCEEDED),
    (SHARES, SHARES_EXCEEDED),
    (SNAPSHOT_GIGABYTES, SNAPSHOT_GIGABYTES_EXCEEDED),
    (SNAPSHOTS, SNAPSHOTS_EXCEEDED),
)

#: webob's HTTPForbidden text, what Manila answers for another project's quotas.
ACCESS_DENIED = "Access was denied to this resource."
PROJECT_ID_MAX = 255


def enforce(session: Session, defaults: QuotaConfig, project_id: str, *, shares: int = 0,
            gigabytes: int = 0, snapshots: int = 0, snapshot_gigabytes: int = 0) -> None:
    """Raise :class:`OverLimit` if adding these amounts would take the project
    over any of its limits. Call inside the write transaction that then adds
    them (see the module docstring); it holds the project's quota lock until
    that transaction ends. Zero or negative amounts are not checked (a shrink
    never fails on quota), as in Manila."""
    deltas = {SHARES: shares, GIGABYTES: gigabytes, SNAPSHOTS: snapshots,
              SNAPSHOT_GIGABYTES: snapshot_gigabytes}
    if not any(v > 0 for v in deltas.values()):
        return
    quotas_db.lock_project(session, project_id)
    limits = quotas_db.limits(session, project_id, defaults.as_dict())
    used = quotas_db.usage(session, project_id)
    for resource, message in _CHECKS:
        delta, limit = deltas[resource], limits[resource]
        if delta > 0 and limit != UNLIMITED and used[resource] + delta > limit:
            LOG.info("quota %s exceeded for project %s: %d in use, %d asked, limit %d",
                     resource, project_id, used[resource], delta, limit)
            raise OverLimit(
                f"quota {resource} of project {project_id}: {used[resource]} + {delta} > {limit}",
                user_message=message.format(allowed=limit),
            )


def project_id_arg(value: Any) -> str:
    """A project id from a URL: any non-empty text a database column can hold."""
    if not isinstance(value, str) or not value or len(value) > PROJECT_ID_MAX or "\x00" in value:
        raise InvalidInput("Invalid project id.")
    return value


def quota_value(key: str, value: Any) -> int:
    """A new limit as Manila reads it (an integer, or a string of one)."""
    error = InvalidInput(f"Quota '{value}' for {key} should be integer.")
    if isinstance(value, bool):
        raise error
    if isinstance(value, float):
        if not value.is_integer():
            raise error
        value = int(value)
    elif isinstance(value, str):
        try:
            value = int(value.strip(), 10)
        except ValueError:
            raise error from None
    elif not isinstance(value, int):
        raise error
    if value < UNLIMITED:
        raise InvalidInput("Quota limit must be -1 or greater.")
    if value > MAX_QUOTA:
        raise InvalidInput(f"Quota limit must be less than {MAX_QUOTA + 1}.")
    return value


class QuotaService:
    def __init__(self, defaults: QuotaConfig, db: Database, *, clock: Callable[[], datetime]):
        self._defaults = defaults
        self._db = db
        self._clock = clock

    def defaults(self) -> dict[str, int]:
        return self._defaults.as_dict()

    def show(self, caller: Caller, project_id: str, *, detail: bool = False,
             share_type: str | None = None) -> dict:
        """The project's limits, or with ``detail`` each as ``{limit, in_use,
        reserved}`` (Manila's detail view; nothing is ever merely reserved here:
        what a request takes is counted as in use at once)."""
        project_id = project_id_arg(project_id)
        # webob's plain 403 text, as Manila's quota controller answers it.
        policy.enforce(caller, "quota_set:show", target=project_id, message=ACCESS_DENIED)
        with self._db.read() as s:
            if share_type is not None:
                self._share_type(s, share_type)
            limits = quotas_db.limits(s, project_id, self.defaults())
            if not detail:
                return limits
            used = quotas_db.usage(s, project_id)
        return {r: {"limit": limits[r], "in_use": used[r], "reserved": 0} for r in RESOURCES}

    def usage(self, caller: Caller) -> tuple[dict[str, int], dict[str, int]]:
        """The caller's own project's limits and usage (``GET /limits``)."""
        with self._db.read() as s:
            return (quotas_db.limits(s, caller.project_id, self.defaults()),
                    quotas_db.usage(s, caller.project_id))

    def update(self, caller: Caller, project_id: str, values: dict[str, int], *,
               force: bool = False) -> dict[str, int]:
        """Set some of the project's limits (admin). Unless ``force``, a limit
        below what the project already uses is refused (Manila's two checks and
        messages, in its order); all are set, or none."""
        policy.enforce(caller, "quota_set:update")
        project_id = project_id_arg(project_id)
        unknown = sorted(set(values) - set(RESOURCES))
        if unknown:
            raise InvalidInput(f"Bad key(s) {','.join(unknown)} in quota_set.")
        with self._db.write() as s:
            quotas_db.lock_project(s, project_id)
            limits = quotas_db.limits(s, project_id, self.defaults())
            used = quotas_db.usage(s, project_id)
            if not force:
                for key, value in values.items():
                    if value >= 0 and limits[key] >= 0 and used[key] > value:
                        raise InvalidInput(
                            f"Quota value {value} for {key} is smaller than already used and "
                            f"reserved {used[key]}."
                        )
                    if value != UNLIMITED and value < used[key]:
                        raise InvalidInput(f"Quota limit must be greater than {used[key]}.")
            quotas_db.set_limits(s, project_id, values, now=self._clock())
            return quotas_db.limits(s, project_id, self.defaults())

    def delete(self, caller: Caller, project_id: str) -> None:
        """Back to the defaults (admin)."""
        policy.enforce(caller, "quota_set:delete")
        project_id = project_id_arg(project_id)
        with self._db.write() as s:
            quotas_db.lock_project(s, project_id)
            quotas_db.delete_all(s, project_id)

    def check_share_type(self, share_type: str) -> None:
        with self._db.read() as s:
            self._share_type(s, share_type)

    @staticmethod
    def _share_type(session, ref: str) -> None:
        """Manila's 404 for a ``share_type`` argument naming no share type."""
        ref = validation.optional_text(ref, "share_type", 255)
        try:
            types_db.get_by_name_or_id(session, ref)
        except NotFound:
            raise NotFound(f"share type {ref!r}",
                           user_message=f"Share type with name or id '{ref}' not found.") from None


