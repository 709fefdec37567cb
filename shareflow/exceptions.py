"""One shallow error hierarchy for the whole service.

Every boundary (subprocess/btrfs, Ganesha, kazoo, SQLAlchemy, configuration)
translates the errors of the thing it wraps into one of these, keeping the
original as ``__cause__``. The API translates these, and only these, into HTTP
(see ``shareflow.api.errors``); anything else reaching the API is a bug and is
answered with a generic 500 body, never a traceback.

``user_message`` is what a tenant may read (API error bodies, user messages of
failed jobs); ``str(exc)`` may carry operator detail (paths, commands).
"""

from __future__ import annotations


class ShareflowError(Exception):
    """Base of every error this project raises on purpose."""

    #: HTTP status the API answers with when this error reaches it.
    http_status = 500
    #: Manila's error-body name for that status.
    manila_name = "computeFault"

    def __init__(self, message: str, *, user_message: str | None = None):
        super().__init__(message)
        self.message = message
        self._user_message = user_message

    @property
    def user_message(self) -> str:
        return self._user_message or self.message


# --- request errors: raised before any state is touched -------------------


class InvalidInput(ShareflowError):
    """The request is malformed or names something impossible."""

    http_status = 400
    manila_name = "badRequest"


class NotAuthenticated(ShareflowError):
    http_status = 401
    manila_name = "unauthorized"


class Forbidden(ShareflowError):
    """The caller may not do this (policy), or the resource's status forbids it
    where Manila answers 403 (for example deleting a share that is busy)."""

    http_status = 403
    manila_name = "forbidden"


class NotFound(ShareflowError):
    """Also used for resources of another project: they do not exist for the caller."""

    http_status = 404
    manila_name = "itemNotFound"


class MethodNotAllowed(ShareflowError):
    http_status = 405
    manila_name = "HTTPMethodNotAllowed"


class VersionNotAcceptable(ShareflowError):
    http_status = 406
    manila_name = "HTTPNotAcceptable"


class Conflict(ShareflowError):
    """The resource is not in a state that allows the operation (lost a race, or busy)."""

    http_status = 409
    manila_name = "conflictingRequest"


class OverLimit(ShareflowError):
    http_status = 413
    manila_name = "overLimit"


class UnprocessableEntity(ShareflowError):
    """Where Manila answers webob's bare 422 (a share update without ``share``)."""

    http_status = 422
    manila_name = "computeFault"


class ServiceUnavailable(ShareflowError):
    """A dependency (database, ZooKeeper) cannot be reached right now."""

    http_status = 503
    manila_name = "serviceUnavailable"


# --- state errors ----------------------------------------------------------


class InvalidTransition(Conflict):
    """A status change not allowed by ``shareflow.domain.states``."""


class ResourceStateChanged(Conflict):
    """A conditional status update found the row in an unexpected status."""


#: The user message of a job an operator cancelled.
CANCELLED_MESSAGE = "cancelled by an administrator"


class JobCancelled(ShareflowError):
    """Raised at a step boundary of a job an operator cancelled: the step
    does not start, and the flow reverts what the job did."""

    def __init__(self, job_id: str):
        self.job_id = job_id
        super().__init__(f"job {job_id} was cancelled", user_message=CANCELLED_MESSAGE)


class FlowTakenOver(Conflict):
    """A job's engine found, writing its flow, that the job is another
    conductor's: its record names another conductor now (the write's fence,
    ``shareflow.engine.persistence.JobFence``), or - writing the flow's atom
    details for the first time - another engine had already recorded them
    (the logbook holds one atom detail per flow and name:
    ``shareflow.db.models``). The job was taken over - this engine's claim
    was lost - or another engine wrote first. Nothing of this engine's
    write was written; it must stop and touch nothing more of the job
    (``shareflow.engine.storage``)."""

    def __init__(self, flow_uuid: str | None, detail: str = ""):
        self.flow_uuid = flow_uuid
        self.detail = detail
        super().__init__(f"flow {flow_uuid} was taken over by another engine" + (f": {detail}" if detail else ""))


# --- infrastructure errors: translated at their boundary -------------------


class ConfigError(ShareflowError):
    """Configuration is missing, malformed or inconsistent (found at start-up)."""


class DatabaseError(ServiceUnavailable):
    """SQLAlchemy failed for a reason other than a constraint."""


