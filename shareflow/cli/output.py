"""How admin sub-commands print: one console and one table style."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table


def console() -> Console:
    # Off a terminal (a pipe, a test) nothing is wrapped or cut: ids stay whole.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 240)


def table(*columns: str, title: str | None = None) -> Table:
    out = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for column in columns:
        out.add_column(column)
    return out
