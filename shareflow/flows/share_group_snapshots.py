"""Share group snapshot flows: every member's snapshot taken, or deleted,
by one job on the group's backend.

``members`` (factory argument) is ``[[member_id, share_id], ...]``, fixed
when the request made the members; the job's details keep it, so a resumed
job rebuilds the same atoms.
"""

from taskflow.patterns import linear_flow

from shareflow.tasks.lifecycle import BeginOperation, Finish
from shareflow.tasks.share_group_snapshots import CreateMemberSnapshot, DeleteMemberSnapshot

CREATE = "create_share_group_snapshot"
DELETE = "delete_share_group_snapshot"


def create_share_group_snapshot(members=()):
    """begin -> one snapshot per member, in order -> available. A member
    that fails reverts the ones before it (linear flow)."""
    flow = linear_flow.Flow(CREATE).add(BeginOperation(CREATE))
    for i, (member_id, share_id) in enumerate(members):
        flow.add(CreateMemberSnapshot(i, member_id, share_id))
    return flow.add(Finish(CREATE))


def delete_share_group_snapshot(members=(), force: bool = False):
    """begin -> each member's snapshot deleted -> deleted (soft)."""
    flow = linear_flow.Flow(DELETE).add(BeginOperation(DELETE))
    for i, (member_id, _share_id) in enumerate(members):
        flow.add(DeleteMemberSnapshot(i, member_id, force=force))
    return flow.add(Finish(DELETE))
