"""``shareflow``: the operator's command line."""

from __future__ import annotations

import argparse
import sys

from shareflow.cli import backends as backends_cmd
from shareflow.cli import db as db_cmd
from shareflow.cli import identity as identity_cmd
from shareflow.cli import jobs as jobs_cmd
from shareflow.cli import networks as networks_cmd
from shareflow.cli import run as run_cmd
from shareflow.cli import share_types as types_cmd
from shareflow.cli import tokens as tokens_cmd
from shareflow.exceptions import ShareflowError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shareflow", description="shareflow operator commands")
    parser.add_argument(
        "--config", default=None,
        help="configuration file (default: $SHAREFLOW_CONFIG, else etc/shareflow.toml)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (jobs_cmd, tokens_cmd, db_cmd, run_cmd, networks_cmd, backends_cmd, types_cmd,
                   identity_cmd):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ShareflowError as e:
        print(f"shareflow: {e.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
