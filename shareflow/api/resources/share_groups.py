"""``/share-group-types`` (with ``group-specs`` and project access),
``/share-groups`` and ``/share-group-snapshots``
(manila/api/v2/share_group_types.py, share_group_type_specs.py,
share_groups.py, share_group_snapshots.py).

Manila introduced them at 2.31 as experimental APIs (a request without
``X-OpenStack-Manila-API-Experimental: True`` is a bare 404 there, as one
below 2.31 is) and made them GA at 2.55. Type writes, specs and access lists
are admin-only, checked before the body, as Manila's policy does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import falcon

from shareflow.api import params as qp
from shareflow.api.resources.base import (
    NOT_AT_THIS_VERSION,
    PER_ACTION,
    Action,
    Actions,
    Resource,
    body,
    caller,
    dispatch_action,
    reply,
    version,
)
from shareflow.api.views import share_groups as view
from shareflow.auth.tokens import valid_id
from shareflow.domain import validation
from shareflow.exceptions import InvalidInput, NotFound
from shareflow.services.share_groups import (
    GROUP_FILTERS,
    GROUP_SORT_KEYS,
    SNAPSHOT_FILTERS,
    SNAPSHOT_SORT_KEYS,
    spec_values,
)

INTRODUCED = "2.31"
GRADUATED = "2.55"
EXPERIMENTAL_HEADER = "X-OpenStack-Manila-API-Experimental"


def experimental(req) -> bool:
    value = req.get_header(EXPERIMENTAL_HEADER)
    try:
        return value is not None and validation.boolean(value, EXPERIMENTAL_HEADER)
    except InvalidInput:
        return False  # oslo's bool_from_string: anything else is False


def require_groups_api(req, resp, resource, params) -> None:
    """A falcon hook: 2.31-2.54 only with the experimental header (echoed,
    as Manila echoes it), 2.55 on without; else Manila's bare 404."""
    flagged = experimental(req)
    if flagged:
        resp.set_header(EXPERIMENTAL_HEADER, "True")
    v = version(req)
    if v.before(INTRODUCED) or (v.before(GRADUATED) and not flagged):
        raise NotFound(f"{req.method} {req.path} not at {v} (experimental: {flagged})",
                       user_message=NOT_AT_THIS_VERSION)
    if req.env.get("PATH_INFO", "").endswith("/"):
        raise NotFound(f"{req.method} {req.env['PATH_INFO']}", user_message="The resource could not be found.")


def _section(req, key: str) -> dict:
    data = body(req)
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        raise InvalidInput(f"'{key}' is missing from the request body.")
    return data[key]


def no_content(resp) -> None:
    resp.status = 204


def accepted(resp) -> None:
    resp.status = 202
    resp.content_type = "application/json"
    resp.data = b""


def _status(info) -> str:
    status = info.get("status") if isinstance(info, dict) else None
    if not isinstance(status, str):
        raise InvalidInput("Must specify 'status'")
    return status.lower()


class _ListQuery(NamedTuple):
    """A list request's query: its paging and order taken out, the filters left in ``params``."""

    params: dict[str, str]
    sort_key: str
    sort_dir: str
    limit: int | None
    offset: int

    def page(self, items: list) -> list:
        return items[self.offset:][:self.limit] if self.limit is not None else items[self.offset:]


def _list_query(req, sort_keys) -> _ListQuery:
    q = qp.flatten(req.params)
    limit, offset = qp.limit(q.pop("limit", None)), qp.offset(q.pop("offset", None))
    sort_key, sort_dir = qp.sort(q, {k: k for k in sort_keys})
    return _ListQuery(q, sort_key, sort_dir, limit, offset)


def _admin_actions(rules: str, services, get: str, set_status: str, delete_forced: Callable) -> Actions:
    """Manila's admin actions of a share group and of a group snapshot,
    ``reset_status`` and ``force_delete`` (each also as ``os-...``), under
    the rules ``<rules>:reset_status`` and ``<rules>:force_delete``, on the
    share group service's calls named ``get(who, id)`` and ``set_status(who,
    id, status)``, and ``delete_forced(service, who, id)``. The service is
    looked up per request, not when the app is built: building the app
    touches no service. The resource must exist (404) before the action's
    body is judged, as Manila's mixin does."""

    def reset(req, resp, resource_id: str, info) -> None:
        who, groups = caller(req), services.share_groups
        getattr(groups, get)(who, resource_id)
        getattr(groups, set_status)(who, resource_id, _status(info))
        accepted(resp)

    def force(req, resp, resource_id: str, info) -> None:
        who, groups = caller(req), services.share_groups
        getattr(groups, get)(who, resource_id)
        delete_forced(groups, who, resource_id)
        accepted(resp)

    reset_action = Action(INTRODUCED, None, reset, f"{rules}:reset_status")
    force_action = Action(INTRODUCED, None, force, f"{rules}:force_delete")
    return {"reset_status": reset_action, "os-reset_status": reset_action,
            "force_delete": force_action, "os-force_delete": force_action}


