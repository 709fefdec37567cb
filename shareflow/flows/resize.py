"""extend_share and shrink_share: begin -> resize the volume's limit -> finish.

The store carries ``share_id``, ``new_size`` (what the request asked for) and
``old_size`` (the share's size when it was asked, what a revert restores).
A failure leaves the share ``extending_error`` / ``shrinking_error``; a shrink
refused because the data in use exceeds the new size leaves it
``shrinking_possible_data_loss_error`` (see
the operation's ``outcomes`` in ``shareflow.domain.states``), with its limit, data and
export as they were.
"""

from taskflow.patterns import linear_flow

from shareflow.tasks.lifecycle import BeginOperation, Finish
from shareflow.tasks.resize import ResizeVolume

EXTEND = "extend_share"
SHRINK = "shrink_share"


def _resize_flow(operation: str):
    return linear_flow.Flow(operation).add(
        BeginOperation(operation),
        ResizeVolume(),
        Finish(operation),
    )


def extend_share():
    return _resize_flow(EXTEND)


def shrink_share():
    return _resize_flow(SHRINK)
