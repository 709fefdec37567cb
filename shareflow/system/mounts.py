"""What is mounted where, read from ``/proc/self/mountinfo``.

``mountinfo`` (not ``/proc/mounts``) because it carries the *root* of each
mount inside its filesystem: a btrfs subvolume mounted with ``subvol=`` shows
up with that subvolume's path as root, which is how the share driver knows
which subvolume sits on an export mount point. Parsing is a pure function so
it is unit-tested on fixed text. ``unmount`` is here too: it is the one
place that knows how to wait out a busy mount point. ``bind_mount`` calls
mount(2) itself (see there why).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from dataclasses import dataclass
from pathlib import Path

import tenacity

from shareflow.exceptions import CommandError, StorageError
from shareflow.system.process import run

MOUNTINFO = "/proc/self/mountinfo"
#: mount(2) flags (linux/mount.h) for the per-mount options shareflow uses.
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MNT_DETACH = 0x2
_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV}
_libc = None

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



def _libc_calls():
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
        libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
        _libc = libc
    return _libc


def bind_mount(source: str | os.PathLike, target: str | os.PathLike, *, flags: str = "") -> None:
    """Make directory ``source`` visible on ``target`` (``mount --bind``),
    then apply the per-mount ``flags`` by name (``nodev,nosuid``).

    mount(2) directly: mount(8) costs a fork and exec per call. A bind mount,
    not a ``subvol=`` mount of the device: a ``subvol=`` mount walks the
    kernel's mount table, so with thousands of shares each one took tens of
    milliseconds (2,000 took 25 s, 2,000 bind mounts 0.4 s); the mount table
    shows the two the same (the subvolume's path as the mount's root).
    Nothing is written to /run/mount/utab: no option here needs it. If the
    flags cannot be applied the bind is undone. Raises :class:`StorageError`."""
    bits = 0
    for name in filter(None, flags.split(",")):
        if name not in _FLAGS:
            raise StorageError(f"unsupported mount flag {name!r}")
        bits |= _FLAGS[name]
    libc = _libc_calls()
    src, dst = os.fsencode(os.fspath(source)), os.fsencode(os.fspath(target))
    if libc.mount(src, dst, None, MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise StorageError(f"mount --bind {os.fsdecode(src)} {os.fsdecode(dst)}: {os.strerror(err)}")
    # A bind ignores per-mount flags: they take a remount of the new mount.
    # Until then it is reachable only on the storage host (nothing exports
    # it yet).
    if bits and libc.mount(None, dst, None, MS_BIND | MS_REMOUNT | bits, None) != 0:
        err = ctypes.get_errno()
        libc.umount2(dst, MNT_DETACH)
        raise StorageError(f"mount -o remount,bind,{flags} {os.fsdecode(dst)}: {os.strerror(err)}")


def make_shared(path: str | os.PathLike) -> bool:
    """Make ``path`` a mount with shared propagation (what systemd makes
    every mount; this machine's are private), so that mounts made below it
    later also appear in mount namespaces copied from the host - NFS-Ganesha's
    own (``ganesha.mount_table = "own"``). A directory that is not a mount
    point is first bound on itself, with whatever is mounted below it.
    True when that bind was made here (the caller unmounts it at the end).
    Raises :class:`StorageError`."""
    target = Path(path).resolve()
    target.mkdir(parents=True, exist_ok=True)
    libc = _libc_calls()
    dst = os.fsencode(os.fspath(target))
    made = False
    if not is_mountpoint(target):
        if libc.mount(dst, dst, None, MS_BIND | MS_REC, None) != 0:
            err = ctypes.get_errno()
            raise StorageError(f"mount --rbind {target} {target}: {os.strerror(err)}")
        made = True
    try:
        set_propagation(target, MS_SHARED)
    except StorageError:
        if made:
            libc.umount2(dst, MNT_DETACH)
        raise
    return made


def set_propagation(path: str | os.PathLike, flag: int) -> None:
    """Set the propagation of the mount at ``path`` (``MS_SHARED``,
    ``MS_PRIVATE``, ...). Raises :class:`StorageError`."""
    if _libc_calls().mount(None, os.fsencode(os.fspath(path)), None, flag, None) != 0:
        err = ctypes.get_errno()
        raise StorageError(f"mount propagation {flag:#x} of {path}: {os.strerror(err)}")
