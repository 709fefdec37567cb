"""``/share-networks`` (create, list, detail, show, update, delete) and
``/share-networks/{id}/subnets`` (list, show), as manila/api/v2/share_networks.py
and share_network_subnets.py answer them.

* create and update without a ``share_network`` object: webob's bare 422;
* list: a member sees its project's share networks; an admin its own project's,
  another's with ``project_id``, or all with ``all_tenants``; the remaining query
  parameters filter as Manila filters them (exact values, ``name~`` and
  ``description~`` from 2.36, ``created_since``/``created_before`` as yyyy-mm-dd,
  ``network_type`` and ``segmentation_id`` only for admins; a parameter Manila
  does not know matches nothing);
* delete answers 202 with no body;
* subnets (2.51): one per availability zone (409 for a second), deleted only
  without shares or share servers on them (409);
* actions: ``add_security_service`` and ``remove_security_service`` (200,
  the share network), 2.63's ``update_security_service`` (202, the share
  network) and its ``update_security_service_check`` /
  ``add_security_service_check`` (202, the check), with the rules of
  :mod:`shareflow.services.security_services`; ``reset_status`` and 2.70's
  ``share_network_subnet_create_check`` are not supported here: 400.
"""

from __future__ import annotations

from datetime import datetime

from shareflow import policy
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
    version,
)
from shareflow.api.views import security_services as ss_view
from shareflow.api.views import share_networks as view
from shareflow.exceptions import InvalidInput, NotFound, UnprocessableEntity

#: webob's HTTPUnprocessableEntity explanation.
UNPROCESSABLE_MESSAGE = "Unable to process the contained instructions"
RESOURCE = "share_network"
#: Query parameters Manila takes out before filtering.
NOT_FILTERS = ("all_tenants", "created_since", "created_before", "limit", "offset",
               "security_service_id", "project_id")
ADMIN_FILTERS = ("network_type", "segmentation_id")
INT_FILTERS = ("ip_version", "segmentation_id")
#: Manila's share network actions this service does not have.
UNSUPPORTED_ACTIONS = frozenset({"share_network_subnet_create_check", "reset_status"})


def _values(req) -> dict:
    data = body(req)
    if not isinstance(data, dict) or RESOURCE not in data:
        raise UnprocessableEntity(f"no {RESOURCE} in the body", user_message=UNPROCESSABLE_MESSAGE)
    return data[RESOURCE]


