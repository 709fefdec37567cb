"""``GET /`` (300, every version) and ``GET /v2/`` (200, this version), as
manila/api/versions.py answers them. Neither needs a token."""

from __future__ import annotations

from shareflow.api.resources.base import Resource, reply
from shareflow.api.views import versions as view
from shareflow.api.views.common import root_url


class Versions(Resource):
    POLICY = {"on_get": "versions:index"}

    def __init__(self, config, services, *, root: bool):
        super().__init__(config, services)
        self.root = root

    def on_get(self, req, resp) -> None:
        base = root_url(self.config.api.public_url, req.prefix)
        reply(resp, view.versions(base), 300 if self.root else 200)
