"""``/quota-sets`` (2.7+) and ``/os-quota-sets`` (2.0-2.6): a project's quotas,
the defaults, and changing or resetting them (admin), as
manila/api/v2/quota_sets.py answers them.

Quotas here are per project. ``?user_id=`` and ``?share_type=`` (2.39+) are
checked as Manila checks them (mutually exclusive; an unknown share type is
404); reading with them shows the project's quotas, which are the only ones
that bind here; deleting with them deletes nothing (there are no such quotas)
and answers 202; setting with them is refused with 400.
"""

from __future__ import annotations

from shareflow.api import params as qp
from shareflow.api.middleware import MALFORMED_BODY
from shareflow.api.resources.base import (
    Resource,
    accepted,
    body,
    caller,
    reply,
    require_version,
    version,
)
from shareflow.api.views import quota_sets as view
from shareflow.db.quotas import RESOURCES, UNLIMITED
from shareflow.domain import validation
from shareflow.exceptions import InvalidInput
from shareflow.services.quotas import quota_value

#: Keys of a quota_set body that are not quotas (Manila's NON_QUOTA_KEYS).
NON_QUOTA_KEYS = ("tenant_id", "id", "force", "share_type")
SHARE_TYPE_VERSION = "2.39"
SHARE_TYPE_TOO_EARLY = (
    "'share_type' key is not supported by this microversion. Use 2.39 or greater "
    "microversion to be able to use 'share_type' quotas."
)
KEY_TOO_EARLY = (
    "'{key}' key is not supported by this microversion. Use {version} or greater "
    "microversion to be able to use '{key}' quotas."
)
MUTUALLY_EXCLUSIVE = "'user_id' and 'share_type' values are mutually exclusive"
NO_SUB_QUOTAS = (
    "Quotas per user or per share type are not supported by this service; "
    "set the project's quotas instead."
)
NOT_LIMITED_HERE = "Quota '{key}' is not limited by this service: it can only be -1 (unlimited)."


class _QuotaSets(Resource):
    POLICY = {
        "on_get": "quota_set:show",
        "on_get_defaults": "quota_set:show",
        "on_put": "quota_set:update",
        "on_delete": "quota_set:delete",
    }

    LOW: str = "2.7"
    HIGH: str | None = None

    def _version(self, req) -> None:
        require_version(req, self.LOW, self.HIGH)

    def _sub_quota(self, req) -> tuple[str | None, str | None]:
        """(user_id, share_type) of the query, checked as Manila checks them."""
        q = qp.flatten(req.params)
        user_id = q.get("user_id") or None
        share_type = q.get("share_type") or None
        if share_type is not None and version(req).before(SHARE_TYPE_VERSION):
            raise InvalidInput(SHARE_TYPE_TOO_EARLY)
        if user_id is not None and share_type is not None:
            raise InvalidInput(MUTUALLY_EXCLUSIVE)
        if user_id is not None:
            validation.optional_text(user_id, "user_id", 255)
        if share_type is not None:
            self.services.quotas.check_share_type(share_type)
        return user_id, share_type

    def _show(self, req, resp, target_id: str, *, detail: bool) -> None:
        _, share_type = self._sub_quota(req)
        values = self.services.quotas.show(caller(req), target_id, detail=detail, share_type=share_type)
        reply(resp, view.quota_set(values, self.view_context(req), project_id=target_id,
                                   share_type=share_type is not None, detail=detail))

    def on_get(self, req, resp, target_id: str) -> None:
        self._version(req)
        self._show(req, resp, target_id, detail=False)

    def on_get_defaults(self, req, resp, target_id: str) -> None:
        self._version(req)
        reply(resp, view.quota_set(self.services.quotas.defaults(), self.view_context(req),
                                   project_id=target_id))

    def on_put(self, req, resp, target_id: str) -> None:
        self._version(req)
        who = caller(req)
        data = body(req)
        quota_set = data.get("quota_set", {}) if isinstance(data, dict) else None
        if not isinstance(quota_set, dict):
            raise InvalidInput("quota_set is not an object", user_message=MALFORMED_BODY)
        for key, since in view.UNLIMITED_RESOURCES.items():
            if quota_set.get(key) and version(req).before(since):
                raise InvalidInput(KEY_TOO_EARLY.format(key=key, version=since))
        if all(quota_set.get(k) is None for k in (*RESOURCES, *view.UNLIMITED_RESOURCES)):
            raise InvalidInput("Must supply at least one quota field to update.")
        user_id, share_type = self._sub_quota(req)

        values: dict[str, int] = {}
        force = False
        bad_keys = []
        for key, value in quota_set.items():
            if key == "force":
                force = validation.boolean(value, "force") if value is not None else False
            elif key in NON_QUOTA_KEYS:
                continue
            elif key in RESOURCES or key in view.UNLIMITED_RESOURCES:
                if value is None or value == "":
                    continue  # Manila skips keys given without a value
                limit = quota_value(key, value)
                if key in RESOURCES:
                    values[key] = limit
                elif limit != UNLIMITED:
                    raise InvalidInput(NOT_LIMITED_HERE.format(key=key))
            else:
                bad_keys.append(str(key))
        if bad_keys:
            raise InvalidInput(f"Bad key(s) {','.join(bad_keys)} in quota_set.")
        if user_id is not None or share_type is not None:
            raise InvalidInput(NO_SUB_QUOTAS)
        limits = self.services.quotas.update(who, target_id, values, force=force)
        # Manila's answer to an update carries no id.
        reply(resp, view.quota_set(limits, self.view_context(req)))

    def on_delete(self, req, resp, target_id: str) -> None:
        self._version(req)
        who = caller(req)
        user_id, share_type = self._sub_quota(req)
        if user_id is None and share_type is None:
            self.services.quotas.delete(who, target_id)
        accepted(resp)


class QuotaSets(_QuotaSets):
    """``/quota-sets/{project}``, with ``/defaults`` and (2.25+) ``/detail``."""

    POLICY = {**_QuotaSets.POLICY, "on_get_detail": "quota_set:show"}

    def on_get_detail(self, req, resp, target_id: str) -> None:
        require_version(req, "2.25")
        self._show(req, resp, target_id, detail=True)


class LegacyQuotaSets(_QuotaSets):
    """``/os-quota-sets/{project}``: the same, before 2.7."""

    LOW = "2.0"
    HIGH = "2.6"
