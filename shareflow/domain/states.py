"""Statuses and the transitions allowed between them, as data.

Pure: no I/O. The database layer turns each transition into a conditional
``UPDATE ... WHERE status IN (sources)``; the API and the tasks ask this module
which sources a target may be reached from, so the rules live in one place.
Status names are Manila's.
"""

from __future__ import annotations

from dataclasses import dataclass

from shareflow import exceptions as exc
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
#: The operation failed and everything it had done was undone (the flow
#: ended REVERTED). Before migration 0004 this was called ``failed``.
JOB_REVERTED = "reverted"
#: A step failed and undoing failed too (the flow ended FAILURE): something
#: may be left on the backend. The logbook keeps every atom's state and what
#: each step made, so ``resume`` tries the failed undo again from there.
JOB_REVERT_FAILED = "revert_failed"
#: An operator asked the job to stop: it reverts from the next step boundary.
JOB_CANCELLING = "cancelling"
#: Cancelled, and everything it had done undone.
JOB_CANCELLED = "cancelled"
JOB_TRASHED = "trashed"
# A trashed job is off the board and runs no more by itself: it was never
# posted (the housekeeping gave up on it), or its flow could not be loaded,
# not even from a clean reload. The latter keeps its node in the board's
# trash and its logbook as it was, and its resource is failed with a message
# naming the job: resuming it is posting a board job for the same logbook and
# flow detail again (its record has both ids).
#: Not stored: a job whose record is posted, running or cancelling but that
#: no live conductor has claimed in ZooKeeper for longer than
#: ``[conductor] stall_after`` (see ``shareflow.engine.stalls``).
JOB_STALLED = "stalled"
#: Kept for code that still says ``failed``: it is ``reverted``.
JOB_FAILED = JOB_REVERTED

#: A conductor may still be working on it, or will.
JOB_ACTIVE = frozenset({"posted", "running", "cancelling"})
#: Nothing will run it again unless an operator steers it.
JOB_TERMINAL = frozenset({"succeeded", "reverted", "revert_failed", "cancelled", "trashed"})
#: What ``jobs list`` may show (stored states, and the derived ``stalled``).
JOB_STATES = JOB_ACTIVE | JOB_TERMINAL | {JOB_STALLED}
#: What an operator may ``resume`` (posted again with its persisted flow);
#: also a stalled job (an active one no conductor holds).
JOB_RESUMABLE = frozenset({JOB_REVERT_FAILED, JOB_CANCELLED, JOB_TRASHED})
#: What an operator may ``retry`` (run again as a new job, everything undone).
JOB_RETRYABLE = frozenset({JOB_REVERTED, JOB_CANCELLED})
#: What an operator may ``cancel``.
JOB_CANCELLABLE = frozenset({JOB_POSTED, JOB_RUNNING})

SHARE = "share"
SNAPSHOT = "snapshot"
SHARE_SERVER = "share_server"
ACCESS_RULE = "access_rule"
SHARE_GROUP_SNAPSHOT = "share_group_snapshot"
JOB = "job"

