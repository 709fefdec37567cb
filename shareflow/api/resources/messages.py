"""``/messages`` from 2.37 (manila/api/v2/messages.py): list with Manila's
filters, show, delete (204).

Filters: ``resource_id``, ``resource_type`` (repeatable), ``action_id``,
``detail_id``, ``message_level``, ``request_id``; from 2.52 ``created_since``
and ``created_before`` (ISO 8601; ignored before 2.52, as Manila); ``limit``,
``offset``, ``sort_key`` (python-manilaclient's MESSAGE_SORT_KEY_VALUES) and
``sort_dir``. Other query parameters are ignored, as Manila does. A member
sees its project's messages; an admin lists every project's with
``all_tenants`` and may read or delete any message by id.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shareflow.api import params as qp
from shareflow.api.resources.base import Resource, caller, reply, require_version, version
from shareflow.api.views import messages as view
from shareflow.db import messages as messages_db
from shareflow.exceptions import InvalidInput

VERSION = "2.37"
TIMESTAMPS_VERSION = "2.52"


def _isotime(value: str, key: str) -> datetime:
    """oslo's parse_isotime, to naive UTC as stored."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except (ValueError, TypeError):
        raise InvalidInput(f"Invalid value specified for the query key: {key}") from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


class Messages(Resource):
    POLICY = {"on_get": "message:get_all", "on_get_item": "message:get", "on_delete_item": "message:delete"}

    def on_get(self, req, resp) -> None:
        require_version(req, VERSION)
        who = caller(req)
        q = qp.flatten(req.params)
        filters: dict = {}
        for key in messages_db.EXACT_FILTERS:
            if key not in q:
                continue
            raw = req.params.get(key)
            if key == "resource_type" and isinstance(raw, list):
                filters[key] = [qp.text(v, key) for v in raw]
            else:
                filters[key] = qp.text(q[key], key)
        since = before = None
        if version(req).at_least(TIMESTAMPS_VERSION):
            if "created_since" in q:
                since = _isotime(q["created_since"], "created_since")
            if "created_before" in q:
                before = _isotime(q["created_before"], "created_before")
        sort_key, sort_dir = qp.sort(q, {k: k for k in messages_db.SORT_KEYS})
        messages = self.services.messages.list(
            who, all_projects=qp.all_tenants(q) and who.is_admin, filters=filters,
            created_since=since, created_before=before, sort_key=sort_key, sort_dir=sort_dir,
            limit=qp.limit(q.get("limit")), offset=qp.offset(q.get("offset")),
        )
        reply(resp, view.list_view(messages, self.view_context(req)))

    def on_get_item(self, req, resp, message_id: str) -> None:
        require_version(req, VERSION)
        msg = self.services.messages.get(caller(req), message_id)
        reply(resp, {"message": view.detail(msg, self.view_context(req))})

    def on_delete_item(self, req, resp, message_id: str) -> None:
        require_version(req, VERSION)
        self.services.messages.delete(caller(req), message_id)
        resp.status = 204

