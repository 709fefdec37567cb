"""``GET /extensions[/{alias}]`` (manila/api/extensions.py ``ExtensionsResource``).

Manila lists the extensions its extension manager loaded, each as ``name``,
``alias``, ``description``, ``updated`` and ``links``; upstream Manila ships
none any more, so its list is empty. shareflow lists the two it adds to
Manila's API. Show is by alias (unknown: 404). Any authenticated caller may read them;
other methods are this API's 405 (Manila's resource answers create and
delete 404).
"""

from __future__ import annotations

from shareflow.api.resources.base import Resource, reply
from shareflow.exceptions import NotFound

#: alias -> (name, description, updated): what shareflow adds to Manila's API.
EXTENSIONS = {
    "shareflow-jobs": (
        "Jobs",
        "Every share operation as a job: GET /v2/jobs[/{id}] by the job's project, "
        "POST /v2/jobs/{id}/action (resume, retry, cancel) by admins.",
        "2026-11-01T00:00:00+00:00",
    ),
    "shareflow-provider-networks": (
        "ProviderNetworks",
        "The networks share networks name (admin): GET/POST /v2/provider-networks, "
        "GET/DELETE /v2/provider-networks/{id}.",
        "2026-11-01T00:00:00+00:00",
    ),
}
NOT_FOUND = "The resource could not be found."


def _view(alias: str) -> dict:
    name, description, updated = EXTENSIONS[alias]
    return {"name": name, "alias": alias, "description": description, "updated": updated, "links": []}


class Extensions(Resource):
    POLICY = {"on_get": "extension:index", "on_get_item": "extension:show"}

    def on_get(self, req, resp) -> None:
        reply(resp, {"extensions": [_view(alias) for alias in EXTENSIONS]})

    def on_get_item(self, req, resp, alias: str) -> None:
        if alias not in EXTENSIONS:
            raise NotFound(f"no extension {alias!r}", user_message=NOT_FOUND)
        reply(resp, {"extension": _view(alias)})