#: kind -> {target status: statuses it may be reached from}
TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    SHARE: {
        # Initial; again from ERROR only when an operator retries the create.
        CREATING: frozenset({ERROR}),
        AVAILABLE: frozenset({CREATING, EXTENDING, SHRINKING, REVERTING}),
        ERROR: frozenset({CREATING}),
        DELETING: frozenset({AVAILABLE, ERROR, ERROR_DELETING}),
        ERROR_DELETING: frozenset({DELETING}),
        DELETED: frozenset({DELETING}),
        # From an *_ERROR status: an operator retries the failed job.
        EXTENDING: frozenset({AVAILABLE, EXTENDING_ERROR}),
        EXTENDING_ERROR: frozenset({EXTENDING}),
        # Manila lets a share whose shrink was refused be shrunk again.
        SHRINKING: frozenset({AVAILABLE, SHRINKING_POSSIBLE_DATA_LOSS_ERROR, SHRINKING_ERROR}),
        SHRINKING_ERROR: frozenset({SHRINKING}),
        SHRINKING_POSSIBLE_DATA_LOSS_ERROR: frozenset({SHRINKING}),
        # From REVERTING_ERROR: an operator resumes the failed revert's job.
        REVERTING: frozenset({AVAILABLE, REVERTING_ERROR}),
        REVERTING_ERROR: frozenset({REVERTING}),
    },
    SNAPSHOT: {
        CREATING: frozenset({ERROR}),  # initial; from ERROR: a retried create
        AVAILABLE: frozenset({CREATING, RESTORING}),
        ERROR: frozenset({CREATING}),
        DELETING: frozenset({AVAILABLE, ERROR, ERROR_DELETING}),
        ERROR_DELETING: frozenset({DELETING}),
        DELETED: frozenset({DELETING}),
        # While its share is reverted to it.
        RESTORING: frozenset({AVAILABLE}),
    },
    # A snapshot of each share of a group, taken (and deleted) by one job.
    SHARE_GROUP_SNAPSHOT: {
        CREATING: frozenset({ERROR}),  # initial; from ERROR: a retried create
        AVAILABLE: frozenset({CREATING}),
        ERROR: frozenset({CREATING}),
        DELETING: frozenset({AVAILABLE, ERROR, ERROR_DELETING}),
        ERROR_DELETING: frozenset({DELETING}),
        DELETED: frozenset({DELETING}),
    },
    SHARE_SERVER: {
        CREATING: frozenset(),  # initial
        SERVER_ACTIVE: frozenset({CREATING}),
        ERROR: frozenset({CREATING, DELETING}),
        DELETING: frozenset({SERVER_ACTIVE, ERROR}),
        DELETED: frozenset({DELETING, CREATING}),  # a create reverted deletes it
    },
    ACCESS_RULE: {
        QUEUED_TO_APPLY: frozenset({ERROR}),  # initial; from ERROR: a retried allow
        APPLYING: frozenset({QUEUED_TO_APPLY}),
        ACTIVE: frozenset({APPLYING}),
        ERROR: frozenset({QUEUED_TO_APPLY, APPLYING, DENYING, QUEUED_TO_DENY}),
        QUEUED_TO_DENY: frozenset({ACTIVE, ERROR, QUEUED_TO_APPLY, APPLYING}),
        DENYING: frozenset({QUEUED_TO_DENY}),
        DELETED: frozenset({DENYING}),
    },
    JOB: {
        JOB_POSTED: frozenset({JOB_POSTED, JOB_RUNNING} | JOB_RESUMABLE),  # posted again: resumed
        JOB_RUNNING: frozenset({JOB_POSTED, JOB_RUNNING}),  # RUNNING again: resumed by another conductor
        JOB_SUCCEEDED: frozenset(JOB_ACTIVE),  # a cancel that came after the last step
        JOB_REVERTED: frozenset({JOB_POSTED, JOB_RUNNING}),
        JOB_REVERT_FAILED: frozenset(JOB_ACTIVE),
        JOB_CANCELLING: frozenset(JOB_CANCELLABLE),
        JOB_CANCELLED: frozenset({JOB_CANCELLING}),
        JOB_TRASHED: frozenset(JOB_ACTIVE),
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


#: Manila's detail 015 (DRIVER_FAILED_EXTEND).
DRIVER_FAILED_EXTEND = (
    "Share Driver failed to extend share, The share status has been set to extending_error. "
    "This action cannot be re-attempted until the status has been rectified. Contact your "
    "administrator to determine the cause of this failure."
)


@dataclass(frozen=True)
class FailureOutcome:
    """Where a failed job leaves its resource when it failed in a known way:
    the job's ``operation``, failed at ``step`` (None: any step) with an
    error of type ``error`` (None: any error), ends in ``status`` (None: the
    operation's failed status) with a user message of Manila's ``detail_id``
    whose ``detail`` text follows the reason."""

    operation: str
    step: str | None
    error: type[exc.ShareflowError] | None
    status: str | None
    detail_id: str
    detail: str | None = None

    def matches(self, operation: str, step: str | None, failure) -> bool:
        """``failure``: a TaskFlow Failure (``check`` by type), or None."""
        if operation != self.operation or (self.step is not None and step != self.step):
            return False
        return self.error is None or (failure is not None and bool(failure.check(self.error)))


@dataclass(frozen=True)
class Operation:
    """One operation, declared once: what its job runs and what it does to
    its resource's status. The services start jobs from it
    (``shareflow.engine.operations``), the flows' first and last steps and
    the conductors' outcome records read it, and so do ``jobs show`` and the
    jobs API.

    ``working`` are the statuses the resource holds while the job owns it
    (the API sets the first before posting); the job ends in ``succeeded``,
    or ``failed`` when it is reverted cleanly (or cancelled, or set aside),
    or ``revert_failed`` when undoing failed too.
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
    #: The flow factory, by import path (``module:function``): a job's
    #: logbook names it the same way, so it is never renamed (keep aliases).
    flow: str = ""
    #: Keys the flow's store must hold (besides ``job_id`` and ``backend``,
    #: which posting adds).
    store_keys: tuple[str, ...] = ()
    #: Where the resource ends when a step failed and undoing it failed too;
    #: "" means the same as ``failed``.
    revert_failed: str = ""
    #: Whether an operator may run a reverted job of it again on the same
    #: resource (``jobs retry``).
    retryable: bool = True
    #: The request made the resource: a job that could not even be posted
    #: removes it instead of giving a previous status back.
    creates: bool = False
    #: The first of ``working`` (where a request, or a retry, puts the
    #: resource); "" when ``working`` has one status.
    starts: str = ""
    #: Known failures that end elsewhere than ``failed`` or with Manila's own
    #: message; most specific first.
    outcomes: tuple[FailureOutcome, ...] = ()

    @property
    def start_status(self) -> str:
        return self.starts or next(iter(self.working))

    @property
    def failure_statuses(self) -> frozenset[str]:
        """Every status a failed job of this operation may leave its resource in."""
        return frozenset({self.failed, self.failed_after_revert_failure}
                         | {o.status for o in self.outcomes if o.status})

    @property
    def failed_after_revert_failure(self) -> str:
        return self.revert_failed or self.failed


_SHARE_KEYS = ("share_id", "resource_id")
_SNAPSHOT_KEYS = ("share_id", "snapshot_id", "resource_id")
_RULE_KEYS = ("share_id", "rule_id", "resource_id")
_GROUP_SNAPSHOT_KEYS = ("group_snapshot_id", "resource_id")

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation("create_share", SHARE, frozenset({CREATING}), AVAILABLE, ERROR, "create", "002",
                  flow="shareflow.flows.create_share:create_share",
                  store_keys=(*_SHARE_KEYS, "size", "share_network_id"), creates=True),
        # Placement, the first step of a create (Manila's scheduler) with
        # [scheduler] placement = "conductor" (the API's placement needs no
        # job): run by any host's conductor from the scheduler board; on
        # success the share is still creating, placed, and its create_share
        # job posted to the chosen pool's board (shareflow.tasks.scheduling).
        # Its statuses and "allocate host" action are also what the API's
        # placement fails an unplaceable share with.
        Operation("schedule_share", SHARE, frozenset({CREATING}), CREATING, ERROR, "allocate host", "001",
                  flow="shareflow.flows.schedule_share:schedule_share",
                  store_keys=(*_SHARE_KEYS, "size", "share_network_id"), creates=True),
        Operation("delete_share", SHARE, frozenset({DELETING}), DELETED, ERROR_DELETING, "delete", "007",
                  flow="shareflow.flows.delete_share:delete_share", store_keys=_SHARE_KEYS),
        Operation("extend_share", SHARE, frozenset({EXTENDING}), AVAILABLE, EXTENDING_ERROR, "extend", "008",
                  flow="shareflow.flows.resize:extend_share",
                  store_keys=(*_SHARE_KEYS, "new_size", "old_size"),
                  outcomes=(FailureOutcome("extend_share", "resize_volume", None, None, "015",
                                           DRIVER_FAILED_EXTEND),)),
        # Refused because the data in use exceeds the new size: nothing
        # changed, no data lost (Manila's ShareShrinkingPossibleDataLoss, detail 018).
        Operation("shrink_share", SHARE, frozenset({SHRINKING}), AVAILABLE, SHRINKING_ERROR, "shrink", "009",
                  flow="shareflow.flows.resize:shrink_share",
                  store_keys=(*_SHARE_KEYS, "new_size", "old_size"),
                  outcomes=(FailureOutcome("shrink_share", "resize_volume", exc.ShrinkWouldLoseData,
                                           SHRINKING_POSSIBLE_DATA_LOSS_ERROR, "018",
                                           exc.SHRINK_REFUSED_MESSAGE),)),
        # Not retried: the share's content may be the snapshot's already;
        # the user asks again (and Manila's checks run again).
        Operation(
            "revert_to_snapshot", SHARE, frozenset({REVERTING}), AVAILABLE, REVERTING_ERROR,
            "revert to snapshot", "006", flow="shareflow.flows.snapshots:revert_to_snapshot",
            store_keys=(*_SHARE_KEYS, "snapshot_id", "snapshot_size"), retryable=False,
        ),
        Operation("create_snapshot", SNAPSHOT, frozenset({CREATING}), AVAILABLE, ERROR, "create", "002",
                  flow="shareflow.flows.snapshots:create_snapshot", store_keys=_SNAPSHOT_KEYS,
                  creates=True),
        Operation(
            "delete_snapshot", SNAPSHOT, frozenset({DELETING}), DELETED, ERROR_DELETING, "delete", "007",
            flow="shareflow.flows.snapshots:delete_snapshot", store_keys=_SNAPSHOT_KEYS,
        ),
        Operation("create_share_group_snapshot", SHARE_GROUP_SNAPSHOT, frozenset({CREATING}), AVAILABLE, ERROR,
                  "create", "002", flow="shareflow.flows.share_group_snapshots:create_share_group_snapshot",
                  store_keys=_GROUP_SNAPSHOT_KEYS, creates=True),
        Operation("delete_share_group_snapshot", SHARE_GROUP_SNAPSHOT, frozenset({DELETING}), DELETED,
                  ERROR_DELETING, "delete", "007",
                  flow="shareflow.flows.share_group_snapshots:delete_share_group_snapshot",
                  store_keys=_GROUP_SNAPSHOT_KEYS),
        Operation(
            "delete_share_server", SHARE_SERVER, frozenset({DELETING}), DELETED, ERROR, "delete", "007",
            flow="shareflow.flows.share_servers:delete_share_server", store_keys=("server_id", "resource_id"),
        ),
        Operation(
            "allow_access", ACCESS_RULE, frozenset({QUEUED_TO_APPLY, APPLYING}), ACTIVE, ERROR,
            "allow access", "010", flow="shareflow.flows.access:allow_access", store_keys=_RULE_KEYS,
            creates=True, starts=QUEUED_TO_APPLY,
        ),
        Operation(
            "deny_access", ACCESS_RULE, frozenset({QUEUED_TO_DENY, DENYING}), DELETED, ERROR,
            "deny access", "003", flow="shareflow.flows.access:deny_access", store_keys=_RULE_KEYS,
            starts=QUEUED_TO_DENY,
        ),
    )
}


def operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise InvalidTransition(f"unknown operation {name!r}") from None
