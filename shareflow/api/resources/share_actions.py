"""``POST /shares/{id}/action``: allow_access, deny_access, access_list.

The body is one key, the action (manila's ``action_peek``: more than one key
is "Malformed request body"). Each action exists in a microversion range:
``os-*`` names up to 2.6, plain names from 2.7, ``access_list`` only until
2.44 (then ``GET /share-access-rules``); outside its range an action is
Manila's bare 404, an unknown action a 400 naming it.
"""

from __future__ import annotations


from shareflow.api.resources import share_admin_actions, share_migration_actions
from shareflow.api.resources.base import (
    PER_ACTION,
    Action,
    Actions,
    Resource,
    accepted,
    caller,
    dispatch_action,
    reply,
    version,
)
from shareflow.api.views import access as access_view
from shareflow.exceptions import InvalidInput

#: Manila share actions this service does not implement (yet): a clear 400.
UNSUPPORTED = frozenset({
    "revert", "unmanage", "soft_delete", "restore",
})


class ShareActions(Resource):
    POLICY = {"on_post": PER_ACTION}

    def __init__(self, config, services):
        super().__init__(config, services)
        self.actions: Actions = {
            "os-allow_access": Action("2.0", "2.6", self.allow_access, "share:allow_access"),
            "allow_access": Action("2.7", None, self.allow_access, "share:allow_access"),
            "os-deny_access": Action("2.0", "2.6", self.deny_access, "share:deny_access"),
            "deny_access": Action("2.7", None, self.deny_access, "share:deny_access"),
            "os-access_list": Action("2.0", "2.6", self.access_list, "share:access_get_all"),
            "access_list": Action("2.7", "2.44", self.access_list, "share:access_get_all"),
            # extend, shrink, reset_status, force_delete and their os- names
            **share_admin_actions.actions(self),
            # Manila's answers; this service does not migrate shares
            **share_migration_actions.actions(self),
            "revert": Action("2.27", None, self.revert, "share:revert_to_snapshot"),
        }

    def on_post(self, req, resp, share_id: str) -> None:
        dispatch_action(req, resp, share_id, self.actions, kind="Share", unsupported=UNSUPPORTED)

    def allow_access(self, req, resp, share_id: str, info) -> None:
        if not isinstance(info, dict):
            raise InvalidInput("Malformed request body: expected an object with access_type and access_to.")
        access_type, access_to = info.get("access_type"), info.get("access_to")
        if access_type is None or access_to is None:
            raise InvalidInput("Both access_type and access_to are required.")
        ver = version(req)
        # As Manila: metadata came with 2.45; before, the key is ignored.
        metadata = info.get("metadata") if ver.at_least("2.45") else None
        rule = self.services.shares.allow_access(
            caller(req), share_id, access_type=access_type, access_to=access_to,
            access_level=info.get("access_level"),
            # As Manila: IPv6 rules came with 2.38; before, IPv4 only.
            ipv6=ver.at_least("2.38"),
            metadata=metadata,
        )
        reply(resp, access_view.detail(rule, self.view_context(req), self._legacy_status(req, share_id)))

    def deny_access(self, req, resp, share_id: str, info) -> None:
        if not isinstance(info, dict) or "access_id" not in info:
            raise InvalidInput("Malformed request body: expected an object with access_id.")
        self.services.shares.deny_access(caller(req), share_id, info["access_id"])
        accepted(resp)

    def access_list(self, req, resp, share_id: str, info) -> None:
        rules = self.services.shares.access_rules(caller(req), share_id)
        reply(resp, access_view.list_view(rules, self.view_context(req), self._legacy_status(req, share_id)))

    def revert(self, req, resp, share_id: str, info) -> None:
        """Revert the share to its latest snapshot (manila/api/v2/shares.py ``_revert``)."""
        if not isinstance(info, dict) or "snapshot_id" not in info:
            raise InvalidInput("Invalid input for field/attribute revert: 'snapshot_id' is a "
                               "required property.")
        self.services.snapshots.revert(caller(req), share_id, info["snapshot_id"])
        accepted(resp)

    def _legacy_status(self, req, share_id: str) -> str | None:
        """Before 2.28 a rule shows its share's rules status instead of its own state."""
        if not version(req).before("2.28"):
            return None
        return self.services.shares.get(caller(req), share_id).access_rules_status
