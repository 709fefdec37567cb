"""Share instances (2.3), their export locations (2.9), snapshot instances
(2.19) and share replicas (2.11), as manila/api/v2/share_instances.py,
share_instance_export_locations.py, share_snapshot_instances.py and
share_replicas.py answer them.

Manila's order on every route: the microversion (404), then the policy
(403), then the body (400), then the resource (404). Instances are admin
only; replicas are readable by members and always an empty list here (no
share is replicated), 2.11 to 2.55 only with Manila's experimental header.
"""

from __future__ import annotations

from shareflow.api import params as qp
from shareflow.api.resources.base import (
    PER_ACTION,
    NOT_AT_THIS_VERSION,
    Action,
    Actions,
    Resource,
    accepted,
    caller,
    dispatch_action,
    reply,
    require_version,
    version,
)
from shareflow.api.views import export_locations as locations_view
from shareflow.api.views import instances as view
from shareflow.domain import validation
from shareflow.exceptions import InvalidInput, NotFound

SHARE_INSTANCES = "2.3"
#: ``export_location_id`` / ``export_location_path`` (and the other filters) from here.
INSTANCE_FILTERS = "2.35"
#: ``is_soft_deleted`` parsed as a boolean from here (the recycle bin).
SOFT_DELETED = "2.69"
EXPORT_LOCATIONS = "2.9"
SNAPSHOT_INSTANCES = "2.19"
REPLICAS = "2.11"
#: Replication left Manila's experimental APIs here (``GRADUATION_VERSION``).
REPLICAS_GRADUATED = "2.56"
EXPERIMENTAL_HEADER = "X-OpenStack-Manila-API-Experimental"


class ShareInstances(Resource):
    """``GET /share_instances``: every live share's instance."""

    POLICY = {"on_get": "share_instance:index", "on_get_detail": "share_instance:index"}

    def on_get(self, req, resp) -> None:
        require_version(req, SHARE_INSTANCES)
        who, ver = caller(req), version(req)
        q = qp.flatten(req.params)
        filters, soft_deleted = {}, False
        # Before 2.35 Manila lists everything whatever the query says.
        if ver.at_least(INSTANCE_FILTERS):
            filters = q
            if ver.at_least(SOFT_DELETED) and "is_soft_deleted" in q and who.is_admin:
                soft_deleted = _boolean(q["is_soft_deleted"], "is_soft_deleted")
            else:
                # 2.35-2.68 pass the raw value on: any non-empty one asks for
                # soft-deleted shares only.
                soft_deleted = bool(q.get("is_soft_deleted"))
        instances = self.services.instances.list(who, filters, soft_deleted=soft_deleted)
        reply(resp, view.share_instance_list(instances, self.view_context(req)))

    def on_get_detail(self, req, resp) -> None:
        """Manila's router has ``/share_instances/detail`` but its controller
        no ``detail``: 404 for everyone (not an instance named "detail")."""
        raise NotFound(f"GET {req.path}", user_message=NOT_AT_THIS_VERSION)


class ShareInstance(Resource):
    POLICY = {"on_get": "share_instance:show"}

    def on_get(self, req, resp, instance_id: str) -> None:
        require_version(req, SHARE_INSTANCES)
        try:
            instance = self.services.instances.get(caller(req), instance_id)
        except NotFound as e:
            # Manila's show raises a bare HTTPNotFound.
            raise NotFound(e.message, user_message=NOT_AT_THIS_VERSION) from None
        reply(resp, view.share_instance_detail(instance, self.view_context(req)))


class ShareInstancesOfShare(Resource):
    """``GET /shares/{id}/instances``: the share's one instance."""

    POLICY = {"on_get": "share_instance:index"}

    def on_get(self, req, resp, share_id: str) -> None:
        require_version(req, SHARE_INSTANCES)
        try:
            instances = self.services.instances.of_share(caller(req), share_id)
        except NotFound as e:
            raise NotFound(e.message, user_message=NOT_AT_THIS_VERSION) from None
        reply(resp, view.share_instance_list(instances, self.view_context(req)))


class ShareInstanceActions(Resource):
    POLICY = {"on_post": PER_ACTION}

    def __init__(self, config, services):
        super().__init__(config, services)
        self.actions: Actions = {}
        for name, handler in (("reset_status", self._reset_status), ("force_delete", self._force_delete)):
            # Manila's names: ``os-`` from 2.3 to 2.6, plain from 2.7.
            self.actions[f"os-{name}"] = Action(SHARE_INSTANCES, "2.6", handler, f"share_instance:{name}")
            self.actions[name] = Action("2.7", None, handler, f"share_instance:{name}")

    def on_post(self, req, resp, instance_id: str) -> None:
        require_version(req, SHARE_INSTANCES)
        dispatch_action(req, resp, instance_id, self.actions, kind="Share instance")

    def _reset_status(self, req, resp, instance_id: str, info) -> None:
        self.services.instances.reset_status(caller(req), instance_id, info)
        accepted(resp)

    def _force_delete(self, req, resp, instance_id: str, info) -> None:
        self.services.instances.force_delete(caller(req), instance_id)
        accepted(resp)


