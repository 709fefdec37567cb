"""Replace a file's content atomically and durably."""

from __future__ import annotations

import os
import threading
from pathlib import Path


def write_atomic(path: str | os.PathLike, text: str, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` so readers see the old or the new file,
    never a torn one, even across a crash: write a temporary file next to it,
    fsync, rename over, fsync the directory (which makes the rename durable).
    ``mode`` is set before any content is written (for secrets)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
