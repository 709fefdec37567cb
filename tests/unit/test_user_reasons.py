"""The reason a user message gives for a failure reloaded from persistence
(only its type names survive a reload)."""

from __future__ import annotations

from taskflow.types.failure import Failure

from shareflow import exceptions as exc
from shareflow.engine.outcomes import user_reason


def reloaded(error: Exception) -> Failure:
    try:
        raise error
    except Exception:
        live = Failure()
    # What a conductor reads back from the logbook: no exception object.
    return Failure.from_dict(live.to_dict())


def test_no_valid_host_reads_as_manilas_message_not_as_a_storage_failure():
    failure = reloaded(exc.NoValidHost("the last executed filter was CapacityFilter."))
    assert failure.exception is None
    assert user_reason(failure) == exc.NO_VALID_HOST_MESSAGE


def test_a_storage_error_keeps_its_generic_reason():
    assert user_reason(reloaded(exc.StorageError("disk on fire"))) == "the storage backend failed"