class ShareInstanceExportLocations(Resource):
    """``/share_instances/{id}/export_locations[/{el_id}]``: admin-only
    locations included, each with ``share_instance_id`` and ``is_admin_only``."""

    POLICY = {
        "on_get": "share_instance_export_location:index",
        "on_get_item": "share_instance_export_location:show",
    }

    def on_get(self, req, resp, instance_id: str) -> None:
        require_version(req, EXPORT_LOCATIONS)
        locations = self.services.instances.export_locations(
            caller(req), instance_id, rule="share_instance_export_location:index")
        reply(resp, locations_view.list_view(locations, self.view_context(req)))

    def on_get_item(self, req, resp, instance_id: str, export_location_id: str) -> None:
        require_version(req, EXPORT_LOCATIONS)
        locations = self.services.instances.export_locations(
            caller(req), instance_id, rule="share_instance_export_location:show")
        for el in locations:
            if el.id == export_location_id:
                reply(resp, locations_view.detail(el, self.view_context(req)))
                return
        raise NotFound(f"Export location {export_location_id} could not be found.")


class SnapshotInstances(Resource):
    POLICY = {"on_get": "share_snapshot_instance:index", "on_get_detail": "share_snapshot_instance:detail"}

    def on_get(self, req, resp) -> None:
        self._list(req, resp, detailed=False)

    def on_get_detail(self, req, resp) -> None:
        self._list(req, resp, detailed=True)

    def _list(self, req, resp, *, detailed: bool) -> None:
        require_version(req, SNAPSHOT_INSTANCES)
        snapshot_id = qp.flatten(req.params).get("snapshot_id") or None
        instances = self.services.instances.snapshot_instances(caller(req), snapshot_id=snapshot_id,
                                                               detailed=detailed)
        reply(resp, view.snapshot_instance_list(instances, detailed=detailed))


class SnapshotInstance(Resource):
    POLICY = {"on_get": "share_snapshot_instance:show"}

    def on_get(self, req, resp, instance_id: str) -> None:
        require_version(req, SNAPSHOT_INSTANCES)
        instance = self.services.instances.snapshot_instance(caller(req), instance_id)
        reply(resp, view.snapshot_instance_detail(instance))


class SnapshotInstanceActions(Resource):
    POLICY = {"on_post": PER_ACTION}

    def __init__(self, config, services):
        super().__init__(config, services)
        self.actions: Actions = {"reset_status": Action(
            SNAPSHOT_INSTANCES, None, self._reset_status, "share_snapshot_instance:reset_status")}

    def on_post(self, req, resp, instance_id: str) -> None:
        require_version(req, SNAPSHOT_INSTANCES)
        dispatch_action(req, resp, instance_id, self.actions, kind="Snapshot instance")

    def _reset_status(self, req, resp, instance_id: str, info) -> None:
        self.services.instances.reset_snapshot_instance_status(caller(req), instance_id, info)
        accepted(resp)


class ShareReplicas(Resource):
    """``/share-replicas[/detail]`` (``?share_id=``) and ``/share-replicas/{id}``:
    readable by any project (Manila's ``share_replica:get_all``/``show``);
    nothing is replicated, so the lists are empty and every replica is 404."""

    POLICY = {
        "on_get": "share_replica:get_all",
        "on_get_detail": "share_replica:get_all",
        "on_get_item": "share_replica:show",
    }

    def on_get(self, req, resp) -> None:
        self._list(req, resp)

    def on_get_detail(self, req, resp) -> None:
        self._list(req, resp)

    def on_get_item(self, req, resp, replica_id: str) -> None:
        self._require(req, resp)
        raise NotFound(f"Replica {replica_id} not found.")

    def _list(self, req, resp) -> None:
        self._require(req, resp)
        q = qp.flatten(req.params)
        # Manila pages the (empty) list: bad paging parameters are still its 400.
        qp.limit(q.get("limit"))
        qp.offset(q.get("offset"))
        reply(resp, view.replica_list())

    @staticmethod
    def _require(req, resp) -> None:
        experimental = _experimental(req)
        if experimental:
            # Manila echoes the header on every answer to an experimental request.
            resp.set_header(EXPERIMENTAL_HEADER, "True")
        if version(req).before(REPLICAS_GRADUATED):
            require_version(req, REPLICAS)
            if not experimental:
                raise NotFound(f"{req.path} is experimental before {REPLICAS_GRADUATED}",
                               user_message=NOT_AT_THIS_VERSION)


def _experimental(req) -> bool:
    value = req.get_header(EXPERIMENTAL_HEADER)
    if value is None:
        return False
    try:
        return validation.boolean(value, EXPERIMENTAL_HEADER)
    except InvalidInput:
        return False  # oslo's lenient bool_from_string: anything else is False


def _boolean(value: str, name: str) -> bool:
    try:
        return validation.boolean(value, name)
    except InvalidInput:
        raise InvalidInput(f"Invalid value {value} for {name}. Expecting a boolean.") from None
