"""What is mounted where, read from ``/proc/self/mountinfo``.

``mountinfo`` (not ``/proc/mounts``) because it carries the *root* of each
mount inside its filesystem: a btrfs subvolume mounted with ``subvol=`` shows
up with that subvolume's path as root, which is how the share driver knows
which subvolume sits on an export mount point. Parsing is a pure function so
it is unit-tested on fixed text. ``unmount`` is here too: it is the one
place that knows how to wait out a busy mount point.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import tenacity

from shareflow.exceptions import CommandError
from shareflow.system.process import run

MOUNTINFO = "/proc/self/mountinfo"

# The kernel escapes space, tab, newline and backslash in paths as \ooo.
_OCTAL = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    mount_id: int
    parent_id: int
    #: Path inside the mounted filesystem that appears at ``mount_point``
    #: (``/`` normally, ``/shares/<id>`` for a ``subvol=shares/<id>`` mount).
    root: str
    mount_point: str
    options: str
    fstype: str
    source: str
    super_options: str


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[Mount]:
    """Parse mountinfo text into :class:`Mount` records, in file order (which
    is mount order: of several mounts on one point the last one is visible).
    Malformed lines are skipped rather than failing every caller."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)  # optional fields end at a lone "-"
            mounts.append(
                Mount(
                    mount_id=int(fields[0]),
                    parent_id=int(fields[1]),
                    root=_unescape(fields[3]),
                    mount_point=_unescape(fields[4]),
                    options=fields[5],
                    fstype=fields[sep + 1],
                    source=_unescape(fields[sep + 2]),
                    super_options=fields[sep + 3] if len(fields) > sep + 3 else "",
                )
            )
        except (ValueError, IndexError):
            continue
    return mounts


def read_mounts(path: str = MOUNTINFO) -> list[Mount]:
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return parse_mountinfo(f.read())


def _norm(path: str | os.PathLike) -> str:
    # realpath: mountinfo lists resolved paths, callers may hold symlinked ones.
    return os.path.realpath(os.fspath(path))


def find_mount(path: str | os.PathLike, mounts: list[Mount] | None = None) -> Mount | None:
    """The visible (last) mount whose mount point is exactly ``path``.

    With ``mounts`` given, ``path`` is only normalised (no filesystem access)."""
    p = _norm(path) if mounts is None else os.path.normpath(os.fspath(path))
    if mounts is None:
        mounts = read_mounts()
    found = None
    for m in mounts:
        if m.mount_point == p:
            found = m
    return found


def is_mountpoint(path: str | os.PathLike, mounts: list[Mount] | None = None) -> bool:
    return find_mount(path, mounts) is not None


def source_of(path: str | os.PathLike, mounts: list[Mount] | None = None) -> str | None:
    """The source (device) mounted on ``path``, or None when nothing is."""
    m = find_mount(path, mounts)
    return m.source if m else None


def mounts_under(path: str | os.PathLike, mounts: list[Mount] | None = None) -> list[Mount]:
    """Mounts strictly below ``path`` (not on it), newest first: a mount made
    on top of another always comes before it, so this is an unmount order.

    With ``mounts`` given, ``path`` is only normalised (no filesystem access)."""
    p = _norm(path) if mounts is None else os.path.normpath(os.fspath(path))
    if mounts is None:
        mounts = read_mounts()
    prefix = p.rstrip("/") + "/"
    below = [m for m in mounts if m.mount_point.startswith(prefix)]
    # Later mounts may sit on earlier ones: unmount in reverse mount order.
    return list(reversed(below))


def _busy(exc: BaseException) -> bool:
    return isinstance(exc, CommandError) and "busy" in exc.stderr.lower()


def unmount(path: str | os.PathLike, *, timeout: float, retry_for: float = 5.0) -> None:
    """``umount path``, retried (bounded by ``retry_for`` seconds) while the
    kernel says the target is busy: an NFS server may hold files open for a
    moment after its export was removed."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(_busy),
        stop=tenacity.stop_after_delay(retry_for),
        wait=tenacity.wait_exponential(multiplier=0.01, max=0.2),
        reraise=True,
    )
    for attempt in retrying:
        with attempt:
            run(["umount", os.fspath(path)], timeout=timeout)
