"""Who may do what: Manila's default policy for the routes shareflow has, in one table.

Pure data and one function, :func:`enforce`; no I/O. The rule names are
Manila's (``manila/policies/*.py``), so an operator reading Manila's policy
reference knows what each one means here; shareflow's own extensions (jobs,
provider networks) follow the same personas under their own names.

Manila's personas (``manila/policies/base.py``), which shareflow keeps:

* ``ADMIN`` (``rule:context_is_admin`` = ``role:admin``): any project, anything;
* ``ADMIN_OR_PROJECT_MEMBER``: admin, or ``role:member`` on the resource's project;
* ``ADMIN_OR_PROJECT_READER``: admin, or ``role:reader`` on the resource's project.

Roles are compared case-insensitively (oslo.policy's ``RoleCheck``). Keystone's
default implied roles are applied (``admin`` implies ``member`` implies
``reader``), as a Keystone token lists them, so a static ``admin`` token is also a
member and a reader. ``_member_`` is not ``member``: Manila does not map it.

Which project a rule is checked against (the *target*): the resource's own
project for a resource that exists (an update of another project's public
share is refused), the caller's project for creating and listing, as Manila's
``policy.check_policy(context, ..., target=None)`` defaults it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from shareflow.exceptions import Forbidden

ADMIN_ROLE = "admin"
MEMBER_ROLE = "member"
READER_ROLE = "reader"
#: Keystone's default role inference (``keystone-manage bootstrap``): a token
#: carries the implied roles, so shareflow's own tokens are read the same way.
IMPLIED = {ADMIN_ROLE: (MEMBER_ROLE, READER_ROLE), MEMBER_ROLE: (READER_ROLE,)}

#: What Manila's ``PolicyNotAuthorized`` says.
MESSAGE = "Policy doesn't allow {rule} to be performed."


def effective_roles(roles: Iterable[str]) -> tuple[str, ...]:
    """Lower-cased roles plus the ones they imply, in a stable order."""
    out: list[str] = []
    for role in roles:
        for name in (role.lower(), *IMPLIED.get(role.lower(), ())):
            if name not in out:
                out.append(name)
    return tuple(out)


class Credentials(Protocol):
    """What a check reads of the caller (:class:`shareflow.services.context.Caller`)."""

    project_id: str
    user_id: str | None
    roles: tuple[str, ...]


# --- checks -------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """``role`` on the target's project, or the admin role anywhere.
    ``role=None``: admin only. ``anyone``: every authenticated caller (oslo's
    ``@``, for the routes Manila does not police: limits, extensions)."""

    role: str | None
    anyone: bool = False

    def allows(self, roles: tuple[str, ...], project_id: str, target_project: str) -> bool:
        if self.anyone or ADMIN_ROLE in roles:
            return True
        return self.role is not None and self.role in roles and project_id == target_project

    def __str__(self) -> str:
        if self.anyone:
            return "@"
        if self.role is None:
            return "rule:context_is_admin"
        return f"(rule:context_is_admin) or (rule:project-{self.role})"


ADMIN = Check(role=None)
ADMIN_OR_PROJECT_MEMBER = Check(role=MEMBER_ROLE)
ADMIN_OR_PROJECT_READER = Check(role=READER_ROLE)
ANYONE = Check(role=None, anyone=True)

# --- the rules ----------------------------------------------------------------------

_A, _M, _R = ADMIN, ADMIN_OR_PROJECT_MEMBER, ADMIN_OR_PROJECT_READER

#: Manila's defaults, for the rules behind shareflow's routes.
RULES: Mapping[str, Check] = {
    # manila/policies/shares.py
    "share:create": _M,
    "share:create_public_share": _A,
    "share:get": _R,
    "share:get_all": _R,
    "share:update": _M,
    "share:set_public_share": _A,
    "share:delete": _M,
    "share:force_delete": _A,
    "share:list_by_host": _A,
    "share:list_all_projects": _A,
    "share:access_get_all": _R,
    "share:extend": _M,
    "share:force_extend": _A,
    "share:shrink": _M,
    "share:migration_start": _A,
    "share:migration_complete": _A,
    "share:migration_cancel": _A,
    "share:migration_get_progress": _A,
    "share:reset_task_state": _A,
    "share:reset_status": _A,
    "share:revert_to_snapshot": _M,
    "share:allow_access": _M,
    "share:deny_access": _M,
    "share:update_share_metadata": _M,
    "share:delete_share_metadata": _M,
    "share:get_share_metadata": _R,
    "share:create_snapshot": _M,
    "share:delete_snapshot": _M,
    "share:snapshot_update": _M,
    # manila/policies/share_export_location.py
    "share_export_location:index": _R,
    "share_export_location:show": _R,
    # manila/policies/share_access.py, share_access_metadata.py
    "share_access_rule:get": _R,
    "share_access_rule:index": _R,
    "share_access_metadata:update": _M,
    "share_access_metadata:delete": _M,
    # manila/policies/share_snapshot.py
    "share_snapshot:get_snapshot": _R,
    "share_snapshot:get_all_snapshots": _R,
    "share_snapshot:list_all_projects": _A,
    "share_snapshot:force_delete": _A,
    "share_snapshot:reset_status": _A,
    # manila/policies/share_instance.py, share_instance_export_location.py
    "share_instance:index": _A,
    "share_instance:show": _A,
    "share_instance:force_delete": _A,
    "share_instance:reset_status": _A,
    "share_instance_export_location:index": _A,
    "share_instance_export_location:show": _A,
    # manila/policies/share_snapshot_instance.py
    "share_snapshot_instance:index": _A,
    "share_snapshot_instance:detail": _A,
    "share_snapshot_instance:show": _A,
    "share_snapshot_instance:reset_status": _A,
    # manila/policies/share_replica.py (nothing is replicated: the lists are empty)
    "share_replica:get_all": _R,
    "share_replica:show": _R,
    # manila/policies/share_type.py, share_types_extra_spec.py
    "share_type:create": _A,
    "share_type:update": _A,
    "share_type:show": _R,
    "share_type:index": _R,
    "share_type:default": _R,
    "share_type:delete": _A,
    "share_type:list_project_access": _A,
    "share_type:add_project_access": _A,
    "share_type:remove_project_access": _A,
    "share_types_extra_spec:create": _A,
    "share_types_extra_spec:show": _A,
    "share_types_extra_spec:index": _A,
    "share_types_extra_spec:update": _A,
    "share_types_extra_spec:delete": _A,
    # manila/policies/share_network.py, share_network_subnet.py
    "share_network:create": _M,
    "share_network:show": _R,
    "share_network:index": _R,
    "share_network:detail": _R,
    "share_network:update": _M,
    "share_network:delete": _M,
    "share_network:add_security_service": _M,
    "share_network:add_security_service_check": _M,
    "share_network:remove_security_service": _M,
    "share_network:update_security_service": _M,
    "share_network:update_security_service_check": _M,
    "share_network:get_all_share_networks": _A,
    "share_network_subnet:create": _M,
    "share_network_subnet:delete": _M,
    "share_network_subnet:show": _R,
    "share_network_subnet:index": _R,
    # manila/policies/security_service.py
    "security_service:create": _M,
    "security_service:show": _R,
    "security_service:detail": _R,
    "security_service:index": _R,
    "security_service:update": _M,
    "security_service:delete": _M,
    "security_service:get_all_security_services": _A,
    # manila/policies/share_server.py
    "share_server:index": _A,
    "share_server:show": _A,
    "share_server:details": _A,
    "share_server:delete": _A,
    "share_server:reset_status": _A,
    "share_server:share_server_reset_task_state": _A,
    # manila/policies/quota_set.py, message.py, availability_zone.py
    "quota_set:update": _A,
    "quota_set:show": _R,
    "quota_set:delete": _A,
    "message:get": _R,
    "message:get_all": _R,
    "message:delete": _M,
    "availability_zone:index": _R,
    # manila/policies/service.py, scheduler_stats.py
    "service:index": _A,
    "service:update": _A,
    "scheduler_stats:pools:index": _A,
    "scheduler_stats:pools:detail": _A,
    # Manila polices neither (any authenticated caller; versions need no token at all).
    "limits:index": ANYONE,
    "extension:index": ANYONE,
    "extension:show": ANYONE,
    "versions:index": ANYONE,
    # shareflow's own: jobs are read by their project and steered by admins...
    "job:index": _R,
    "job:show": _R,
    "job:resume": _A,
    "job:retry": _A,
    "job:cancel": _A,
    # ... and the provider networks that share networks name are the operator's.
    "provider_network:create": _A,
    # manila/policies/share_group_type.py, share_group_types_spec.py
    "share_group_type:create": _A,
    "share_group_type:index": _R,
    "share_group_type:show": _R,
    "share_group_type:default": _R,
    "share_group_type:delete": _A,
    "share_group_type:list_project_access": _A,
    "share_group_type:add_project_access": _A,
    "share_group_type:remove_project_access": _A,
    "share_group_types_spec:create": _A,
    "share_group_types_spec:index": _A,
    "share_group_types_spec:show": _A,
    "share_group_types_spec:update": _A,
    "share_group_types_spec:delete": _A,
    # manila/policies/share_group.py, share_group_snapshot.py
    "share_group:create": _M,
    "share_group:get": _R,
    "share_group:get_all": _R,
    "share_group:update": _M,
    "share_group:delete": _M,
    "share_group:force_delete": _A,
    "share_group:reset_status": _A,
    "share_group_snapshot:create": _M,
    "share_group_snapshot:get": _R,
    "share_group_snapshot:get_all": _R,
    "share_group_snapshot:update": _M,
    "share_group_snapshot:delete": _M,
    "share_group_snapshot:force_delete": _A,
    "share_group_snapshot:reset_status": _A,
    "provider_network:index": _A,
    "provider_network:show": _A,
    "provider_network:delete": _A,
}


class UnknownRule(LookupError):
    """A programming error: code names a rule the table does not have."""


def check_of(rule: str) -> Check:
    try:
        return RULES[rule]
    except KeyError:
        raise UnknownRule(f"no policy rule {rule!r}") from None


def _target_project(caller: Credentials, target: Any) -> str:
    """The project a rule is checked against: a project id, a mapping or an
    object with ``project_id`` (a row), or the caller's own by default."""
    if target is None:
        return caller.project_id
    if isinstance(target, str):
        return target
    if isinstance(target, Mapping):
        return target["project_id"]
    return target.project_id


def authorize(caller: Credentials, rule: str, target: Any = None) -> bool:
    return check_of(rule).allows(caller.roles, caller.project_id, _target_project(caller, target))


def enforce(caller: Credentials, rule: str, target: Any = None, *, message: str | None = None) -> None:
    """Raise :class:`~shareflow.exceptions.Forbidden` unless ``caller`` may
    ``rule`` on ``target``. ``message``: the 403's text where Manila's code
    answers something other than ``PolicyNotAuthorized`` for this check."""
    if not authorize(caller, rule, target):
        roles = ",".join(caller.roles) or "no roles"
        raise Forbidden(f"{rule} refused to {caller.user_id} of {caller.project_id} ({roles})",
                        user_message=message or MESSAGE.format(rule=rule))
