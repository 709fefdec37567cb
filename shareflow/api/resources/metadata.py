"""``/shares/{share_id}/metadata`` (manila/api/v2/router.py ``share_metadata``
routes, all microversions):

* ``GET`` - all of it; ``POST`` - merge (returns all); ``PUT`` - replace all;
* ``/metadata/{key}``: ``GET`` - ``{"meta": {key: value}}``; ``POST`` - set
  that one key; ``DELETE`` - remove it (200, empty body, as Manila).
"""

from __future__ import annotations

from shareflow.api.resources.base import Resource, body, caller, reply


class ShareMetadata(Resource):
    POLICY = {
        "on_get": "share:get_share_metadata",
        "on_post": "share:update_share_metadata",
        "on_put": "share:update_share_metadata",
        "on_get_item": "share:get_share_metadata",
        "on_post_item": "share:update_share_metadata",
        "on_delete_item": "share:delete_share_metadata",
    }

    def on_get(self, req, resp, share_id: str) -> None:
        reply(resp, {"metadata": self.services.share_metadata.get_all(caller(req), share_id)})

    def on_post(self, req, resp, share_id: str) -> None:
        reply(resp, {"metadata": self.services.share_metadata.update(caller(req), share_id, body(req))})

    def on_put(self, req, resp, share_id: str) -> None:
        reply(resp, {"metadata": self.services.share_metadata.replace(caller(req), share_id, body(req))})

    def on_get_item(self, req, resp, share_id: str, key: str) -> None:
        reply(resp, {"meta": self.services.share_metadata.get_item(caller(req), share_id, key)})

    def on_post_item(self, req, resp, share_id: str, key: str) -> None:
        items = self.services.share_metadata.update_item(caller(req), share_id, key, body(req))
        reply(resp, {"metadata": items})

    def on_delete_item(self, req, resp, share_id: str, key: str) -> None:
        self.services.share_metadata.delete_item(caller(req), share_id, key)
        resp.status = 200
        resp.content_type = "application/json"
        resp.data = b""
