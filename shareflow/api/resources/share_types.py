"""``/types``: list, show, default, create and delete (admin), the project
access list of private types, and ``/types/{id}/action``
(manila/api/v2/share_types.py).

Writes are checked for the admin role before the body is looked at, as
Manila's policy decorator does: a member gets 403 whatever they send.
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
    section,
    version,
)
from shareflow.api.views import share_types as view
from shareflow.domain import validation
from shareflow.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from shareflow.services.context import Caller

POLICY_MESSAGE = "Policy doesn't allow {action} to be performed."
IS_PUBLIC_KEYS = ("share_type_access:is_public", "os-share-type-access:is_public")


def require_admin(who: Caller, action: str) -> None:
    if not who.is_admin:
        raise Forbidden(f"{action} needs admin", user_message=POLICY_MESSAGE.format(action=action))


class ShareTypes(Resource):
    def on_get(self, req, resp) -> None:
        who = caller(req)
        q = qp.flatten(req.params)
        # Manila shows admins only public types unless they ask for is_public=all/false.
        is_public = q.get("is_public", "true") if who.is_admin else None
        types = self.services.share_types.list(who, is_public=is_public)
        if "extra_specs" in q:
            if version(req).before("2.43"):
                raise InvalidInput(
                    "Filter by 'extra_specs' is not supported by this microversion. Use 2.43 or "
                    "greater microversion to be able to use filter search by 'extra_specs."
                )
            wanted = validation.extra_specs(qp.literal_dict(q["extra_specs"], "extra_specs"))
            types = [t for t in types if all(t.specs().get(k) == v for k, v in wanted.items())]
        reply(resp, view.list_view(types, self.view_context(req)))

    def on_get_default(self, req, resp) -> None:
        stype = self.services.share_types.default(caller(req))
        reply(resp, view.detail(stype, self.view_context(req)))

    def on_post(self, req, resp) -> None:
        who = caller(req)
        require_admin(who, "share_type:create")
        _, data = section(req, "share_type", "volume_type")
        description = data.get("description")
        if description and version(req).before("2.41"):
            raise InvalidInput(
                "'description' key is not supported by this microversion. Use 2.41 or greater "
                "microversion to be able to use 'description' in share type."
            )
        specs = data.get("extra_specs", {})
        if isinstance(specs, dict) and version(req).before("2.24"):
            # Before 2.24 snapshot_support was required and defaulted to True.
            specs = {"snapshot_support": True, **specs}
        # Every spelling given must be a boolean, also the one not taken.
        flags = [validation.boolean(data[k], k) for k in IS_PUBLIC_KEYS if k in data]
        is_public = flags[0] if flags else True
        stype = self.services.share_types.create(
            who, name=data.get("name"), extra_specs=specs, description=description,
            is_public=is_public,
        )
        reply(resp, view.detail(stype, self.view_context(req)))


class ShareType(Resource):
    def on_get(self, req, resp, type_id: str) -> None:
        stype = self.services.share_types.get(caller(req), type_id)
        reply(resp, view.detail(stype, self.view_context(req)))

    def on_delete(self, req, resp, type_id: str) -> None:
        who = caller(req)
        require_admin(who, "share_type:delete")
        self.services.share_types.delete(who, type_id)
        accepted(resp)


class ShareTypeAccess(Resource):
    """Projects allowed to use a private type. This service keeps no such
    lists: private types are for admins, so the list is always empty."""

    def on_get(self, req, resp, type_id: str) -> None:
        who = caller(req)
        require_admin(who, "share_type:list_project_access")
        stype = self.services.share_types.get(who, type_id)
        if stype.is_public:
            raise NotFound("public type", user_message="Access list not available for public share types.")
        reply(resp, {"share_type_access": []})


class ShareTypeActions(Resource):
    ACTIONS = ("addProjectAccess", "removeProjectAccess")

    def on_post(self, req, resp, type_id: str) -> None:
        who = caller(req)
        data = body(req)
        if not isinstance(data, dict) or len(data) != 1:
            raise InvalidInput("action body must have exactly one key", user_message=MALFORMED_BODY)
        (name, info), = data.items()
        if name not in self.ACTIONS:
            raise InvalidInput(f"There is no such action: {name}")
        require_admin(who, f"share_type:{'add' if name.startswith('add') else 'remove'}_project_access")
        project = info.get("project") if isinstance(info, dict) else None
        if not isinstance(project, str) or not project:
            raise InvalidInput(f"Bad project format: project is not in proper format ({project})")
        stype = self.services.share_types.get(who, type_id)
        if stype.is_public:
            raise Conflict("public type",
                           user_message="Type access modification is not applicable to public share type.")
        raise InvalidInput("Project access lists of private share types are not supported by this service.")
