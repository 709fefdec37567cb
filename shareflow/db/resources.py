"""A job's resource, whatever its kind: the one path by which a job moves it.

Every operation's statuses are declared in ``shareflow.domain.states.OPERATIONS``;
this module applies them, each as a conditional transition
(``shareflow.db.transitions``): taking the resource for a retried job,
finishing it on success, failing it, and giving it back when its job could
not be posted. What an operation writes besides the status (a share's size,
its export locations, a snapshot's provider location) is here too, so the
flows' last step is one task for every operation.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db import access as access_db
from shareflow.db import share_groups as groups_db
from shareflow.db import shares as shares_db
from shareflow.db import snapshots as snapshots_db
from shareflow.db.models import AccessRule, Share, ShareGroupSnapshot, ShareServer, ShareSnapshot
from shareflow.db.transitions import give_back as _give_back
from shareflow.db.transitions import transition
from shareflow.domain import states
from shareflow.domain.states import Operation
from shareflow.exceptions import ResourceStateChanged

MODELS = {
    states.SHARE: Share,
    states.SNAPSHOT: ShareSnapshot,
    states.SHARE_SERVER: ShareServer,
    states.ACCESS_RULE: AccessRule,
    states.SHARE_GROUP_SNAPSHOT: ShareGroupSnapshot,
}
#: Not a stored status: there is no row at all.
GONE = "gone"


def _column(op: Operation) -> str:
    return "state" if op.resource_kind == states.ACCESS_RULE else "status"


def _status_select(kind: str) -> sa.Select:
    """The status column, ``deleted_at`` and (a share's) backend of one
    resource row, on the table: built once per kind, the id bound at
    execution. Not the ORM entity: loading a share also loads, by its
    ``selectin`` relationships, its type (and the type's specs), its export
    locations and its metadata - five statements and their objects where the
    jobs' first and last steps need one column."""
    table = MODELS[kind].__table__
    columns = [table.c.state if kind == states.ACCESS_RULE else table.c.status, table.c.deleted_at]
    if kind == states.SHARE:
        columns.append(table.c.backend)
    return sa.select(*columns).where(table.c.id == sa.bindparam("resource_id"))


_STATUS_SELECTS = {kind: _status_select(kind) for kind in MODELS}


def _status_row(session, op: Operation, resource_id: str):
    return session.execute(_STATUS_SELECTS[op.resource_kind], {"resource_id": resource_id}).first()


def _status_in(row) -> str:
    if row is None:
        return GONE
    if row[1] is not None:
        return states.DELETED
    return row[0]


def status(session: Session | sa.Connection, op: Operation, resource_id: str) -> str:
    """The resource's status; ``deleted`` when soft-deleted, ``gone`` when there
    is no row. One statement, which reads the database (not the session's
    identity map): ``session`` may also be a Connection."""
    return _status_in(_status_row(session, op, resource_id))


def status_and_backend(session: Session | sa.Connection, op: Operation,
                       resource_id: str) -> tuple[str, str | None]:
    """:func:`status` and, for a share, the backend it is on (None for any
    other kind, or a share with none yet), in the same one statement."""
    row = _status_row(session, op, resource_id)
    backend = row[2] if row is not None and op.resource_kind == states.SHARE else None
    return _status_in(row), backend


def share_of(session: Session, op: Operation, resource_id: str) -> str | None:
    """The share a resource belongs to (itself for a share; None for a share server)."""
    if op.resource_kind == states.SHARE:
        return resource_id
    row = session.get(MODELS[op.resource_kind], resource_id)
    return getattr(row, "share_id", None) if row is not None else None


def _move(session: Session, op: Operation, resource_id: str, target: str, *, now: datetime,
          expected=None, values: dict | None = None) -> bool:
    moved = transition(session, MODELS[op.resource_kind], resource_id, op.resource_kind, target, now=now,
                       expected=expected, column=_column(op), values=values)
    if moved and op.resource_kind == states.ACCESS_RULE:
        access_db.refresh_share_rules_status(session, share_of(session, op, resource_id), now=now)
    return moved


# --- a retried job takes its resource back --------------------------------------

def take_back(session: Session, op: Operation, resource_id: str, store: dict, *, now: datetime) -> bool:
    """From one of the operation's failure statuses back to its first working
    status (with what the request had set: a resize's ``pending_size``), for
    a job an operator retries or resumes. Returns whether it moved."""
    values = {"pending_size": store.get("new_size")} if op.name in ("extend_share", "shrink_share") else None
    return _move(session, op, resource_id, op.start_status, now=now, expected=op.failure_statuses,
                 values=values)


# --- success ------------------------------------------------------------------------

def _share_values(op: Operation, outputs: dict) -> dict:
    if op.name in ("extend_share", "shrink_share"):
        return {"size": outputs["new_size"], "pending_size": None}
    if op.name == "revert_to_snapshot":
        return {"size": outputs["snapshot_size"], "pending_size": None}
    if op.name == "create_snapshot":
        return {"provider_location": outputs["provider_location"]}
    return {}


def _after_success(session: Session, op: Operation, resource_id: str, outputs: dict, now: datetime) -> None:
    if op.name == "create_share":
        shares_db.replace_export_locations(session, resource_id, outputs["export_locations"], now=now)
    elif op.resource_kind == states.SHARE_GROUP_SNAPSHOT:
        groups_db.set_member_statuses(session, resource_id, op.succeeded, now=now)
    elif op.name == "revert_to_snapshot":
        # Manila's manager makes both available in one go.
        snapshots_db.set_status(session, outputs["snapshot_id"], states.AVAILABLE, now=now,
                                expected={states.RESTORING})


def _done_already(session: Session, op: Operation, resource_id: str, outputs: dict) -> bool:
    """Resumed after the last step had committed."""
    current = status(session, op, resource_id)
    if current != op.succeeded:
        return False
    if op.name in ("extend_share", "shrink_share"):
        share = session.get(Share, resource_id)
        return share.size == outputs["new_size"] and share.pending_size is None
    return True


#: Deleting for good: the kind's own soft delete (a share's also drops its
#: export locations and rules).
_MARK_DELETED: dict[str, Callable[..., bool]] = {
    states.SHARE: shares_db.mark_deleted,
    states.SNAPSHOT: snapshots_db.mark_deleted,
    states.ACCESS_RULE: access_db.mark_deleted,
    states.SHARE_GROUP_SNAPSHOT: groups_db.mark_snapshot_deleted,
}


def succeed(session: Session, op: Operation, resource_id: str, outputs: dict, *, now: datetime) -> None:
    """The operation's success status (and what goes with it), from its
    working status; nothing if it is there already (a resumed last step).
    Raises ResourceStateChanged when the resource left its working status."""
    if op.succeeded == states.DELETED:
        if status(session, op, resource_id) in (states.DELETED, GONE):
            return
        mark = _MARK_DELETED.get(op.resource_kind)
        moved = mark(session, resource_id, now=now) if mark else _move(
            session, op, resource_id, states.DELETED, now=now, values={"deleted_at": now})
        if moved and op.resource_kind == states.ACCESS_RULE:
            access_db.refresh_share_rules_status(session, outputs["share_id"], now=now)
    else:
        moved = _move(session, op, resource_id, op.succeeded, now=now, expected=op.working,
                      values=_share_values(op, outputs) or None)
        if moved:
            _after_success(session, op, resource_id, outputs, now)
        elif _done_already(session, op, resource_id, outputs):
            return
    if not moved:
        current = status(session, op, resource_id)
        raise ResourceStateChanged(
            f"{op.resource_kind} {resource_id} is {current}, not {sorted(op.working)}, at the end of {op.name}",
            user_message=f"the {op.resource_kind.replace('_', ' ')} changed status to {current} "
                         f"while the job ran",
        )


# --- failure ------------------------------------------------------------------------

def fail(session: Session, op: Operation, resource_id: str, target: str, *, now: datetime) -> bool:
    """From the operation's working status to ``target`` (one of its failure
    statuses); a share's pending size is cleared, and the snapshot a share
    was being reverted to is given back. Returns whether it moved."""
    values = {"pending_size": None} if op.resource_kind == states.SHARE else None
    moved = _move(session, op, resource_id, target, now=now, expected=op.working, values=values)
    if moved and op.name == "revert_to_snapshot":
        snapshots_db.release_restoring(session, resource_id, now=now)
    if moved and op.resource_kind == states.SHARE_GROUP_SNAPSHOT:
        groups_db.set_member_statuses(session, resource_id, target, now=now)
    return moved


# --- a job that could not be posted ---------------------------------------------------

def give_back(session: Session, op: Operation, resource_id: str, previous: str | None, *,
              now: datetime, snapshot_id: str | None = None, made: bool | None = None) -> None:
    """Undo the request's own status change when its job could not be posted
    (nothing ran): a resource the request made (``made``, by default whether
    the operation creates one) is removed; any other goes back to the status
    it had (``previous``), with a share's pending size cleared and, for a
    revert, the snapshot it held given back."""
    model = MODELS[op.resource_kind]
    share_id = share_of(session, op, resource_id)
    if op.creates if made is None else made:
        session.execute(sa.delete(model).where(model.id == resource_id))
        session.flush()
    else:
        values = {"pending_size": None} if op.resource_kind == states.SHARE else None
        _give_back(session, model, resource_id, working=op.working, previous=previous, now=now,
                   column=_column(op), values=values)
    if op.name == "revert_to_snapshot" and snapshot_id:
        _give_back(session, ShareSnapshot, snapshot_id, working={states.RESTORING}, previous=states.AVAILABLE,
                   now=now)
    if op.resource_kind == states.ACCESS_RULE and share_id:
        access_db.refresh_share_rules_status(session, share_id, now=now)
