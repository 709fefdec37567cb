"""Snapshot flows: create_snapshot, delete_snapshot, revert_to_snapshot.

(A share created from a snapshot is ``create_share(from_snapshot=True)``.)
"""

from taskflow.patterns import linear_flow

from shareflow.tasks.lifecycle import BeginOperation, Finish
from shareflow.tasks.snapshots import CreateSnapshot, DeleteSnapshot, HoldSnapshot, RevertToSnapshot

CREATE = "create_snapshot"
DELETE = "delete_snapshot"
REVERT = "revert_to_snapshot"


def create_snapshot():
    """begin -> take the snapshot -> available with its provider location."""
    return linear_flow.Flow(CREATE).add(
        BeginOperation(CREATE),
        CreateSnapshot(),
        Finish(CREATE),
    )


def delete_snapshot(force: bool = False):
    """begin -> delete it on the backend -> deleted (soft). ``force``: an
    admin's force_delete, which deletes the record even if the backend fails."""
    return linear_flow.Flow(DELETE).add(
        BeginOperation(DELETE),
        DeleteSnapshot(force=force),
        Finish(DELETE),
    )


def revert_to_snapshot():
    """begin (share ``reverting``) -> hold the snapshot (``restoring``) ->
    revert the share's content in place -> both ``available``. On failure the
    share is ``reverting_error`` with a user message, the snapshot
    ``available`` again."""
    return linear_flow.Flow(REVERT).add(
        BeginOperation(REVERT),
        HoldSnapshot(),
        RevertToSnapshot(),
        Finish(REVERT),
    )
