"""``/security-services`` (create, list, detail, show, update, delete) as
manila/api/v2/security_service.py answers them.

* create and update without a ``security_service`` object: webob's bare 422;
* list: the caller's project's; an admin's ``all_tenants`` lists every
  project's; ``share_network_id`` lists those added to that share network (404
  when the caller cannot see it); the other parameters filter on exact values
  (``name``, ``id``, ``type``, ``user``, ``server``, ``dns_ip``, ``domain``; a
  member's other parameters are ignored, an admin's match nothing);
  ``limit`` and ``offset`` page; detail lists add each one's ``share_networks``;
* another project's security service is 403 to a member (Manila's
  owner-or-admin policy on the one it found), an unknown one 404;
* update and delete as :class:`~shareflow.services.security_services.SecurityServiceService` decides.
"""

from __future__ import annotations

from shareflow import policy
from shareflow.api import params as qp
from shareflow.api.resources.base import Resource, accepted, body, caller, reply, version
from shareflow.api.resources.share_networks import UNPROCESSABLE_MESSAGE
from shareflow.api.views import security_services as view
from shareflow.exceptions import UnprocessableEntity

RESOURCE = "security_service"
#: Manila's ``_get_security_services_search_options``: what a member may filter on.
MEMBER_FILTERS = ("name", "id", "type", "user", "server", "dns_ip", "domain")
COLUMNS = ("id", "project_id", "type", "name", "description", "dns_ip", "ou", "server", "domain", "user",
           "password", "default_ad_site")
NOT_FILTERS = ("status", "share_network_id", "all_tenants", "limit", "offset")


def _values(req) -> dict:
    data = body(req)
    if not isinstance(data, dict) or not isinstance(data.get(RESOURCE), dict):
        raise UnprocessableEntity(f"no {RESOURCE} object in the body", user_message=UNPROCESSABLE_MESSAGE)
    return data[RESOURCE]


class SecurityServices(Resource):
    POLICY = {
        "on_get": "security_service:index",
        "on_get_detail": "security_service:detail",
        "on_post": "security_service:create",
        "on_get_item": "security_service:show",
        "on_put_item": "security_service:update",
        "on_delete_item": "security_service:delete",
    }

    def on_get(self, req, resp) -> None:
        self._list(req, resp, detailed=False)

    def on_get_detail(self, req, resp) -> None:
        self._list(req, resp, detailed=True)

    def _list(self, req, resp, *, detailed: bool) -> None:
        who = caller(req)
        q = qp.flatten(req.params)
        limit, offset = qp.limit(q.get("limit")), qp.offset(q.get("offset"))
        everyone = policy.authorize(who, "security_service:get_all_security_services")
        all_projects = everyone and qp.all_tenants(q)
        rows = self.services.security_services.list(who, all_projects=all_projects,
                                                    share_network_id=q.get("share_network_id"))
        filters = {k: v for k, v in q.items() if k not in NOT_FILTERS}
        if not everyone:
            filters = {k: v for k, v in filters.items() if k in MEMBER_FILTERS}
        if filters:
            missing = object()
            rows = [ss for ss in rows
                    if all((getattr(ss, k) if k in COLUMNS else missing) == v for k, v in filters.items())]
        end = None if limit is None else offset + limit
        rows = rows[offset:end]
        ctx = self.view_context(req)
        if not detailed:
            reply(resp, {"security_services": [view.summary(ss, ctx) for ss in rows]})
            return
        networks = self.services.security_services.share_networks([ss.id for ss in rows])
        reply(resp, {"security_services": [view.detail(ss, ctx, networks[ss.id]) for ss in rows]})

    def on_post(self, req, resp) -> None:
        values = _values(req)
        ss = self.services.security_services.create(caller(req), values, version_at_least=version(req).at_least)
        reply(resp, {RESOURCE: view.detail(ss, self.view_context(req))})

    def on_get_item(self, req, resp, security_service_id: str) -> None:
        ss, _networks = self.services.security_services.get(caller(req), security_service_id)
        reply(resp, {RESOURCE: view.detail(ss, self.view_context(req))})

    def on_put_item(self, req, resp, security_service_id: str) -> None:
        values = _values(req)
        ss, _networks = self.services.security_services.update(
            caller(req), security_service_id, values, version_at_least=version(req).at_least)
        reply(resp, {RESOURCE: view.detail(ss, self.view_context(req))})

    def on_delete_item(self, req, resp, security_service_id: str) -> None:
        self.services.security_services.delete(caller(req), security_service_id)
        accepted(resp)
