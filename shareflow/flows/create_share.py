"""create_share: allocate network -> provide share server -> create volume ->
export -> apply access -> available.

A share created from a snapshot runs the same flow with its create-volume step
replaced by ``create_volume_from_snapshot`` (``create_share(from_snapshot=True)``).
On a backend that handles share servers (``driver_handles_share_servers=True``)
the network and server steps work on the share network's share server: the
allocation is skipped (empty) when the share network has an active server on
the backend, which the share then uses; otherwise an address is reserved and a
server made with it. The share is exported on that server's own Ganesha.
"""

from taskflow.patterns import linear_flow

from shareflow.tasks.access import ApplyInitialAccess
from shareflow.tasks.export import Export
from shareflow.tasks.lifecycle import BeginOperation, Finish
from shareflow.tasks.network import AllocateNetwork
from shareflow.tasks.server import ProvideShareServer
from shareflow.tasks.snapshots import CreateVolumeFromSnapshot
from shareflow.tasks.volume import CreateVolume

OPERATION = "create_share"


def create_share(from_snapshot: bool = False, driver_handles_share_servers: bool = False):
    """Jobs posted before ``from_snapshot`` existed call this without it (and
    before ``driver_handles_share_servers``, without that)."""
    dhss = driver_handles_share_servers
    return linear_flow.Flow(OPERATION).add(
        BeginOperation(OPERATION),
        AllocateNetwork(share_servers=dhss),
        ProvideShareServer(share_servers=dhss),
        CreateVolumeFromSnapshot() if from_snapshot else CreateVolume(),
        Export(),
        ApplyInitialAccess(),
        Finish(OPERATION),
    )
