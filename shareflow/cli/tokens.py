"""``shareflow token issue | list | revoke``: API tokens for the "tokens" auth strategy.

``issue`` prints the new token once, on stdout alone (so ``T=$(shareflow
token issue --project demo)`` works); the file keeps only its sha256. ``list``
shows owners and hash prefixes, never tokens; ``revoke`` takes such a prefix.
Running API workers see changes at their next request.
"""

from __future__ import annotations

import argparse
import sys

from shareflow import config as config_module
from shareflow.auth.tokens import ADMIN_ROLE, MEMBER_ROLE, ROLE_SETS, TokenFile

HASH_SHOWN = 12


def register(subparsers) -> None:
    parser = subparsers.add_parser("token", help="issue, list and revoke API tokens")
    commands = parser.add_subparsers(dest="token_command", required=True)

    issue = commands.add_parser("issue", help="create a token and print it (shown only once)")
    issue.add_argument("--project", required=True, help="project the token acts for")
    issue.add_argument("--user", default=None, help="user id (default: the project id)")
    role = issue.add_mutually_exclusive_group()
    role.add_argument("--role", choices=list(ROLE_SETS), default=None,
                      help=f"the token's role (default {MEMBER_ROLE}): admin acts on every project, "
                           "member reads and changes its project's resources, reader only reads them")
    role.add_argument("--admin", action="store_const", dest="role", const=ADMIN_ROLE,
                      help="the same as --role admin")
    _config_option(issue)
    issue.set_defaults(func=cmd_issue)

    listing = commands.add_parser("list", help="list tokens (owner, roles, hash prefix)")
    _config_option(listing)
    listing.set_defaults(func=cmd_list)

    revoke = commands.add_parser("revoke", help="revoke the token whose hash starts with PREFIX")
    revoke.add_argument("hash_prefix", metavar="HASH_PREFIX")
    _config_option(revoke)
    revoke.set_defaults(func=cmd_revoke)


def _config_option(parser: argparse.ArgumentParser) -> None:
    # SUPPRESS: an unset sub-command option must not overwrite the top-level --config.
    parser.add_argument("--config", default=argparse.SUPPRESS,
                        help=f"configuration file (default: ${config_module.ENV_VAR})")


def _tokens(args) -> TokenFile:
    config = config_module.load(getattr(args, "config", None))
    return TokenFile(config.auth.tokens_file)


def cmd_issue(args) -> int:
    tokens = _tokens(args)
    token, record = tokens.issue(args.project, args.user, role=args.role)
    print(token)
    sys.stdout.flush()
    roles = ",".join(record.roles)
    print(f"issued for project {record.project_id}, user {record.user_id}, roles {roles}; "
          f"hash {record.hash[:HASH_SHOWN]} (the token is not stored and cannot be shown again)",
          file=sys.stderr)
    return 0


def cmd_list(args) -> int:
    records = _tokens(args).records()
    rows = [("HASH", "PROJECT", "USER", "ROLES", "CREATED")]
    rows += [(r.hash[:HASH_SHOWN], r.project_id, r.user_id, ",".join(r.roles), r.created_at)
             for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_revoke(args) -> int:
    record = _tokens(args).revoke(args.hash_prefix)
    print(f"revoked {record.hash[:HASH_SHOWN]} (project {record.project_id}, user {record.user_id})")
    return 0
