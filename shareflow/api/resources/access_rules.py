"""``/share-access-rules`` from 2.45 (manila/api/v2/share_accesses.py and
share_access_metadata.py):

* ``GET ?share_id=X[&metadata={...}]`` - a share's rules; an unknown share in
  the query is Manila's 400, not a 404 (the collection exists, the filter is
  wrong); ``metadata`` is a Python dict literal, as Manila reads it
  (``ast.literal_eval``) and python-manilaclient writes it (``str(dict)``);
* ``GET /{id}`` - one rule;
* ``PUT /{id}/metadata`` - merge keys into the rule's metadata, answers the
  keys set; ``DELETE /{id}/metadata/{key}`` - 200 with an empty body.
"""

from __future__ import annotations

import ast

from shareflow.api import params as qp
from shareflow.api.resources.base import Resource, body, caller, reply, require_version
from shareflow.api.views import access as view
from shareflow.exceptions import InvalidInput, NotFound

#: webob's HTTPBadRequest explanation: Manila's answer to a body without
#: ``metadata`` (a bare ``HTTPBadRequest()``).
BARE_BAD_REQUEST = ("The server could not comply with the request since it is either malformed "
                    "or otherwise incorrect.")


def metadata_filter(text) -> dict[str, str]:
    try:
        value = ast.literal_eval(text) if isinstance(text, str) else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in value.items()):
        raise InvalidInput(f"Invalid metadata filter {str(text)[:64]!r}: expected a dict of strings, "
                           "e.g. {'key': 'value'}.")
    return value


class AccessRules(Resource):
    POLICY = {"on_get": "share_access_rule:index", "on_get_item": "share_access_rule:get"}

    def on_get(self, req, resp) -> None:
        require_version(req, "2.45")
        q = qp.flatten(req.params)
        share_id = q.get("share_id")
        if not share_id:
            raise InvalidInput("The field 'share_id' has to be specified.")
        metadata = metadata_filter(q["metadata"]) if "metadata" in q else None
        try:
            rules = self.services.shares.access_rules(caller(req), share_id, metadata=metadata)
        except NotFound:
            raise InvalidInput(f"Share {share_id} not found.") from None
        reply(resp, view.list_view(rules, self.view_context(req)))

    def on_get_item(self, req, resp, access_id: str) -> None:
        require_version(req, "2.45")
        try:
            rule = self.services.shares.access_rule(caller(req), access_id)
        except NotFound:
            raise NotFound(f"Share access rule {access_id} not found.") from None
        reply(resp, view.detail(rule, self.view_context(req)))


class AccessRuleMetadata(Resource):
    POLICY = {"on_put": "share_access_metadata:update", "on_delete_item": "share_access_metadata:delete"}

    def on_put(self, req, resp, access_id: str) -> None:
        require_version(req, "2.45")
        data = body(req)
        if not isinstance(data, dict) or not isinstance(data.get("metadata"), dict):
            raise InvalidInput("no metadata object in the body", user_message=BARE_BAD_REQUEST)
        items = self.services.access_metadata.update(caller(req), access_id, data["metadata"])
        reply(resp, {"metadata": items})

    def on_delete_item(self, req, resp, access_id: str, key: str) -> None:
        require_version(req, "2.45")
        self.services.access_metadata.delete(caller(req), access_id, key)
        resp.status = 200
        resp.content_type = "application/json"
        resp.data = b""
