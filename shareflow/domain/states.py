"""Statuses and the transitions allowed between them, as data.

Pure: no I/O. The database layer turns each transition into a conditional
``UPDATE ... WHERE status IN (sources)``; the API and the tasks ask this module
which sources a target may be reached from, so the rules live in one place.
Status names are Manila's.
"""

from __future__ import annotations

from dataclasses import dataclass

from shareflow.exceptions import InvalidTransition

# --- shares -----------------------------------------------------------------
CREATING = "creating"
AVAILABLE = "available"
ERROR = "error"
DELETING = "deleting"
ERROR_DELETING = "error_deleting"
EXTENDING = "extending"
EXTENDING_ERROR = "extending_error"
SHRINKING = "shrinking"
SHRINKING_ERROR = "shrinking_error"
SHRINKING_POSSIBLE_DATA_LOSS_ERROR = "shrinking_possible_data_loss_error"
REVERTING = "reverting"
REVERTING_ERROR = "reverting_error"
#: Not a stored status: the row is gone (soft-deleted).
DELETED = "deleted"

# --- snapshots (also CREATING, AVAILABLE, ERROR, DELETING, ERROR_DELETING) -------
RESTORING = "restoring"

# --- share servers (also CREATING, ERROR, DELETING, DELETED) --------------------
SERVER_ACTIVE = "active"

# --- access rules -------------------------------------------------------------
QUEUED_TO_APPLY = "queued_to_apply"
APPLYING = "applying"
ACTIVE = "active"
QUEUED_TO_DENY = "queued_to_deny"
DENYING = "denying"

# --- a share's access_rules_status (Manila >= 2.28 names) ---------------------
RULES_ACTIVE = "active"
RULES_SYNCING = "syncing"
RULES_ERROR = "error"

# --- jobs (our own mirror of a jobboard job) ----------------------------------
JOB_POSTED = "posted"
JOB_RUNNING = "running"
JOB_SUCCEEDED = "succeeded"
JOB_FAILED = "failed"
JOB_TRASHED = "trashed"
# A trashed job is off the board and runs no more by itself: it was never
# posted (the housekeeping gave up on it), or its flow could not be loaded,
# not even from a clean reload. The latter keeps its node in the board's
# trash and its logbook as it was, and its resource is failed with a message
# naming the job: resuming it is posting a board job for the same logbook and
# flow detail again (its record has both ids).

SHARE = "share"
SNAPSHOT = "snapshot"
SHARE_SERVER = "share_server"
ACCESS_RULE = "access_rule"
JOB = "job"

#: kind -> {target status: statuses it may be reached from}
TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    SHARE: {
        CREATING: frozenset(),  # initial
        AVAILABLE: frozenset({CREATING, EXTENDING, SHRINKING, REVERTING}),
        ERROR: frozenset({CREATING}),
        DELETING: frozenset({AVAILABLE, ERROR, ERROR_DELETING}),
        ERROR_DELETING: frozenset({DELETING}),
        DELETED: frozenset({DELETING}),
        EXTENDING: frozenset({AVAILABLE}),
        EXTENDING_ERROR: frozenset({EXTENDING}),
        # Manila lets a share whose shrink was refused be shrunk again.
        SHRINKING: frozenset({AVAILABLE, SHRINKING_POSSIBLE_DATA_LOSS_ERROR}),
        SHRINKING_ERROR: frozenset({SHRINKING}),
        SHRINKING_POSSIBLE_DATA_LOSS_ERROR: frozenset({SHRINKING}),
        REVERTING: frozenset({AVAILABLE}),
        REVERTING_ERROR: frozenset({REVERTING}),
    },
    SNAPSHOT: {
        CREATING: frozenset(),  # initial
        AVAILABLE: frozenset({CREATING, RESTORING}),
        ERROR: frozenset({CREATING}),
        DELETING: frozenset({AVAILABLE, ERROR, ERROR_DELETING}),
        ERROR_DELETING: frozenset({DELETING}),
        DELETED: frozenset({DELETING}),
        # While its share is reverted to it.
        RESTORING: frozenset({AVAILABLE}),
    },
    SHARE_SERVER: {
        CREATING: frozenset(),  # initial
        SERVER_ACTIVE: frozenset({CREATING}),
        ERROR: frozenset({CREATING, DELETING}),
        DELETING: frozenset({SERVER_ACTIVE, ERROR}),
        DELETED: frozenset({DELETING, CREATING}),  # a create reverted deletes it
    },
    ACCESS_RULE: {
        QUEUED_TO_APPLY: frozenset(),  # initial
        APPLYING: frozenset({QUEUED_TO_APPLY}),
        ACTIVE: frozenset({APPLYING}),
        ERROR: frozenset({QUEUED_TO_APPLY, APPLYING, DENYING, QUEUED_TO_DENY}),
        QUEUED_TO_DENY: frozenset({ACTIVE, ERROR, QUEUED_TO_APPLY, APPLYING}),
        DENYING: frozenset({QUEUED_TO_DENY}),
        DELETED: frozenset({DENYING}),
    },
    JOB: {
        JOB_POSTED: frozenset(),
        JOB_RUNNING: frozenset({JOB_POSTED, JOB_RUNNING}),  # RUNNING again: resumed by another conductor
        JOB_SUCCEEDED: frozenset({JOB_POSTED, JOB_RUNNING}),
        JOB_FAILED: frozenset({JOB_POSTED, JOB_RUNNING}),
        JOB_TRASHED: frozenset({JOB_POSTED, JOB_RUNNING}),
    },
}

