"""create_share: allocate network -> provide share server -> create volume ->
export -> apply access -> available.

A share created from a snapshot runs the same flow with its create-volume step
replaced by ``create_volume_from_snapshot`` (``create_share(from_snapshot=True)``).
"""

from taskflow.patterns import linear_flow

from shareflow.tasks.access import ApplyInitialAccess
from shareflow.tasks.export import Export
from shareflow.tasks.lifecycle import BeginOperation, FinishCreateShare
from shareflow.tasks.network import AllocateNetwork
from shareflow.tasks.server import ProvideShareServer
from shareflow.tasks.snapshots import CreateVolumeFromSnapshot
from shareflow.tasks.volume import CreateVolume

OPERATION = "create_share"


def create_share(from_snapshot: bool = False):
    """Jobs posted before ``from_snapshot`` existed call this without it."""
    return linear_flow.Flow(OPERATION).add(
        BeginOperation(OPERATION),
        AllocateNetwork(),
        ProvideShareServer(),
        CreateVolumeFromSnapshot() if from_snapshot else CreateVolume(),
        Export(),
        ApplyInitialAccess(),
        FinishCreateShare(),
    )
