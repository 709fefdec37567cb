"""``GET /scheduler-stats/pools`` and ``/scheduler-stats/pools/detail``
(admins; manila/api/v2/scheduler_stats.py): the pools the scheduler sees, as
the conductors reported them, with Manila's filters (see
:mod:`shareflow.services.scheduler_stats`). ``openstack share pool list``."""

from __future__ import annotations

from shareflow.api import params as qp
from shareflow.api.resources.base import Resource, caller, reply, version
from shareflow.api.views import scheduler_stats as view

#: ``share_type`` filters by the type's extra specs from this microversion.
SHARE_TYPE_FILTER_VERSION = "2.23"


class SchedulerStatsPools(Resource):
    POLICY = {"on_get": "scheduler_stats:pools:index", "on_get_detail": "scheduler_stats:pools:detail"}

    def _pools(self, req, action: str) -> list[dict]:
        filters: dict = qp.flatten(req.params)
        if "capabilities" in filters:
            filters["capabilities"] = qp.literal_dict(filters["capabilities"], "capabilities")
        return self.services.scheduler_stats.pools(
            caller(req), filters, action=action,
            share_type_filter=version(req).within(SHARE_TYPE_FILTER_VERSION, None),
        )

    def on_get(self, req, resp) -> None:
        reply(resp, view.pools(self._pools(req, "index"), detail=False))

    def on_get_detail(self, req, resp) -> None:
        reply(resp, view.pools(self._pools(req, "detail"), detail=True))
