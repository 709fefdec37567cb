"""delete_share: find server -> clear access -> unexport -> delete volume ->
release server and network -> deleted."""

from taskflow.patterns import linear_flow

from shareflow.tasks.access import ClearAccess
from shareflow.tasks.export import Unexport
from shareflow.tasks.lifecycle import BeginOperation, FinishDeleteShare
from shareflow.tasks.network import ReleaseNetwork
from shareflow.tasks.server import FindShareServer, ReleaseShareServer
from shareflow.tasks.volume import DeleteVolume

OPERATION = "delete_share"


def delete_share():
    return linear_flow.Flow(OPERATION).add(
        BeginOperation(OPERATION),
        FindShareServer(),
        ClearAccess(),
        Unexport(),
        DeleteVolume(),
        ReleaseShareServer(),
        ReleaseNetwork(),
        FinishDeleteShare(),
    )
