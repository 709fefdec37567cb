"""What every admin sub-command shares: its common options, how it is
declared, and the configuration and database it acts on."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator

from shareflow import config as config_module
from shareflow.config import Config
from shareflow.db.engine import Database


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--json`` on a sub-command."""
    # SUPPRESS: an unset sub-command option must not overwrite the top-level --config.
    parser.add_argument("--config", default=argparse.SUPPRESS,
                        help=f"configuration file (default: ${config_module.ENV_VAR})")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def subcommand(commands, name: str, func: Callable, help: str) -> argparse.ArgumentParser:
    """A sub-command ``name`` running ``func(args)``, with the common options."""
    parser = commands.add_parser(name, help=help)
    add_common(parser)
    parser.set_defaults(func=func)
    return parser


@contextlib.contextmanager
def admin_database(args) -> Iterator[tuple[Config, Database]]:
    """The configuration the command names and its database, closed after."""
    config = config_module.load(getattr(args, "config", None))
    db = Database(config.database.url)
    try:
        yield config, db
    finally:
        db.dispose()
