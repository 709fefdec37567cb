"""Security services (Manila's ``/security-services``) and their association
with share networks (the share network actions ``add_security_service``,
``remove_security_service`` and 2.63's ``update_security_service`` with its
two checks), with Manila's rules and codes (manila/api/v2/security_service.py,
share_networks.py and ``share.api._share_network_update_initial_checks``).

They are stored and shown only: shareflow's share servers do not join LDAP,
Kerberos or Active Directory domains, so a share network that has one gets no
share server (:mod:`shareflow.services.share_server_manager` refuses it), and
its ``security_service_update_support`` is false: while a share network has
share servers, its security services cannot change.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shareflow import policy
from shareflow.db import networks as networks_db
from shareflow.db import security_services as ss_db
from shareflow.db.engine import Database
from shareflow.db.models import SecurityService, ShareNetwork
from shareflow.domain import validation
from shareflow.exceptions import Conflict, Forbidden, InvalidInput, NotFound
from shareflow.services.context import Caller

TYPES = ("active_directory", "ldap", "kerberos")
#: Fields a request may set (``default_ad_site`` only from 2.76, above this service's maximum).
FIELDS = ("type", "name", "description", "dns_ip", "ou", "server", "domain", "user", "password")
#: What may change while share servers use a share network the service is added to.
UPDATABLE_IN_USE = ("name", "description")
AD_SITE_VERSION = "2.76"
MALFORMED = "Malformed request body"
#: What a share that needs a share server on such a share network is told.
NOT_SUPPORTED_BY_SERVERS = (
    "Security services ({types}) are not supported by this deployment's share servers: share "
    "network {sn} has one, so no share server can be created for it. Remove the security "
    "service from the share network or use another share network."
)


@dataclass(frozen=True)
class CheckResult:
    """What the 2.63 ``*_check`` actions answer."""

    compatible: bool
    hosts_check_result: dict


def _values(values: Any, *, creating: bool, version_at_least: Callable[[str], bool],
            current_type: str | None = None) -> dict:
    """The fields of a create or update body, each a string (or null) of at
    most 255 characters; ``default_ad_site`` only from 2.76, and for Active
    Directory not with ``server`` as well (Manila's rules)."""
    if values.get("default_ad_site") and not version_at_least(AD_SITE_VERSION):
        raise InvalidInput('"default_ad_site" is only supported from API version 2.76.')
    if creating or "type" in values:
        kind = values.get("type")
        if kind not in TYPES:
            raise InvalidInput(f"Invalid type {kind} specified for security service. Valid types are "
                               + ",".join(TYPES))
    kind = values.get("type", current_type)
    if kind == "active_directory" and values.get("server") and values.get("default_ad_site"):
        raise InvalidInput("Cannot create security service because both server and 'default_ad_site' were "
                           "provided. Specify either server or 'default_ad_site'.")
    keys = FIELDS + (("default_ad_site",) if version_at_least(AD_SITE_VERSION) else ())
    out = {}
    for key in keys:
        if key in values and key != "type":
            limit = 64 if key == "dns_ip" else 255
            out[key] = validation.optional_text(values[key], f"Security service {key}", limit)
    if "type" in values:
        out["type"] = values["type"]
    return out


class SecurityServiceService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())):
        self._db = db
        self._clock = clock
        self._new_id = new_id

    # --- the security services ------------------------------------------------------

    @staticmethod
    def _visible(caller: Caller, row: SecurityService, action: str) -> SecurityService:
        # Manila finds any project's by id, then its owner-or-admin policy says 403.
        policy.enforce(caller, f"security_service:{action}", target=row)
        return row

    def get(self, caller: Caller, security_service_id: Any) -> tuple[SecurityService, list[str]]:
        """The security service and the ids of the share networks it is added to."""
        with self._db.read() as s:
            row = self._visible(caller, ss_db.get(s, security_service_id), "show")
            return row, ss_db.share_networks_of(s, row.id)

    def list(self, caller: Caller, *, all_projects: bool = False,
             share_network_id: str | None = None) -> list[SecurityService]:
        """The caller's project's; every project's for an admin asking
        ``all_tenants``; or those added to one share network the caller sees."""
        with self._db.read() as s:
            if share_network_id is not None:
                sn = networks_db.get_share_network(s, share_network_id, caller.scope)
                return ss_db.of_share_network(s, sn.id)
            everyone = all_projects and policy.authorize(caller, "security_service:get_all_security_services")
            project = None if everyone else caller.project_id
            return ss_db.list_all(s, project)

    def share_networks(self, ids: list[str]) -> dict[str, list[str]]:
        with self._db.read() as s:
            return ss_db.share_networks_by_service(s, ids)

    def create(self, caller: Caller, values: Any, *, version_at_least: Callable[[str], bool]) -> SecurityService:
        fields = _values(values, creating=True, version_at_least=version_at_least)
        with self._db.write() as s:
            return ss_db.create(s, id=self._new_id(), project_id=caller.project_id, created_at=self._clock(),
                                **fields)

    def update(self, caller: Caller, security_service_id: Any, values: Any, *,
               version_at_least: Callable[[str], bool]) -> tuple[SecurityService, list[str]]:
        with self._db.write() as s:
            row = self._visible(caller, ss_db.get(s, security_service_id), "update")
            if ss_db.has_share_servers(s, row.id) and any(k not in UPDATABLE_IN_USE for k in values):
                raise Forbidden(
                    f"Cannot update security service {row.id}. It is attached to share network with "
                    "share server associated. Only 'name' and 'description' fields are available for update."
                )
            fields = _values(values, creating=False, version_at_least=version_at_least, current_type=row.type)
            ss_db.update(s, row, now=self._clock(), **fields)
            return row, ss_db.share_networks_of(s, row.id)

    def delete(self, caller: Caller, security_service_id: Any) -> None:
        with self._db.write() as s:
            row = ss_db.get(s, security_service_id)
            if ss_db.share_networks_of(s, row.id):
                raise Forbidden("Cannot delete security service. It is assigned to share network(s)")
            self._visible(caller, row, "delete")
            ss_db.delete(s, row.id, now=self._clock())

    # --- on share networks ----------------------------------------------------------

    @staticmethod
    def _id(data: Any, key: str, message: str = MALFORMED) -> str:
        if not isinstance(data, dict) or key not in data:
            raise InvalidInput(message)
        return data[key]

    @staticmethod
    def _scoped(session, caller: Caller, ref: Any) -> SecurityService:
        row = ss_db.get(session, ref)
        if caller.scope is not None and row.project_id != caller.scope:
            raise ss_db.not_found(ref)
        return row

    @staticmethod
    def _servers(session, sn: ShareNetwork) -> int:
        return networks_db.share_network_usage(session, sn.id)[1]

    def _initial_checks(self, session, sn: ShareNetwork, new: SecurityService,
                        current: SecurityService | None = None) -> None:
        """Manila's ``_share_network_update_initial_checks``: one security
        service per type (409), the one replaced must be there and of the same
        type (409), and none may change while share servers exist (400: no
        ``security_service_update_support`` here)."""
        if current is None:
            for attached in ss_db.of_share_network(session, sn.id):
                if attached.type == new.type:
                    raise Conflict(
                        "Cannot add security service to share network. Security service with "
                        f"'{new.type}' type already added to '{sn.id}' share network"
                    )
        else:
            if not ss_db.associated(session, sn.id, current.id):
                raise Conflict(f"The specified current security service {current.id} is not associated "
                               f"to the share network {sn.id}.")
            if current.type != new.type:
                raise Conflict(
                    "A security service can only be replaced by one of the same type. The current "
                    f"security service type is '{current.type}' and the new security service type is "
                    f"'{new.type}'"
                )
        if self._servers(session, sn):
            raise InvalidInput(
                f"Updating security services is not supported on this share network ({sn.id}) while it "
                "has shares. See the capability 'security_service_update_support'."
            )

    def _locked_network(self, session, caller: Caller, share_network_id: Any) -> ShareNetwork:
        sn = networks_db.get_share_network(session, share_network_id, caller.scope)
        if not networks_db.lock_share_network(session, sn.id):
            raise networks_db.share_network_not_found(share_network_id)
        return sn

    def add(self, caller: Caller, share_network_id: Any, data: Any, *, in_use_allowed: bool) -> None:
        """``add_security_service``: before 2.63 refused (403) while the share
        network has share servers; from 2.63 the initial checks decide (400)."""
        with self._db.write() as s:
            sn = self._locked_network(s, caller, share_network_id)
            ss = self._scoped(s, caller, self._id(data, "security_service_id"))
            if self._servers(s, sn) and not in_use_allowed:
                raise Forbidden("Cannot add security services. Share network is used.")
            self._initial_checks(s, sn, ss)
            if ss_db.associated(s, sn.id, ss.id):
                raise InvalidInput(f"Failed to associate share network {sn.id} and security service "
                                   f"{ss.id}: Already associated.")
            ss_db.associate(s, sn.id, ss.id, now=self._clock())

    def remove(self, caller: Caller, share_network_id: Any, data: Any) -> None:
        with self._db.write() as s:
            sn = self._locked_network(s, caller, share_network_id)
            if self._servers(s, sn):
                raise Forbidden("Cannot remove security services. Share network is used.")
            ss = self._scoped(s, caller, self._id(data, "security_service_id"))
            if not ss_db.dissociate(s, sn.id, ss.id):
                raise InvalidInput(f"Failed to dissociate share network {sn.id} and security service "
                                   f"{ss.id}: No association defined.")

    def _pair(self, session, caller: Caller, data: Any) -> tuple[SecurityService, SecurityService]:
        current_ref = self._id(data, "current_service_id", MALFORMED + ".")
        new_ref = self._id(data, "new_service_id", MALFORMED + ".")
        try:
            return self._scoped(session, caller, current_ref), self._scoped(session, caller, new_ref)
        except NotFound:
            raise InvalidInput("The current security service or the new security service doesn't exist.") from None

    def replace(self, caller: Caller, share_network_id: Any, data: Any) -> None:
        """2.63 ``update_security_service``."""
        with self._db.write() as s:
            sn = self._locked_network(s, caller, share_network_id)
            current, new = self._pair(s, caller, data)
            self._initial_checks(s, sn, new, current)
            if current.id != new.id:
                ss_db.replace(s, sn.id, current.id, new.id, now=self._clock())

    def check_replace(self, caller: Caller, share_network_id: Any, data: Any) -> CheckResult:
        with self._db.read() as s:
            sn = networks_db.get_share_network(s, share_network_id, caller.scope)
            current, new = self._pair(s, caller, data)
            self._initial_checks(s, sn, new, current)
        return CheckResult(compatible=True, hosts_check_result={})

    def check_add(self, caller: Caller, share_network_id: Any, data: Any) -> CheckResult:
        with self._db.read() as s:
            sn = networks_db.get_share_network(s, share_network_id, caller.scope)
            ref = self._id(data, "security_service_id", MALFORMED + ".")
            try:
                ss = self._scoped(s, caller, ref)
            except NotFound:
                raise InvalidInput(f"Security service {ref} doesn't exist.") from None
            self._initial_checks(s, sn, ss)
        return CheckResult(compatible=True, hosts_check_result={})


def refusal(session, share_network_id: str) -> str | None:
    """Why no share server can be made on the share network (a user message),
    or None: it has security services, which these share servers cannot use."""
    types = ss_db.network_has_security_services(session, share_network_id)
    if not types:
        return None
    return NOT_SUPPORTED_BY_SERVERS.format(types=", ".join(types), sn=share_network_id)