#: Statuses in which a share is busy with an operation (a job owns it).
SHARE_TRANSITIONAL = frozenset({CREATING, DELETING, EXTENDING, SHRINKING, REVERTING})
SNAPSHOT_TRANSITIONAL = frozenset({CREATING, DELETING, RESTORING})
#: What an admin's reset_status may set (Manila lets admins set any valid
#: status; transitional ones included, to hand a resource back to a job).
SHARE_RESETTABLE = frozenset(t for t in TRANSITIONS[SHARE] if t != DELETED)
SNAPSHOT_RESETTABLE = frozenset(t for t in TRANSITIONS[SNAPSHOT] if t != DELETED)
RULE_TRANSITIONAL = frozenset({QUEUED_TO_APPLY, APPLYING, QUEUED_TO_DENY, DENYING})
#: Rules whose client must be in the export's client list.
RULES_IN_EFFECT = frozenset({QUEUED_TO_APPLY, APPLYING, ACTIVE})


def sources(kind: str, target: str) -> frozenset[str]:
    """The statuses ``target`` may be reached from."""
    try:
        return TRANSITIONS[kind][target]
    except KeyError:
        raise InvalidTransition(f"unknown {kind} status {target!r}") from None


def check_transition(kind: str, source: str, target: str) -> None:
    """Raise :class:`InvalidTransition` unless ``source -> target`` is allowed."""
    if source not in sources(kind, target):
        raise InvalidTransition(
            f"{kind} cannot go from {source!r} to {target!r}",
            user_message=f"{kind.replace('_', ' ')} status is {source}, cannot become {target}",
        )


def is_allowed(kind: str, source: str, target: str) -> bool:
    try:
        check_transition(kind, source, target)
    except InvalidTransition:
        return False
    return True


@dataclass(frozen=True)
class Operation:
    """What a job does to its resource's status.

    ``working`` are the statuses the resource holds while the job owns it (the
    API sets the first before posting); the job ends in ``succeeded`` or, when
    it fails or is trashed, ``failed``.
    """

    name: str
    resource_kind: str
    working: frozenset[str]
    succeeded: str
    failed: str
    #: verb used in user messages ("create", "delete", ...)
    action: str
    #: Manila's message action id for this operation.
    action_id: str


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("create_share", SHARE, frozenset({CREATING}), AVAILABLE, ERROR, "create", "002"),
        Operation("delete_share", SHARE, frozenset({DELETING}), DELETED, ERROR_DELETING, "delete", "007"),
        Operation("extend_share", SHARE, frozenset({EXTENDING}), AVAILABLE, EXTENDING_ERROR, "extend", "008"),
        Operation("shrink_share", SHARE, frozenset({SHRINKING}), AVAILABLE, SHRINKING_ERROR, "shrink", "009"),
        Operation(
            "revert_to_snapshot", SHARE, frozenset({REVERTING}), AVAILABLE, REVERTING_ERROR,
            "revert to snapshot", "006",
        ),
        Operation("create_snapshot", SNAPSHOT, frozenset({CREATING}), AVAILABLE, ERROR, "create", "002"),
        Operation(
            "delete_snapshot", SNAPSHOT, frozenset({DELETING}), DELETED, ERROR_DELETING, "delete", "007",
        ),
        Operation(
            "delete_share_server", SHARE_SERVER, frozenset({DELETING}), DELETED, ERROR, "delete", "007",
        ),
        Operation(
            "allow_access", ACCESS_RULE, frozenset({QUEUED_TO_APPLY, APPLYING}), ACTIVE, ERROR,
            "allow access", "010",
        ),
        Operation(
            "deny_access", ACCESS_RULE, frozenset({QUEUED_TO_DENY, DENYING}), DELETED, ERROR,
            "deny access", "003",
        ),
    )
}


def operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise InvalidTransition(f"unknown operation {name!r}") from None
