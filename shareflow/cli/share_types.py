"""``shareflow type list | show | create | update | set | unset | delete |
access list|add|remove``: share types, their extra specs and the projects
that may use a private type, as an admin.

Runs through the same ``ShareTypeService`` the ``/v2/types`` API uses,
directly on the database (like ``shareflow network``): the same validation
(Manila's rules: ``driver_handles_share_servers`` required on create and a
boolean, spec keys and values checked, a type that live shares use cannot be
deleted), nothing written when it fails, errors on stderr and exit status 1.
The API reads types from the database on every request, so it sees a change
at once. Tables are drawn by ``rich``; ``--json`` prints a type as the API's
admin view does (latest microversion).

    shareflow type create fast --dhss false --spec snapshot_support=true \\
        --spec revert_to_snapshot_support=true --description "snapshots, reverts"
    shareflow type set fast capabilities:thin_provisioning="<is> True"
    shareflow type unset fast revert_to_snapshot_support
    shareflow type update fast --name faster --private
    shareflow type access add faster 4b1c0f2e9a5d4c7e8f00aa11bb22cc33
    shareflow type access list faster
    shareflow type delete faster
"""

from __future__ import annotations

import json

from rich.text import Text

from shareflow.auth.tokens import valid_id
from shareflow.cli import output
from shareflow.cli.options import admin_database, subcommand
from shareflow.db.models import ShareType
from shareflow.domain import validation
from shareflow.exceptions import InvalidInput
from shareflow.services.context import Caller
from shareflow.services.share_types import ShareTypeService
from shareflow.wiring import new_uuid, utcnow

OPERATOR = Caller(project_id="shareflow-cli", user_id="operator", is_admin=True)


def register(subparsers) -> None:
    parser = subparsers.add_parser("type", help="share types and their extra specs")
    commands = parser.add_subparsers(dest="type_command", required=True)

    subcommand(commands, "list", cmd_list, help="list share types, public and private")

    show = subcommand(commands, "show", cmd_show, help="show one share type (by name or id)")
    show.add_argument("type", metavar="NAME_OR_ID")

    create = subcommand(commands, "create", cmd_create, help="create a share type")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--dhss", metavar="BOOL", default=None,
                        help="driver_handles_share_servers (required, here or as --spec): true or false")
    create.add_argument("--spec", dest="specs", action="append", metavar="KEY=VALUE", default=[],
                        help="an extra spec (repeatable), e.g. snapshot_support=true")
    create.add_argument("--description", default=None, help="at most 255 characters")
    create.add_argument("--private", action="store_true",
                        help="only admins and the projects given access see and use it (default: public)")

    update = subcommand(commands, "update", cmd_update,
                        help="rename a share type, change its description or visibility")
    update.add_argument("type", metavar="NAME_OR_ID")
    update.add_argument("--name", default=None, help="the new name")
    update.add_argument("--description", default=None, help="the new description ('' clears it)")
    visibility = update.add_mutually_exclusive_group()
    visibility.add_argument("--public", dest="is_public", action="store_const", const=True, default=None,
                            help="every project sees and uses it")
    visibility.add_argument("--private", dest="is_public", action="store_const", const=False,
                            help="only admins and the projects on its access list")

    access = commands.add_parser("access", help="the projects that may use a private share type")
    access_commands = access.add_subparsers(dest="access_command", required=True)
    access_list = subcommand(access_commands, "list", cmd_access_list, help="projects with access")
    access_list.add_argument("type", metavar="NAME_OR_ID")
    for name, func, text in (("add", cmd_access_add, "let a project see and use a private share type"),
                             ("remove", cmd_access_remove, "take a project's access away")):
        parser_ = subcommand(access_commands, name, func, help=text)
        parser_.add_argument("type", metavar="NAME_OR_ID")
        parser_.add_argument("project", metavar="PROJECT_ID")

    set_ = subcommand(commands, "set", cmd_set, help="add or change extra specs of a share type")
    set_.add_argument("type", metavar="NAME_OR_ID")
    set_.add_argument("specs", metavar="KEY=VALUE", nargs="+")

    unset = subcommand(commands, "unset", cmd_unset, help="remove extra specs of a share type (all or none)")
    unset.add_argument("type", metavar="NAME_OR_ID")
    unset.add_argument("keys", metavar="KEY", nargs="+")

    delete = subcommand(commands, "delete", cmd_delete, help="delete a share type no live share uses")
    delete.add_argument("type", metavar="NAME_OR_ID")


def _run(args, action):
    with admin_database(args) as (config, db):
        return action(ShareTypeService(config, db, clock=utcnow, new_id=new_uuid), config)


