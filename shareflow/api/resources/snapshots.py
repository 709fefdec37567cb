"""``/snapshots``: create, list (summary and detail), show, update, delete, and
the admin actions reset_status and force_delete.

Follows manila/api/v2/share_snapshots.py: create answers 202 with the
snapshot, ``name``/``description`` win over their ``display_*`` spellings when
present, update changes the display fields, list filters as Manila lets a
non-admin filter (others are ignored), actions as ``os-*`` up to 2.6 and
plain names from 2.7.
"""

from __future__ import annotations


from shareflow import policy
from shareflow.api import params as qp
from shareflow.api.resources.base import (
    PER_ACTION,
    Action,
    Actions,
    Resource,
    accepted,
    caller,
    dispatch_action,
    reply,
    section,
    version,
)
from shareflow.api.views import snapshots as view
from shareflow.domain import validation
from shareflow.exceptions import InvalidInput
from shareflow.services.snapshots import display_field

#: Sort keys a client may send (manilaclient's SNAPSHOT_SORT_KEY_VALUES, and
#: the timestamps) -> columns.
SORT_KEYS = {
    "id": "id", "status": "status", "size": "size", "share_id": "share_id",
    "user_id": "user_id", "project_id": "project_id", "name": "name", "display_name": "name",
    "description": "description", "display_description": "description",
    "created_at": "created_at", "updated_at": "updated_at",
}
#: Exact-match filters a non-admin may use (Manila's _get_snapshots_search_options) -> columns.
EQUAL_FILTERS = {
    "name": "name", "display_name": "name", "status": "status", "share_id": "share_id",
    "display_description": "description",
}
#: Snapshot actions Manila has and this service does not.
UNSUPPORTED = frozenset({"unmanage", "allow_access", "deny_access"})


def _typed_names(data: dict) -> None:
    """Both spellings are text or null, also the one not taken."""
    for key in ("name", "display_name", "description", "display_description"):
        display_field(data.get(key), key)


def _named(data: dict, new: str, old: str):
    """Manila: the v2 spelling wins whenever it is present (even null)."""
    return data[new] if new in data else data.get(old)


class Snapshots(Resource):
    POLICY = {
        "on_get": "share_snapshot:get_all_snapshots",
        "on_get_detail": "share_snapshot:get_all_snapshots",
        "on_post": "share:create_snapshot",
    }

    def on_get(self, req, resp) -> None:
        self._list(req, resp, detailed=False)

    def on_get_detail(self, req, resp) -> None:
        self._list(req, resp, detailed=True)

    def _list(self, req, resp, *, detailed: bool) -> None:
        who, ver = caller(req), version(req)
        q = qp.flatten(req.params)
        filters: dict = {}
        for key, column in EQUAL_FILTERS.items():
            if key in q:
                filters[column] = qp.text(q[key], key)
        if "size" in q:
            try:
                size = int(q["size"])
            except ValueError:
                size = -1
            if size < 0:
                raise InvalidInput(f"Invalid size filter {q['size']!r}: expected a non-negative integer.")
            filters["size"] = size
        if ver.at_least("2.36"):
            if "description" in q:
                filters["description"] = qp.text(q["description"], "description")
            for key in ("name~", "description~"):
                if key in q:
                    filters[key] = qp.text(q[key], key)
        everyone = policy.authorize(who, "share_snapshot:list_all_projects")
        all_projects = qp.all_tenants(q) and everyone
        if "project_id" in q and everyone:
            filters["project_id"] = qp.text(q["project_id"], "project_id")
        sort_key, sort_dir = qp.sort(q, SORT_KEYS)
        limit = qp.limit(q.get("limit"))
        rows = self.services.snapshots.list(
            who, all_projects=all_projects, filters=filters, sort_key=sort_key, sort_dir=sort_dir,
            limit=limit, offset=qp.offset(q.get("offset")), marker=qp.marker(q.get("marker")),
        )
        ctx = self.view_context(req)
        next_href = None
        if limit is not None and rows and len(rows) == limit:
            # As for shares: Manila's next link, to the route that was asked.
            route = "snapshots/detail" if detailed else "snapshots"
            next_href = f"{ctx.collection_url(route)}?{qp.next_query(q, rows[-1].id)}"
        reply(resp, view.list_view(rows, ctx, detailed=detailed, next_href=next_href))

    def on_post(self, req, resp) -> None:
        _, data = section(req, "snapshot")
        # Manila's v2 create ignores ``force`` (manilaclient always sends it);
        # it must still be a boolean.
        validation.optional_boolean(data.get("force"), "force")
        _typed_names(data)
        created = self.services.snapshots.create(
            caller(req),
            share_id=data.get("share_id"),
            name=_named(data, "name", "display_name"),
            description=_named(data, "description", "display_description"),
        )
        reply(resp, {"snapshot": view.detail(created, self.view_context(req))}, status=202)


class Snapshot(Resource):
    POLICY = {
        "on_get": "share_snapshot:get_snapshot",
        "on_put": "share:snapshot_update",
        "on_delete": "share:delete_snapshot",
    }

    def on_get(self, req, resp, snapshot_id: str) -> None:
        snap = self.services.snapshots.get(caller(req), snapshot_id)
        reply(resp, {"snapshot": view.detail(snap, self.view_context(req))})

    def on_put(self, req, resp, snapshot_id: str) -> None:
        _, data = section(req, "snapshot")
        _typed_names(data)
        snap = self.services.snapshots.update(caller(req), snapshot_id, fields=data)
        reply(resp, {"snapshot": view.detail(snap, self.view_context(req))})

    def on_delete(self, req, resp, snapshot_id: str) -> None:
        self.services.snapshots.delete(caller(req), snapshot_id)
        accepted(resp)


class SnapshotActions(Resource):
    POLICY = {"on_post": PER_ACTION}

    def __init__(self, config, services):
        super().__init__(config, services)
        self.actions: Actions = {
            "os-reset_status": Action("2.0", "2.6", self.reset_status, "share_snapshot:reset_status"),
            "reset_status": Action("2.7", None, self.reset_status, "share_snapshot:reset_status"),
            "os-force_delete": Action("2.0", "2.6", self.force_delete, "share_snapshot:force_delete"),
            "force_delete": Action("2.7", None, self.force_delete, "share_snapshot:force_delete"),
        }

    def on_post(self, req, resp, snapshot_id: str) -> None:
        dispatch_action(req, resp, snapshot_id, self.actions, kind="Snapshot", unsupported=UNSUPPORTED)

    def reset_status(self, req, resp, snapshot_id: str, info) -> None:
        status = info.get("status") if isinstance(info, dict) else None
        self.services.snapshots.reset_status(caller(req), snapshot_id, status)
        accepted(resp)

    def force_delete(self, req, resp, snapshot_id: str, info) -> None:
        self.services.snapshots.force_delete(caller(req), snapshot_id)
        accepted(resp)