# --- share group types ---------------------------------------------------------------


@falcon.before(require_groups_api)
class ShareGroupTypes(Resource):
    POLICY = {"on_get": "share_group_type:index", "on_get_detail": "share_group_type:index",
              "on_get_default": "share_group_type:default", "on_post": "share_group_type:create"}

    def _default_name(self):
        return self.config.default_share_group_type

    def on_get(self, req, resp) -> None:
        who = caller(req)
        q = qp.flatten(req.params)
        wanted = None
        if "group_specs" in q:
            if version(req).before("2.66"):
                raise InvalidInput("Filter by 'group_specs' is not supported by this microversion. Use 2.66 or "
                                   "greater microversion to be able to use filter search by 'group_specs.")
            wanted = qp.literal_dict(q["group_specs"], "group_specs")
        types = self.services.share_groups.list_types(who, is_public=q.get("is_public"), group_specs=wanted)
        reply(resp, view.group_type_list(types, self.view_context(req), self._default_name()))

    on_get_detail = on_get

    def on_get_default(self, req, resp) -> None:
        gt = self.services.share_groups.default_type(caller(req))
        reply(resp, {"share_group_type": view.group_type(gt, self.view_context(req), self._default_name())})

    def on_post(self, req, resp) -> None:
        who = caller(req)
        data = body(req)
        if not isinstance(data, dict) or not isinstance(data.get("share_group_type"), dict):
            raise InvalidInput("Malformed request body: expected a 'share_group_type' object.")
        data = data["share_group_type"]
        gt = self.services.share_groups.create_type(
            who, name=data.get("name"), share_types=data.get("share_types"),
            group_specs=data.get("group_specs"), is_public=data.get("is_public", True))
        reply(resp, {"share_group_type": view.group_type(gt, self.view_context(req), self._default_name())})


@falcon.before(require_groups_api)
class ShareGroupType(Resource):
    POLICY = {"on_get": "share_group_type:show", "on_delete": "share_group_type:delete",
              "on_get_access": "share_group_type:list_project_access", "on_post_action": PER_ACTION}

    def __init__(self, config, services):
        super().__init__(config, services)
        self.actions: Actions = {
            "addProjectAccess": Action(INTRODUCED, None, self._access, "share_group_type:add_project_access"),
            "removeProjectAccess": Action(INTRODUCED, None, self._access, "share_group_type:remove_project_access"),
        }

    def on_get(self, req, resp, type_id: str) -> None:
        gt = self.services.share_groups.get_type(caller(req), type_id)
        reply(resp, {"share_group_type": view.group_type(gt, self.view_context(req),
                                                         self.config.default_share_group_type)})

    def on_delete(self, req, resp, type_id: str) -> None:
        who = caller(req)
        self.services.share_groups.delete_type(who, type_id)
        no_content(resp)

    def on_get_access(self, req, resp, type_id: str) -> None:
        who = caller(req)
        projects = self.services.share_groups.type_access.projects(who, type_id)
        reply(resp, view.group_type_access(type_id, projects))

    def on_post_action(self, req, resp, type_id: str) -> None:
        dispatch_action(req, resp, type_id, self.actions, kind="Share group type")

    def _access(self, req, resp, type_id: str, info) -> None:
        (name,) = body(req)
        who = caller(req)
        project = info.get("project") if isinstance(info, dict) else None
        try:
            project = valid_id(project, "project")
        except InvalidInput:
            raise InvalidInput(f"Project value ({project}) must be in uuid format.") from None
        if name == "addProjectAccess":
            self.services.share_groups.type_access.add(who, type_id, project)
        else:
            self.services.share_groups.type_access.remove(who, type_id, project)
        accepted(resp)


