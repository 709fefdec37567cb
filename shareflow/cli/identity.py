"""``shareflow identity user|project|role|app-credential|rotate-keys``: the
built-in identity's users, projects, role assignments and application
credentials, and its Fernet keys.

Runs through the same service the ``/identity`` routes use, directly on the
database (like ``shareflow network``). Secrets (a generated password, an
application credential's secret) are printed once, on stdout alone, so
``S=$(shareflow identity app-credential create ...)`` works; only their
argon2 hashes are kept.

    shareflow identity project create demo
    shareflow identity user create alice --project demo --role member
    shareflow identity app-credential create ci --user alice --project demo --role reader
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from shareflow.cli import output
from shareflow.cli.options import admin_database, subcommand
from shareflow.exceptions import InvalidInput
from shareflow.identity.keys import KeyRepository
from shareflow.services.identity import IdentityService
from shareflow.wiring import utcnow

PASSWORD_BYTES = 18


def register(subparsers) -> None:
    parser = subparsers.add_parser("identity", help="the built-in identity: users, projects, roles, "
                                   "application credentials, keys")
    kinds = parser.add_subparsers(dest="identity_kind", required=True)

    users = kinds.add_parser("user", help="users").add_subparsers(dest="user_command", required=True)
    create = subcommand(users, "create", cmd_user_create, help="create a user (prints a generated password)")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--password", default=None, help="its password (default: generated and printed)")
    create.add_argument("--project", default=None, help="give it --role on this project")
    create.add_argument("--role", default="member", help="role on --project (default member)")
    _list_show_delete(users, USERS, "list users", "show a user (by id or name)",
                      "delete a user (its tokens stop working)")
    password = subcommand(users, "set-password", cmd_user_set_password,
                          help="set a user's password (prints a generated one) and lift its lock-out")
    password.add_argument("user", metavar="USER")
    password.add_argument("--password", default=None, help="the new password (default: generated and printed)")

    projects = kinds.add_parser("project", help="projects").add_subparsers(dest="project_command", required=True)
    create = subcommand(projects, "create", cmd_project_create, help="create a project")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--description", default=None)
    _list_show_delete(projects, PROJECTS, "list projects", "show a project (by id or name)",
                      "delete a project (not its shares)")

    roles = kinds.add_parser("role", help="roles and role assignments").add_subparsers(
        dest="role_command", required=True)
    subcommand(roles, "list", cmd_role_list, help="list roles (admin, member, reader)")
    for name, func, help_text in (("add", cmd_role_add, "give a user a role on a project"),
                                  ("remove", cmd_role_remove, "take a user's role on a project away")):
        cmd = subcommand(roles, name, func, help=help_text)
        cmd.add_argument("role", metavar="ROLE")
        cmd.add_argument("--user", required=True)
        cmd.add_argument("--project", required=True)
    assignments = subcommand(roles, "assignments", cmd_role_assignments, help="list role assignments")
    assignments.add_argument("--user", default=None)
    assignments.add_argument("--project", default=None)

    creds = kinds.add_parser("app-credential", help="application credentials").add_subparsers(
        dest="app_credential_command", required=True)
    create = subcommand(creds, "create", cmd_cred_create,
                        help="create an application credential (prints its secret, once)")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--user", required=True)
    create.add_argument("--project", required=True)
    create.add_argument("--role", dest="roles", action="append", default=None,
                        help="a role it delegates (repeatable; default: all the user's roles on the project)")
    create.add_argument("--expires", default=None, help="expiry, ISO 8601 UTC (default: never)")
    create.add_argument("--secret", default=None, help="its secret (default: generated)")
    create.add_argument("--description", default=None)
    listing = _list_show_delete(creds, CREDENTIALS, "list application credentials",
                                "show an application credential (by id)", "delete an application credential")
    listing.add_argument("--user", default=None)

    subcommand(kinds, "rotate-keys", cmd_rotate_keys,
               help="add a new primary Fernet key; the oldest beyond identity.max_active_keys goes")


def _run(args, action):
    with admin_database(args) as (config, db):
        return action(IdentityService(config.identity, db, clock=utcnow))


def _print(args, rows: list[dict], columns: list[str]) -> None:
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return
    table = output.table(*(c.upper() for c in columns))
    for row in rows:
        table.add_row(*("-" if row.get(c) is None else str(row.get(c)) for c in columns))
    output.console().print(table)


def _print_one(args, row: dict) -> None:
    if args.json:
        print(json.dumps(row, indent=2, default=str))
        return
    width = max(len(k) for k in row)
    for key, value in row.items():
        print(f"{key.ljust(width)}  {'-' if value is None else value}")


def _secret(value: str | None) -> tuple[str, bool]:
    return (value, False) if value else (secrets.token_urlsafe(PASSWORD_BYTES), True)


def _user(u) -> dict:
    return {"id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
            "failed_attempts": u.failed_attempts, "locked_until": u.locked_until,
            "created_at": u.created_at}


def _project(p) -> dict:
    return {"id": p.id, "name": p.name, "domain_id": p.domain_id, "description": p.description,
            "enabled": p.enabled, "created_at": p.created_at}


def _cred(c) -> dict:
    return {"id": c.id, "name": c.name, "user_id": c.user_id, "project_id": c.project_id,
            "roles": c.roles, "expires_at": c.expires_at, "description": c.description,
            "created_at": c.created_at}


def _shown_user(svc: IdentityService, ref: str) -> dict:
    user = svc.user(ref)
    data = _user(user)
    data["roles"] = ", ".join(f"{r.name}@{p.name}" for _u, p, r in svc.assignments(user_ref=user.id))
    return data


@dataclass(frozen=True)
class _Kind:
    """Users, projects and application credentials are listed, shown and
    deleted alike: ``rows(svc, args)`` listed in ``columns`` of ``view``,
    ``show(svc, ref)`` the shown fields, ``delete(svc, ref)`` the deleted
    row (named in the message with ``noun``); ``ref`` names the argument."""

    noun: str
    ref: str
    metavar: str
    view: Callable[[object], dict]
    columns: list[str]
    rows: Callable[[IdentityService, object], list]
    show: Callable[[IdentityService, str], dict]
    delete: Callable[[IdentityService, str], object]


USERS = _Kind("user", "user", "USER", _user, ["id", "name", "enabled", "failed_attempts", "locked_until"],
              lambda svc, args: svc.users(), _shown_user, lambda svc, ref: svc.delete_user(ref))
PROJECTS = _Kind("project", "project", "PROJECT", _project, ["id", "name", "enabled", "description"],
                 lambda svc, args: svc.projects(), lambda svc, ref: _project(svc.project(ref)),
                 lambda svc, ref: svc.delete_project(ref))
CREDENTIALS = _Kind("application credential", "credential", "ID", _cred,
                    ["id", "name", "user_id", "project_id", "roles", "expires_at"],
                    lambda svc, args: svc.app_credentials(args.user), lambda svc, ref: _cred(svc.app_credential(ref)),
                    lambda svc, ref: svc.delete_app_credential(ref))


def _list_show_delete(commands, kind: _Kind, list_help: str, show_help: str, delete_help: str):
    """The kind's ``list``, ``show REF`` and ``delete REF``; returns the list's parser."""

    def list_(args) -> int:
        _print(args, [kind.view(row) for row in _run(args, lambda svc: kind.rows(svc, args))], kind.columns)
        return 0

    def show(args) -> int:
        _print_one(args, _run(args, lambda svc: kind.show(svc, getattr(args, kind.ref))))
        return 0

    def delete(args) -> int:
        row = _run(args, lambda svc: kind.delete(svc, getattr(args, kind.ref)))
        print(f"deleted {kind.noun} {row.name} ({row.id})")
        return 0

    listing = subcommand(commands, "list", list_, help=list_help)
    for name, func, help_text in (("show", show, show_help), ("delete", delete, delete_help)):
        subcommand(commands, name, func, help=help_text).add_argument(kind.ref, metavar=kind.metavar)
    return listing


def cmd_user_create(args) -> int:
    password, generated = _secret(args.password)

    def create(svc: IdentityService):
        user = svc.create_user(args.name, password)
        if args.project:
            try:
                svc.add_role(user.id, args.project, args.role)
            except Exception:
                svc.delete_user(user.id)  # all or nothing
                raise
        return user

    user = _run(args, create)
    if generated:
        print(password)
        sys.stdout.flush()
    print(f"created user {user.name} ({user.id})"
          + (f" with role {args.role} on project {args.project}" if args.project else "")
          + ("; its password is shown only once" if generated else ""), file=sys.stderr)
    return 0


def cmd_user_set_password(args) -> int:
    password, generated = _secret(args.password)
    user = _run(args, lambda svc: svc.update_user(args.user, password=password))
    if generated:
        print(password)
        sys.stdout.flush()
    print(f"password of user {user.name} set", file=sys.stderr)
    return 0


def cmd_project_create(args) -> int:
    project = _run(args, lambda svc: svc.create_project(args.name, description=args.description))
    print(f"created project {project.name} ({project.id})")
    return 0


def cmd_role_list(args) -> int:
    _print(args, [{"id": r.id, "name": r.name} for r in _run(args, lambda svc: svc.roles())], ["id", "name"])
    return 0


def cmd_role_add(args) -> int:
    _run(args, lambda svc: svc.add_role(args.user, args.project, args.role))
    print(f"user {args.user} has role {args.role} on project {args.project}")
    return 0


def cmd_role_remove(args) -> int:
    _run(args, lambda svc: svc.remove_role(args.user, args.project, args.role))
    print(f"user {args.user} no longer has role {args.role} on project {args.project}")
    return 0


def cmd_role_assignments(args) -> int:
    rows = _run(args, lambda svc: svc.assignments(user_ref=args.user, project_ref=args.project))
    _print(args, [{"user": u.name, "user_id": u.id, "project": p.name, "project_id": p.id, "role": r.name}
                  for u, p, r in rows], ["user", "project", "role", "user_id", "project_id"])
    return 0


def _expiry(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"--expires {value!r} is not an ISO 8601 time") from None
    # Stored as naive UTC; a time without a zone is taken as UTC.
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def cmd_cred_create(args) -> int:
    expires = _expiry(args.expires)
    credential, secret = _run(args, lambda svc: svc.create_app_credential(
        args.user, args.project, args.name, roles=args.roles, expires_at=expires,
        description=args.description, secret=args.secret))
    print(secret)
    sys.stdout.flush()
    print(f"created application credential {credential.name}: id {credential.id}, roles {credential.roles} "
          "(the secret is shown only once)", file=sys.stderr)
    return 0


def cmd_rotate_keys(args) -> int:
    with admin_database(args) as (config, _db):
        keys = KeyRepository(config.identity.key_repository, config.identity.max_active_keys)
        new = keys.rotate()
        print(f"key {new} is the primary key; keys in {keys.path}: {', '.join(map(str, keys.keys()))}")
    return 0
