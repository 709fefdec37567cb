"""``/types``: list, show, default, create, update (2.50) and delete
(admin), the project access list of private types, and
``/types/{id}/action`` (manila/api/v2/share_types.py).

Writes are checked for the admin role before the body is looked at, as
Manila's policy decorator does: a member gets 403 whatever they send.
A member sees (and creates shares with) public types and the private ones
its project was given access to; anything else is "not found".

Project ids on access lists: Manila requires a Keystone id (UUID-like);
shareflow's projects are its own (``shareflow token issue``), so a project
is accepted when it is an id shareflow can hold.
"""

from __future__ import annotations

import falcon

from shareflow.api import params as qp
from shareflow.api.middleware import MALFORMED_BODY
from shareflow.api.resources.base import (
    PER_ACTION,
    Action,
    Actions,
    Resource,
    accepted,
    body,
    caller,
    dispatch_action,
    reply,
    require_version,
    section,
    version,
)
from shareflow.auth.tokens import valid_id
from shareflow.api.views import share_types as view
from shareflow.domain import validation
from shareflow.exceptions import InvalidInput, NotFound

IS_PUBLIC_KEYS = ("share_type_access:is_public", "os-share-type-access:is_public")


def manila_path(req, resp, resource, params) -> None:
    """A falcon hook: the app strips a trailing slash before routing, so
    ``/types/`` would be the collection and ``/types/{id}/extra_specs/`` a
    type's specs; Manila's router matches neither (``get_share_type_extra_spec(
    id, "")`` is a 404 in its API tests). An empty id (``/types//extra_specs``)
    reaches the resource as ``""`` and is not found there."""
    if req.env.get("PATH_INFO", "").endswith("/"):
        raise NotFound(f"{req.method} {req.env['PATH_INFO']}", user_message="The resource could not be found.")


def specs_match(specs: dict[str, str], wanted: dict[str, str]) -> bool:
    """Manila's type-list filter: each wanted spec equal, except
    ``availability_zones``: every zone asked for among the type's zones, and
    a type without zones (any zone) always matches."""
    for key, value in wanted.items():
        if key == validation.AVAILABILITY_ZONES:
            zones = validation.zones_of(specs)
            if zones and not set(value.split(",")) <= set(zones):
                return False
        elif specs.get(key) != value:
            return False
    return True


@falcon.before(manila_path)
class ShareTypes(Resource):
    POLICY = {
        "on_get": "share_type:index",
        "on_delete": "share_type:delete",
        "on_get_default": "share_type:default",
        "on_post": "share_type:create",
    }

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
            types = [t for t in types if specs_match(t.specs(), wanted)]
        reply(resp, view.list_view(types, self.view_context(req)))

    def on_delete(self, req, resp) -> None:
        """Only ``DELETE /types/`` reaches it (the hook's 404); ``DELETE /types`` is a 405."""
        raise falcon.HTTPMethodNotAllowed(["GET", "POST"])

    def on_get_default(self, req, resp) -> None:
        stype = self.services.share_types.default(caller(req))
        reply(resp, view.detail(stype, self.view_context(req)))

    def on_post(self, req, resp) -> None:
        who = caller(req)
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


@falcon.before(manila_path)
class ShareType(Resource):
    POLICY = {"on_get": "share_type:show", "on_put": "share_type:update", "on_delete": "share_type:delete"}

    def on_get(self, req, resp, type_id: str) -> None:
        stype = self.services.share_types.get(caller(req), type_id)
        reply(resp, view.detail(stype, self.view_context(req)))

    def on_put(self, req, resp, type_id: str) -> None:
        """2.50: name, description, ``share_type_access:is_public``."""
        require_version(req, "2.50")
        who = caller(req)
        _, data = section(req, "share_type", "volume_type")
        stype = self.services.share_types.update(
            who, type_id, name=data.get("name"), description=data.get("description"),
            is_public=data.get("share_type_access:is_public"),
        )
        reply(resp, view.detail(stype, self.view_context(req)))

    def on_delete(self, req, resp, type_id: str) -> None:
        who = caller(req)
        self.services.share_types.delete(who, type_id)
        accepted(resp)


@falcon.before(manila_path)
class ShareTypeAccess(Resource):
    """Projects allowed to use a private type (admins)."""

    POLICY = {"on_get": "share_type:list_project_access"}

    def on_get(self, req, resp, type_id: str) -> None:
        who = caller(req)
        projects = self.services.share_types.access.projects(who, type_id)
        reply(resp, view.access_list(type_id, projects))


@falcon.before(manila_path)
class ShareTypeActions(Resource):
    POLICY = {"on_post": PER_ACTION}

    def __init__(self, config, services):
        super().__init__(config, services)
        self.actions: Actions = {
            "addProjectAccess": Action("2.0", None, self._access, "share_type:add_project_access"),
            "removeProjectAccess": Action("2.0", None, self._access, "share_type:remove_project_access"),
        }

    def on_post(self, req, resp, type_id: str) -> None:
        dispatch_action(req, resp, type_id, self.actions, kind="Share type")

    def _access(self, req, resp, type_id: str, info) -> None:
        (name,) = body(req)
        if not isinstance(info, dict):
            raise InvalidInput(f"{name} must be an object", user_message=MALFORMED_BODY)
        project = info.get("project")
        try:
            project = valid_id(project, "project")
        except InvalidInput:
            raise InvalidInput(f"Bad project format: project is not in proper format ({project})") from None
        if name == "addProjectAccess":
            self.services.share_types.access.add(caller(req), type_id, project)
        else:
            self.services.share_types.access.remove(caller(req), type_id, project)
        accepted(resp)