@falcon.before(require_groups_api)
class ShareGroupTypeSpecs(Resource):
    POLICY = {"on_get": "share_group_types_spec:index", "on_post": "share_group_types_spec:create",
              "on_get_item": "share_group_types_spec:show", "on_put_item": "share_group_types_spec:update",
              "on_delete_item": "share_group_types_spec:delete"}

    def on_get(self, req, resp, type_id: str) -> None:
        who = caller(req)
        reply(resp, {"group_specs": self.services.share_groups.type_specs(who, type_id)})

    def on_post(self, req, resp, type_id: str) -> None:
        who = caller(req)
        data = body(req)
        if not isinstance(data, dict) or not isinstance(data.get("group_specs"), dict):
            raise InvalidInput("Malformed request body: expected a 'group_specs' object.")
        self.services.share_groups.get_type(who, type_id)
        specs = spec_values(data["group_specs"])
        self.services.share_groups.set_type_specs(who, type_id, specs)
        reply(resp, data)

    def on_get_item(self, req, resp, type_id: str, key: str) -> None:
        who = caller(req)
        specs = self.services.share_groups.type_specs(who, type_id)
        if key not in specs:
            raise NotFound(f"Share group type {type_id} has no group spec {key}.")
        reply(resp, {key: specs[key]})

    def on_put_item(self, req, resp, type_id: str, key: str) -> None:
        who = caller(req)
        data = body(req)
        if not data:
            raise InvalidInput("Request body empty.")
        self.services.share_groups.get_type(who, type_id)
        if not isinstance(data, dict) or key not in data:
            raise InvalidInput("Request body and URI mismatch.")
        if len(data) > 1:
            raise InvalidInput("Request body contains too many items.")
        self.services.share_groups.set_type_specs(who, type_id, spec_values(data))
        reply(resp, data)

    def on_delete_item(self, req, resp, type_id: str, key: str) -> None:
        who = caller(req)
        self.services.share_groups.unset_type_spec(who, type_id, key)
        no_content(resp)


# --- share groups ----------------------------------------------------------------------

CREATE_FIELDS = {"name", "description", "share_types", "share_group_type_id", "source_share_group_snapshot_id",
                 "share_network_id", "availability_zone"}


def _uuid(value, message: str) -> str:
    try:
        return validation.uuid_str(value)
    except InvalidInput:
        raise InvalidInput(message) from None


@falcon.before(require_groups_api)
class ShareGroups(Resource):
    POLICY = {"on_get": "share_group:get_all", "on_get_detail": "share_group:get_all",
              "on_post": "share_group:create"}

    def on_get(self, req, resp) -> None:
        self._list(req, resp, detailed=False)

    def on_get_detail(self, req, resp) -> None:
        self._list(req, resp, detailed=True)

    def _list(self, req, resp, *, detailed: bool) -> None:
        who = caller(req)
        query = _list_query(req, GROUP_SORT_KEYS)
        q = query.params
        all_projects = qp.all_tenants(q)
        if "group_type_id" in q:
            q["share_group_type_id"] = q.pop("group_type_id")
        filters = {k: v for k, v in q.items() if k in GROUP_FILTERS}
        if version(req).at_least("2.36"):
            filters.update({k: v for k, v in q.items() if k in ("name~", "description~")})
        if not who.is_admin:
            filters.pop("host", None)
        groups = self.services.share_groups.list(who, all_projects=all_projects, filters=filters,
                                                 sort_key=query.sort_key, sort_dir=query.sort_dir)
        reply(resp, view.group_list(query.page(groups), self.view_context(req), detailed=detailed))

    def on_post(self, req, resp) -> None:
        who = caller(req)
        data = _section(req, "share_group")
        invalid = set(data) - CREATE_FIELDS
        if invalid:
            raise InvalidInput(f"The fields {invalid} are invalid.")
        if "share_types" in data and "source_share_group_snapshot_id" in data:
            raise InvalidInput("Cannot supply both 'share_types' and 'source_share_group_snapshot_id' attributes.")
        if "source_share_group_snapshot_id" in data:
            raise InvalidInput("Creating a share group from a share group snapshot "
                               "(source_share_group_snapshot_id) is not supported by this service.")
        share_types = data.get("share_types")
        if share_types:
            if not isinstance(share_types, list) or not all(
                    isinstance(t, str) and _is_uuid(t) for t in share_types):
                raise InvalidInput("The 'share_types' attribute must be a list of uuids")
        network = data.get("share_network_id")
        if "share_network_id" in data:
            network = _uuid(network, "The 'share_network_id' attribute must be a uuid.")
        group_type = None
        if "share_group_type_id" in data:
            group_type = _uuid(data["share_group_type_id"], "The 'share_group_type_id' attribute must be a uuid.")
        zone = validation.optional_ref(data.get("availability_zone"), "availability_zone")
        group = self.services.share_groups.create(
            who, name=data.get("name"), description=data.get("description"), share_types=share_types or None,
            share_group_type_id=group_type, share_network_id=network, availability_zone=zone or None)
        reply(resp, {"share_group": view.group_detail(group, self.view_context(req))}, status=202)


