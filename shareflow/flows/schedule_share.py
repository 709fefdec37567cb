"""schedule_share: choose the share's pool -> post its create job there.

The first step of every create (Manila's scheduler), run by a conductor of any
host from the scheduler's board (``shareflow.tasks.scheduling``). There is no
last step: on success the share is still ``creating``, now placed, and its
``create_share`` job (linked to this one by ``retry_of``) finishes it.
"""

from taskflow.patterns import linear_flow

from shareflow.tasks.lifecycle import BeginOperation
from shareflow.tasks.scheduling import PlaceShare, PostCreate

OPERATION = "schedule_share"


def schedule_share():
    return linear_flow.Flow(OPERATION).add(
        BeginOperation(OPERATION),
        PlaceShare(),
        PostCreate(),
    )