class FlowUnwritable(DatabaseError):
    """A job's engine could not write its flow: the database failed a write
    even after the storage's retries (an outage longer than they wait).
    Nothing of that write was written - the step it would have started does
    not start - and the engine writes nothing more: it stops as if its
    conductor had died there, and its job goes back to the board, to be
    resumed from what was written (``shareflow.engine.storage``). Not a
    failure of the job, nor of its resource."""

    def __init__(self, flow_uuid: str | None, detail: str = ""):
        self.flow_uuid = flow_uuid
        self.detail = detail
        super().__init__(f"flow {flow_uuid} could not be written" + (f": {detail}" if detail else ""),
                         user_message="the database is unavailable, try again later")


class CoordinationError(ServiceUnavailable):
    """ZooKeeper (kazoo or the TaskFlow jobboard) failed."""


class BackendError(ShareflowError):
    """Storage, export or network work on a backend failed.

    Raised inside tasks; the flow reverts and the failure becomes a user message.
    """

    def __init__(self, message: str, *, user_message: str | None = None):
        super().__init__(message, user_message=user_message or "the storage backend failed")


class CommandError(BackendError):
    """An external command (btrfs, mount, ip, ...) exited non-zero or timed out."""

    def __init__(self, argv: list[str], returncode: int | None, stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        what = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(f"{argv[0]} {what}: {self.stderr or '(no output)'} [{' '.join(argv)}]")


class StorageError(BackendError):
    def __init__(self, message: str, *, user_message: str | None = None):
        super().__init__(message, user_message=user_message or "the storage backend failed")


class CapacityExceeded(StorageError):
    """The pool cannot hold the requested size."""


#: Manila's user message detail 018 (DRIVER_REFUSED_SHRINK), naming the status we set.
SHRINK_REFUSED_MESSAGE = (
    "Share Driver refused to shrink the share. The size to be shrunk is smaller than the "
    "current used space. The share status has been set to shrinking_possible_data_loss_error. "
    "Please select a size greater than the current used space."
)


#: Manila's user message detail 002 (NO_VALID_HOST).
NO_VALID_HOST_MESSAGE = (
    "No storage could be allocated for this share request. "
    "Trying again with a different size or share type may succeed."
)


class NoValidHost(StorageError):
    """No reported pool passes the scheduler's filters (Manila's ``NoValidHost``).

    A StorageError: no storage can be had for the request, found where a
    create or extend runs, and reported like the storage failures (the flow
    reverts, the share gets a user message). ``last_filter`` names the filter
    that removed the last candidates (None when no pool was reported at all);
    ``detail_id`` is Manila's user message detail for it, and
    ``user_message`` its text.
    """

    def __init__(self, reason: str, *, last_filter: str | None = None, detail_id: str = "002",
                 user_message: str | None = None):
        self.reason = reason
        self.last_filter = last_filter
        self.detail_id = detail_id
        super().__init__(f"No valid host was found. {reason}", user_message=user_message or NO_VALID_HOST_MESSAGE)


class ShrinkWouldLoseData(StorageError):
    """Shrinking a volume below the data it holds: refused, nothing changed
    (Manila's ``ShareShrinkingPossibleDataLoss``)."""

    def __init__(self, message: str, *, user_message: str | None = None):
        super().__init__(message, user_message=user_message or "the data in use exceeds the requested size")


class ExportError(BackendError):
    def __init__(self, message: str, *, user_message: str | None = None):
        super().__init__(message, user_message=user_message or "the NFS export server failed")


class NetworkError(BackendError):
    def __init__(self, message: str, *, user_message: str | None = None):
        super().__init__(message, user_message=user_message or "network allocation failed")


class InjectedFault(BackendError):
    """Raised by the fault-injecting driver proxy (tests only)."""

    def __init__(self, point: str):
        self.point = point
        super().__init__(f"injected fault at {point}", user_message=f"injected fault at {point}")


class NotSupportedByBackend(StorageError):
    """The backend's driver cannot do this at all (it reports so in its
    capabilities): refused before anything changed."""

    def __init__(self, message: str, *, user_message: str | None = None):
        super().__init__(message, user_message=user_message or "the share's backend does not support this")


class NoLoopDevice(StorageError):
    """No loop device can be had for a share's image (the backend's limit is
    reached or the kernel gives no more): refused with nothing made."""

    def __init__(self, message: str, *, user_message: str | None = None):
        super().__init__(message, user_message=user_message or "the backend has no loop device left for a share")
