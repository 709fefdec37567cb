"""The built-in identity's bodies, in Keystone v3's shapes: version
discovery, tokens with their catalog, users, projects, roles, application
credentials, errors."""

from __future__ import annotations

import uuid
from datetime import datetime

from shareflow.config import IdentityConfig
from shareflow.services.identity import DOMAIN_ID, DOMAIN_NAME, TokenInfo

IDENTITY_PATH = "/identity"
#: The newest Keystone v3 minor version whose routes shareflow's subset follows.
VERSION_ID = "v3.14"
VERSION_UPDATED = "2020-04-07T00:00:00Z"
MEDIA_TYPE = "application/vnd.openstack.identity-v3+json"
INTERFACES = ("public", "internal", "admin")
#: Where clients look for the share service: openstacksdk and the
#: service-types authority name it ``shared-file-system``, manilaclient and
#: gophercloud ``sharev2``; Manila's deployments register both.
SHARE_SERVICES = (("sharev2", "manilav2"), ("shared-file-system", "manila"))
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 413: "Request Entity Too Large",
          415: "Unsupported Media Type", 500: "Internal Server Error", 503: "Service Unavailable"}
DOMAIN = {"id": DOMAIN_ID, "name": DOMAIN_NAME}


def timestamp(moment: datetime | None) -> str | None:
    """Keystone's ``2015-11-05T22:00:11.000000Z`` (gophercloud parses it with or without the fraction)."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def error(status: int, message: str) -> dict:
    return {"error": {"code": status, "message": message, "title": TITLES.get(status, "Error")}}


def version(identity_url: str) -> dict:
    return {
        "id": VERSION_ID, "status": "stable", "updated": VERSION_UPDATED,
        "links": [{"rel": "self", "href": identity_url + "/v3/"}],
        "media-types": [{"base": "application/json", "type": MEDIA_TYPE}],
    }


def versions(identity_url: str) -> dict:
    return {"versions": {"values": [version(identity_url)]}}


def _endpoint_id(service_type: str, interface: str) -> str:
    # Stable across workers and restarts (clients may cache the catalog).
    return uuid.uuid5(uuid.NAMESPACE_URL, f"shareflow:{service_type}:{interface}").hex


def catalog(config: IdentityConfig, api_url: str) -> list[dict]:
    urls = {"public": config.public_url or api_url, "internal": config.internal_url or api_url,
            "admin": config.admin_url or api_url}
    services = [("identity", "keystone", {i: api_url + IDENTITY_PATH for i in INTERFACES})]
    services += [(kind, name, {i: urls[i] + "/v2" for i in INTERFACES}) for kind, name in SHARE_SERVICES]
    return [
        {"type": kind, "name": name, "id": _endpoint_id(kind, "service"),
         "endpoints": [{"id": _endpoint_id(kind, i), "interface": i, "region": config.region,
                        "region_id": config.region, "url": by_interface[i]} for i in INTERFACES]}
        for kind, name, by_interface in services
    ]


def token(info: TokenInfo, config: IdentityConfig, api_url: str, *, with_catalog: bool = True) -> dict:
    p = info.payload
    body = {
        "methods": list(p.methods),
        "user": {"id": info.user.id, "name": info.user.name, "domain": DOMAIN, "password_expires_at": None},
        "audit_ids": [p.audit_id],
        "expires_at": timestamp(p.expires_at),
        "issued_at": timestamp(p.issued_at),
    }
    if info.project is not None:
        body["project"] = {"id": info.project.id, "name": info.project.name, "domain": DOMAIN}
        body["is_domain"] = False
        body["roles"] = [{"id": r.id, "name": r.name} for r in info.roles]
        if with_catalog:
            body["catalog"] = catalog(config, api_url)
    if info.app_credential is not None:
        body["application_credential"] = {"id": info.app_credential.id, "name": info.app_credential.name,
                                          "restricted": True}
    return {"token": body}


def _links(url: str) -> dict:
    return {"self": url}


def user(row, identity_url: str) -> dict:
    return {"id": row.id, "name": row.name, "domain_id": row.domain_id, "enabled": row.enabled,
            "password_expires_at": None, "options": {}, "links": _links(f"{identity_url}/v3/users/{row.id}")}


def project(row, identity_url: str) -> dict:
    return {"id": row.id, "name": row.name, "domain_id": row.domain_id, "description": row.description or "",
            "enabled": row.enabled, "is_domain": False, "parent_id": row.domain_id, "tags": [], "options": {},
            "links": _links(f"{identity_url}/v3/projects/{row.id}")}


def role(row, identity_url: str) -> dict:
    return {"id": row.id, "name": row.name, "domain_id": None, "description": None, "options": {},
            "links": _links(f"{identity_url}/v3/roles/{row.id}")}


def app_credential(row, roles: list, identity_url: str, secret: str | None = None) -> dict:
    body = {"id": row.id, "name": row.name, "description": row.description, "user_id": row.user_id,
            "project_id": row.project_id, "expires_at": timestamp(row.expires_at), "unrestricted": False,
            "access_rules": [], "roles": [{"id": r.id, "name": r.name, "domain_id": None} for r in roles],
            "links": _links(f"{identity_url}/v3/users/{row.user_id}/application_credentials/{row.id}")}
    if secret is not None:
        body["secret"] = secret
    return body
