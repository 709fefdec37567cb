"""Security services as manila/api/views/security_service.py builds them.

* summary: ``id``, ``name``, ``type`` and ``status`` (always ``new``: the
  field left in Manila's view after it left the model);
* detail: also the timestamps, ``description``, ``dns_ip``, ``server``,
  ``domain``, ``user``, ``password``, ``project_id``; ``ou`` from 2.44
  (``default_ad_site`` would come at 2.76, above this service's maximum);
  lists in detail and show add ``share_networks`` (ids);
* ``password`` is shown back as Manila shows it (its upstream API tests
  compare it): a security service is visible to its own project and to
  admins only, and it is the credential a share server would join the
  domain with, which its project gave.
"""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.db.models import SecurityService

STATUS = "new"


def summary(ss: SecurityService, ctx: ViewContext) -> dict:
    return {"id": ss.id, "name": ss.name, "type": ss.type, "status": STATUS}


def detail(ss: SecurityService, ctx: ViewContext, share_networks: list[str] | None = None) -> dict:
    view = summary(ss, ctx)
    view.update({
        "created_at": timestamp(ss.created_at),
        "updated_at": timestamp(ss.updated_at),
        "description": ss.description,
        "dns_ip": ss.dns_ip,
        "server": ss.server,
        "domain": ss.domain,
        "user": ss.user,
        "password": ss.password,
        "project_id": ss.project_id,
    })
    if ctx.at_least("2.44"):
        view["ou"] = ss.ou
    if ctx.at_least("2.76"):
        view["default_ad_site"] = ss.default_ad_site
    if share_networks is not None:
        view["share_networks"] = share_networks
    return view


def update_check(params: dict, compatible: bool, hosts: dict, ctx: ViewContext) -> dict:
    """manila's ``build_security_service_update_check`` (2.63 check actions)."""
    view = {
        "compatible": compatible,
        "requested_operation": {
            "operation": "update_security_service" if params.get("current_service_id") else "add_security_service",
            "current_security_service": params.get("current_service_id"),
            "new_security_service": params.get("new_service_id") or params.get("security_service_id"),
        },
    }
    if ctx.is_admin:
        view["hosts_check_result"] = hosts
    return view
