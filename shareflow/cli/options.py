"""Options every admin sub-command takes."""

from __future__ import annotations

import argparse

from shareflow import config as config_module


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--json`` on a sub-command."""
    # SUPPRESS: an unset sub-command option must not overwrite the top-level --config.
    parser.add_argument("--config", default=argparse.SUPPRESS,
                        help=f"configuration file (default: ${config_module.ENV_VAR})")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