def _date(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d")
    except (ValueError, TypeError):
        raise InvalidInput(f"{value} is not in yyyy-mm-dd format.") from None


def _matches(own: dict, subnets: list[dict], key: str, value, *, fuzzy: bool) -> bool:
    """manila/api/v2/share_networks.py ``_get_share_networks`` and ``_subnet_has_search_opt``."""
    if own.get(key) == value:
        return True
    base = key[:-1] if key.endswith("~") else None
    for sub in subnets:
        if sub.get(key) == value:
            return True
        if fuzzy and base and isinstance(sub.get(base), str) and value in sub[base]:
            return True
    return bool(fuzzy and base and isinstance(own.get(base), str) and value in own[base])


class ShareNetworks(Resource):
    POLICY = {
        "on_get": "share_network:index",
        "on_get_detail": "share_network:detail",
        "on_post": "share_network:create",
    }

    def on_get(self, req, resp) -> None:
        self._list(req, resp, detailed=False)

    def on_get_detail(self, req, resp) -> None:
        self._list(req, resp, detailed=True)

    def _list(self, req, resp, *, detailed: bool) -> None:
        who, ver = caller(req), version(req)
        q = qp.flatten(req.params)
        everyone = policy.authorize(who, "share_network:get_all_share_networks")
        project_id = qp.text(q["project_id"], "project_id") if "project_id" in q and everyone else None
        all_projects = everyone and qp.all_tenants(q)
        since = _date(q["created_since"]) if "created_since" in q else None
        before = _date(q["created_before"]) if "created_before" in q else None
        limit, offset = qp.limit(q.get("limit")), qp.offset(q.get("offset"))
        filters = {k: v for k, v in q.items() if k not in NOT_FILTERS}
        if not everyone:
            for key in ADMIN_FILTERS:
                filters.pop(key, None)
        for key in INT_FILTERS:
            if key in filters:
                try:
                    filters[key] = int(filters[key])
                except ValueError:
                    raise InvalidInput(f"Invalid {key} filter {filters[key]!r}: expected an integer.") from None
        ctx = self.view_context(req)
        if since is None and before is None and not filters and "security_service_id" not in q:
            # Nothing to match on the views' values: the page is the database's.
            rows = self.services.share_networks.list(who, project_id=project_id, all_projects=all_projects,
                                                     limit=limit, offset=offset)
            reply(resp, view.list_view(rows, ctx, detailed=detailed))
            return
        rows = self.services.share_networks.list(who, project_id=project_id, all_projects=all_projects)
        if since is not None:
            rows = [sn for sn in rows if sn.created_at > since]
        if before is not None:
            rows = [sn for sn in rows if sn.created_at < before]
        if "security_service_id" in q:
            # Manila lists every share network the security service is added to.
            wanted = set(self.services.security_services.share_networks([q["security_service_id"]])
                         [q["security_service_id"]])
            if everyone and project_id is None and not all_projects:
                rows = self.services.share_networks.list(who, all_projects=True)
            rows = [sn for sn in rows if sn.id in wanted]
        if filters:
            fuzzy = ver.at_least("2.36")
            kept = []
            for sn in rows:
                own, subs = view.filter_values(sn, ctx)
                if all(_matches(own, subs, k, v, fuzzy=fuzzy) for k, v in filters.items()):
                    kept.append(sn)
            rows = kept
        end = None if limit is None else offset + limit
        reply(resp, view.list_view(rows[offset:end], ctx, detailed=detailed))

    def on_post(self, req, resp) -> None:
        values = _values(req)
        created = self.services.share_networks.create(
            caller(req), values, with_availability_zone=version(req).at_least("2.51"),
        )
        reply(resp, {RESOURCE: view.detail(created, self.view_context(req))})


class ShareNetwork(Resource):
    POLICY = {
        "on_get": "share_network:show",
        "on_put": "share_network:update",
        "on_delete": "share_network:delete",
    }

    def on_get(self, req, resp, share_network_id: str) -> None:
        sn = self.services.share_networks.get(caller(req), share_network_id)
        reply(resp, {RESOURCE: view.detail(sn, self.view_context(req))})

    def on_put(self, req, resp, share_network_id: str) -> None:
        values = _values(req)
        sn = self.services.share_networks.update(caller(req), share_network_id, values)
        reply(resp, {RESOURCE: view.detail(sn, self.view_context(req))})

    def on_delete(self, req, resp, share_network_id: str) -> None:
        self.services.share_networks.delete(caller(req), share_network_id)
        accepted(resp)


class ShareNetworkActions(Resource):
    POLICY = {"on_post": PER_ACTION}

    def __init__(self, config, services):
        super().__init__(config, services)
        self.actions: Actions = {
            "add_security_service": Action("2.0", None, self._add, "share_network:add_security_service"),
            "remove_security_service": Action("2.0", None, self._remove,
                                              "share_network:remove_security_service"),
            "update_security_service": Action("2.63", None, self._update,
                                              "share_network:update_security_service"),
            "update_security_service_check": Action("2.63", None, self._update_check,
                                                    "share_network:update_security_service_check"),
            "add_security_service_check": Action("2.63", None, self._add_check,
                                                 "share_network:add_security_service_check"),
        }

    def on_post(self, req, resp, share_network_id: str) -> None:
        data = body(req)
        if not isinstance(data, dict) or len(data) != 1:
            raise InvalidInput("action body must have exactly one key", user_message=MALFORMED_BODY)
        # The share network must exist for the caller first (404 otherwise).
        self.services.share_networks.get(caller(req), share_network_id)
        dispatch_action(req, resp, share_network_id, self.actions, kind="Share network",
                        unsupported=UNSUPPORTED_ACTIONS)

    def _network(self, req, resp, share_network_id: str, status: int = 200) -> None:
        sn = self.services.share_networks.get(caller(req), share_network_id)
        reply(resp, {RESOURCE: view.detail(sn, self.view_context(req))}, status)

    def _add(self, req, resp, share_network_id: str, info) -> None:
        self.services.security_services.add(caller(req), share_network_id, info,
                                            in_use_allowed=version(req).at_least("2.63"))
        self._network(req, resp, share_network_id)

    def _remove(self, req, resp, share_network_id: str, info) -> None:
        self.services.security_services.remove(caller(req), share_network_id, info)
        self._network(req, resp, share_network_id)

    def _update(self, req, resp, share_network_id: str, info) -> None:
        self.services.security_services.replace(caller(req), share_network_id, info)
        self._network(req, resp, share_network_id, 202)

    def _check(self, req, resp, info, result) -> None:
        reply(resp, ss_view.update_check(info, result.compatible, result.hosts_check_result,
                                         self.view_context(req)), 202)

    def _update_check(self, req, resp, share_network_id: str, info) -> None:
        self._check(req, resp, info, self.services.security_services.check_replace(
            caller(req), share_network_id, info))

    def _add_check(self, req, resp, share_network_id: str, info) -> None:
        self._check(req, resp, info, self.services.security_services.check_add(
            caller(req), share_network_id, info))


class ShareNetworkSubnets(Resource):
    """Manila 2.51+: a share network's subnets: list, create (one per
    availability zone, the zone-less default included), show, delete."""

    POLICY = {
        "on_get": "share_network_subnet:index",
        "on_post": "share_network_subnet:create",
        "on_get_item": "share_network_subnet:show",
        "on_delete_item": "share_network_subnet:delete",
    }

    def on_get(self, req, resp, share_network_id: str) -> None:
        require_version(req, "2.51")
        sn = self.services.share_networks.get(caller(req), share_network_id)
        ctx = self.view_context(req)
        reply(resp, {"share_network_subnets": [view.subnet(sub, sn.name, ctx) for sub in sn.subnets]})

    def on_post(self, req, resp, share_network_id: str) -> None:
        require_version(req, "2.51")
        data = body(req)
        values = data.get("share-network-subnet") if isinstance(data, dict) else None
        if not isinstance(values, dict):
            raise InvalidInput("Share Network Subnet is missing from the request body.")
        who = caller(req)
        sub = self.services.share_networks.create_subnet(who, share_network_id, values)
        sn = self.services.share_networks.get(who, share_network_id)
        reply(resp, {"share_network_subnet": view.subnet(sub, sn.name, self.view_context(req))})

    def on_get_item(self, req, resp, share_network_id: str, subnet_id: str) -> None:
        require_version(req, "2.51")
        who = caller(req)
        sn = self.services.share_networks.get(who, share_network_id)
        for sub in sn.subnets:
            if sub.id == subnet_id:
                reply(resp, {"share_network_subnet": view.subnet(sub, sn.name, self.view_context(req))})
                return
        raise NotFound(f"Share network subnet {subnet_id} could not be found.")

    def on_delete_item(self, req, resp, share_network_id: str, subnet_id: str) -> None:
        require_version(req, "2.51")
        self.services.share_networks.delete_subnet(caller(req), share_network_id, subnet_id)
        accepted(resp)


