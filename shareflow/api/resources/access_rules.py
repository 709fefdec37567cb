"""``GET /share-access-rules?share_id=X`` and ``GET /share-access-rules/{id}``
from 2.45 (manila/api/v2/share_accesses.py). An unknown share in the query is
Manila's 400, not a 404: the collection exists, the filter is wrong."""

from __future__ import annotations

from shareflow.api import params as qp
from shareflow.api.resources.base import Resource, caller, reply, require_version
from shareflow.api.views import access as view
from shareflow.exceptions import InvalidInput, NotFound


class AccessRules(Resource):
    def on_get(self, req, resp) -> None:
        require_version(req, "2.45")
        q = qp.flatten(req.params)
        share_id = q.get("share_id")
        if not share_id:
            raise InvalidInput("The field 'share_id' has to be specified.")
        try:
            rules = self.services.shares.access_rules(caller(req), share_id)
        except NotFound:
            raise InvalidInput(f"Share {share_id} not found.") from None
        reply(resp, view.list_view(rules, self.view_context(req)))

    def on_get_item(self, req, resp, access_id: str) -> None:
        require_version(req, "2.45")
        rule = self.services.shares.access_rule(caller(req), access_id)
        reply(resp, view.detail(rule, self.view_context(req)))
