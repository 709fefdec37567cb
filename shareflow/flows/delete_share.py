"""delete_share: find server -> clear access -> unexport -> delete volume ->
release server and network -> deleted.

On a backend that handles share servers (``driver_handles_share_servers=True``)
the share leaves its share server; a server left without shares is deleted
with it when ``delete_share_server_with_last_share`` is set (and its
allocation given back), otherwise the conductors delete it once unused for
``unused_share_server_cleanup_interval``.
"""

from taskflow.patterns import linear_flow

from shareflow.tasks.access import ClearAccess
from shareflow.tasks.export import Unexport
from shareflow.tasks.lifecycle import BeginOperation, Finish
from shareflow.tasks.network import ReleaseNetwork, ReleaseServerNetwork
from shareflow.tasks.server import FindShareServer, ReleaseShareServer
from shareflow.tasks.volume import DeleteVolume

OPERATION = "delete_share"


def delete_share(driver_handles_share_servers: bool = False):
    dhss = driver_handles_share_servers
    return linear_flow.Flow(OPERATION).add(
        BeginOperation(OPERATION),
        FindShareServer(),
        ClearAccess(),
        Unexport(),
        DeleteVolume(),
        ReleaseShareServer(share_servers=dhss),
        ReleaseServerNetwork() if dhss else ReleaseNetwork(),
        Finish(OPERATION),
    )


def share_flow_kwargs(backend_config) -> dict:
    """The factory keyword arguments of a share's create and delete flows on
    ``backend_config`` (None: a backend no longer configured)."""
    if backend_config is not None and backend_config.driver_handles_share_servers:
        return {"driver_handles_share_servers": True}
    return {}
