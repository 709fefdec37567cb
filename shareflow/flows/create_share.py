"""create_share: allocate network -> provide share server -> create volume ->
export -> apply access -> available."""

from taskflow.patterns import linear_flow

from shareflow.tasks.access import ApplyInitialAccess
from shareflow.tasks.export import Export
from shareflow.tasks.lifecycle import BeginOperation, FinishCreateShare
from shareflow.tasks.network import AllocateNetwork
from shareflow.tasks.server import ProvideShareServer
from shareflow.tasks.volume import CreateVolume

OPERATION = "create_share"


def create_share():
    return linear_flow.Flow(OPERATION).add(
        BeginOperation(OPERATION),
        AllocateNetwork(),
        ProvideShareServer(),
        CreateVolume(),
        Export(),
        ApplyInitialAccess(),
        FinishCreateShare(),
    )
