"""``GET /limits`` (manila/api/v2/limits.py): the caller's project's absolute
limits and usage. No rate limits are enforced, so ``rate`` is empty."""

from __future__ import annotations

from shareflow.api.resources.base import Resource, caller, reply
from shareflow.api.views import quota_sets as view


class Limits(Resource):
    POLICY = {"on_get": "limits:index"}

    def on_get(self, req, resp) -> None:
        limits, used = self.services.quotas.usage(caller(req))
        reply(resp, view.limits(limits, used, self.view_context(req)))