def parse_specs(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` words into a dict; the value is everything after the
    first ``=`` (Manila's operators: ``capabilities:free_capacity_gb=>= 10``).
    Keys and values are validated by the service, as the API's are."""
    specs: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise InvalidInput(f"Invalid extra spec {pair!r}: expected KEY=VALUE.")
        if key in specs:
            raise InvalidInput(f"Extra spec {key!r} is given more than once.")
        specs[key] = value
    return specs


def as_dict(st: ShareType, default_share_type: str) -> dict:
    """The API's admin view of a type (``share_type`` at the latest microversion)."""
    specs = st.specs()
    return {
        "id": st.id, "name": st.name,
        "extra_specs": specs,
        "required_extra_specs": {validation.DHSS: specs[validation.DHSS]} if validation.DHSS in specs else {},
        "share_type_access:is_public": st.is_public,
        "description": st.description,
        "is_default": st.name == default_share_type,
    }




def _specs_text(specs: dict[str, str], sep: str) -> Text:
    # Text, not markup: a spec or description may hold '[' (rich markup).
    return Text(sep.join(f"{k}={v}" for k, v in sorted(specs.items())) or "-")


def _optional(data: dict) -> dict[str, str]:
    return {k: v for k, v in data["extra_specs"].items() if k not in data["required_extra_specs"]}


def _print_one(args, data: dict) -> None:
    if args.json:
        print(json.dumps(data, indent=2))
        return
    table = output.table("FIELD", "VALUE")
    for field, value in (
        ("id", Text(data["id"])), ("name", Text(data["name"])),
        ("visibility", Text("public" if data["share_type_access:is_public"] else "private")),
        ("is_default", Text(str(data["is_default"]).lower())),
        ("required_extra_specs", _specs_text(data["required_extra_specs"], "\n")),
        ("optional_extra_specs", _specs_text(_optional(data), "\n")),
        ("description", Text(data["description"] or "-")),
    ):
        table.add_row(field, value)
    output.console().print(table)


def cmd_list(args) -> int:
    types, default = _run(args, lambda svc, config: (svc.list(OPERATOR), config.default_share_type))
    views = [as_dict(st, default) for st in types]
    if args.json:
        print(json.dumps(views, indent=2))
        return 0
    table = output.table("ID", "NAME", "VISIBILITY", "DEFAULT", "REQUIRED SPECS", "OPTIONAL SPECS", "DESCRIPTION")
    for v in views:
        table.add_row(Text(v["id"]), Text(v["name"]),
                      "public" if v["share_type_access:is_public"] else "private",
                      "yes" if v["is_default"] else "-",
                      _specs_text(v["required_extra_specs"], ", "), _specs_text(_optional(v), ", "),
                      Text(v["description"] or "-"))
    output.console().print(table)
    return 0


def cmd_show(args) -> int:
    _print_one(args, _run(args, lambda svc, config: as_dict(svc.get(OPERATOR, args.type),
                                                            config.default_share_type)))
    return 0


def cmd_create(args) -> int:
    specs = parse_specs(args.specs)
    if args.dhss is not None:
        if validation.DHSS in specs:
            raise InvalidInput(f"Give {validation.DHSS} once: --dhss or --spec, not both.")
        specs = {validation.DHSS: args.dhss, **specs}

    def create(svc, config):
        st = svc.create(OPERATOR, name=args.name, extra_specs=specs, description=args.description,
                        is_public=not args.private)
        return as_dict(st, config.default_share_type)

    _print_one(args, _run(args, create))
    return 0


def cmd_set(args) -> int:
    specs = parse_specs(args.specs)

    def set_specs(svc, config):
        st = svc.get(OPERATOR, args.type)
        svc.set_extra_specs(OPERATOR, st.id, specs)
        return as_dict(svc.get(OPERATOR, st.id), config.default_share_type)

    _print_one(args, _run(args, set_specs))
    return 0


def cmd_unset(args) -> int:
    def unset(svc, config):
        st = svc.get(OPERATOR, args.type)
        svc.unset_extra_specs(OPERATOR, st.id, args.keys)
        return as_dict(svc.get(OPERATOR, st.id), config.default_share_type)

    _print_one(args, _run(args, unset))
    return 0


def cmd_delete(args) -> int:
    def delete(svc, config):
        st = svc.get(OPERATOR, args.type)
        svc.delete(OPERATOR, st.id)
        return as_dict(st, config.default_share_type)

    data = _run(args, delete)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"deleted share type {data['name']} ({data['id']})")
    return 0


def cmd_update(args) -> int:
    def update(svc, config):
        st = svc.get(OPERATOR, args.type)
        svc.update(OPERATOR, st.id, name=args.name, description=args.description, is_public=args.is_public)
        return as_dict(svc.get(OPERATOR, st.id), config.default_share_type)

    _print_one(args, _run(args, update))
    return 0


def _project(value: str) -> str:
    # The API's rule: an id shareflow can hold (tokens carry the same ids).
    try:
        return valid_id(value, "project")
    except InvalidInput:
        raise InvalidInput(f"Bad project format: project is not in proper format ({value})") from None


def cmd_access_list(args) -> int:
    def projects(svc, config):
        st = svc.get(OPERATOR, args.type)
        return st.id, svc.access.projects(OPERATOR, st.id)

    type_id, projects = _run(args, projects)
    if args.json:
        print(json.dumps([{"share_type_id": type_id, "project_id": p} for p in projects], indent=2))
        return 0
    table = output.table("PROJECT")
    for project in projects:
        table.add_row(Text(project))
    output.console().print(table)
    return 0


def _change_access(args, add: bool) -> int:
    project = _project(args.project)

    def change(svc, config):
        st = svc.get(OPERATOR, args.type)
        (svc.access.add if add else svc.access.remove)(OPERATOR, st.id, project)
        return st

    st = _run(args, change)
    verb = "may now use" if add else "may no longer use"
    print(f"project {project} {verb} share type {st.name} ({st.id})")
    return 0


def cmd_access_add(args) -> int:
    return _change_access(args, add=True)


def cmd_access_remove(args) -> int:
    return _change_access(args, add=False)
