"""delete_share_server: begin -> tear down (Ganesha, namespace, veth) ->
release the server's network allocation -> deleted."""

from taskflow.patterns import linear_flow

from shareflow.tasks.lifecycle import BeginOperation, Finish
from shareflow.tasks.network import ReleaseServerNetwork
from shareflow.tasks.share_servers import OPERATION, TeardownShareServer


def delete_share_server():
    return linear_flow.Flow(OPERATION).add(
        BeginOperation(OPERATION),
        TeardownShareServer(),
        ReleaseServerNetwork(),
        Finish(OPERATION),
    )
