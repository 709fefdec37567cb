"""Logging set-up shared by every shareflow process."""

from __future__ import annotations

import logging
import os
import sys

FORMAT = "%(asctime)s %(levelname)s [%(process)d %(tag)s] %(name)s: %(message)s"


class _Tag(logging.Filter):
    def __init__(self, tag: str):
        super().__init__()
        self._tag = tag

    def filter(self, record: logging.LogRecord) -> bool:
        record.tag = self._tag
        return True


def setup_logging(tag: str, level: str | None = None) -> None:
    """Log to stderr; ``SHAREFLOW_LOG_LEVEL`` overrides the level (default INFO).
    Kazoo and TaskFlow are noisy at INFO about things that are normal here."""
    level = (level or os.environ.get("SHAREFLOW_LOG_LEVEL") or "INFO").upper()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(_Tag(tag))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("kazoo", "taskflow", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
