"""allow_access and deny_access: find server -> apply the share's rules -> settle the rule."""

from taskflow.patterns import linear_flow

from shareflow.tasks.access import ApplyAccess
from shareflow.tasks.lifecycle import BeginOperation, Finish
from shareflow.tasks.server import FindShareServer

ALLOW = "allow_access"
DENY = "deny_access"


def _access_flow(operation: str):
    return linear_flow.Flow(operation).add(
        BeginOperation(operation),
        FindShareServer(),
        ApplyAccess(),
        Finish(operation),
    )


def allow_access():
    return _access_flow(ALLOW)


def deny_access():
    return _access_flow(DENY)