def _is_uuid(value: str) -> bool:
    try:
        validation.uuid_str(value)
        return True
    except InvalidInput:
        return False


@falcon.before(require_groups_api)
class ShareGroup(Resource):
    POLICY = {"on_get": "share_group:get", "on_put": "share_group:update", "on_delete": "share_group:delete",
              "on_post_action": PER_ACTION}

    def __init__(self, config, services):
        super().__init__(config, services)
        self.actions = _admin_actions("share_group", services, "get", "reset_status",
                                      lambda groups, who, group_id: groups.force_delete(who, group_id))

    def on_get(self, req, resp, group_id: str) -> None:
        group = self.services.share_groups.get(caller(req), group_id)
        reply(resp, {"share_group": view.group_detail(group, self.view_context(req))})

    def on_put(self, req, resp, group_id: str) -> None:
        data = _section(req, "share_group")
        group = self.services.share_groups.update(caller(req), group_id, data)
        reply(resp, {"share_group": view.group_detail(group, self.view_context(req))})

    def on_delete(self, req, resp, group_id: str) -> None:
        self.services.share_groups.delete(caller(req), group_id)
        accepted(resp)

    def on_post_action(self, req, resp, group_id: str) -> None:
        dispatch_action(req, resp, group_id, self.actions, kind="Share group")


# --- share group snapshots ---------------------------------------------------------------


@falcon.before(require_groups_api)
class ShareGroupSnapshots(Resource):
    POLICY = {"on_get": "share_group_snapshot:get_all", "on_get_detail": "share_group_snapshot:get_all",
              "on_post": "share_group_snapshot:create"}

    def on_get(self, req, resp) -> None:
        self._list(req, resp, detailed=False)

    def on_get_detail(self, req, resp) -> None:
        self._list(req, resp, detailed=True)

    def _list(self, req, resp, *, detailed: bool) -> None:
        who = caller(req)
        query = _list_query(req, SNAPSHOT_SORT_KEYS)
        q = query.params
        filters = {k: v for k, v in q.items() if k in SNAPSHOT_FILTERS}
        snaps = self.services.share_groups.list_snapshots(who, all_projects=qp.all_tenants(q), filters=filters,
                                                          sort_key=query.sort_key, sort_dir=query.sort_dir)
        reply(resp, view.snapshot_list(query.page(snaps), self.view_context(req), detailed=detailed))

    def on_post(self, req, resp) -> None:
        data = _section(req, "share_group_snapshot")
        group_id = data.get("share_group_id")
        if not group_id:
            raise InvalidInput("Must supply 'share_group_id' attribute.")
        group_id = _uuid(group_id, "The 'share_group_id' attribute must be a uuid.")
        snap = self.services.share_groups.create_snapshot(
            caller(req), share_group_id=group_id, name=data.get("name"), description=data.get("description"))
        reply(resp, {"share_group_snapshot": view.snapshot_detail(snap, self.view_context(req))}, status=202)


@falcon.before(require_groups_api)
class ShareGroupSnapshot(Resource):
    POLICY = {"on_get": "share_group_snapshot:get", "on_get_members": "share_group_snapshot:get",
              "on_put": "share_group_snapshot:update", "on_delete": "share_group_snapshot:delete",
              "on_post_action": PER_ACTION}

    def __init__(self, config, services):
        super().__init__(config, services)
        self.actions = _admin_actions("share_group_snapshot", services, "get_snapshot", "reset_snapshot_status",
                                      lambda groups, who, snap_id: groups.delete_snapshot(who, snap_id, force=True))

    def on_get(self, req, resp, snapshot_id: str) -> None:
        snap = self.services.share_groups.get_snapshot(caller(req), snapshot_id)
        reply(resp, {"share_group_snapshot": view.snapshot_detail(snap, self.view_context(req))})

    def on_get_members(self, req, resp, snapshot_id: str) -> None:
        snap = self.services.share_groups.get_snapshot(caller(req), snapshot_id)
        reply(resp, view.member_list(snap))

    def on_put(self, req, resp, snapshot_id: str) -> None:
        data = _section(req, "share_group_snapshot")
        snap = self.services.share_groups.update_snapshot(caller(req), snapshot_id, data)
        reply(resp, {"share_group_snapshot": view.snapshot_detail(snap, self.view_context(req))})

    def on_delete(self, req, resp, snapshot_id: str) -> None:
        self.services.share_groups.delete_snapshot(caller(req), snapshot_id)
        accepted(resp)

    def on_post_action(self, req, resp, snapshot_id: str) -> None:
        dispatch_action(req, resp, snapshot_id, self.actions, kind="Share group snapshot")
