"""The mount table one NFS-Ganesha reads, written by shareflow.

NFS-Ganesha 4.3 (FSAL VFS) finds the filesystem of every export it creates
by reading the whole mount table, ``/etc/mtab`` (``src/FSAL/localfs.c``,
``populate_posix_file_systems``, called by ``resolve_posix_filesystem`` at
start for each export and on each D-Bus ``AddExport``): each export cost
time in proportion to every mount on the host - at 5,000 shares a start took
514 s, nearly all of it the kernel rendering the btrfs lines. What the scan
needs is much less: it only looks at lines whose directory is the export's
path or one of its ancestors or descendants (``path_is_subset``), and keeps
every filesystem an export has claimed across later scans (it releases
only unclaimed ones). So a table listing just the filesystems of the exports
being created *now* gives the same result in constant time.

A server with ``mount_table = "own"`` runs in a mount namespace whose
``/etc/mtab`` leads to ``<state_dir>/mtab`` (``shareflow.system.own_mtab``),
and that file holds the union of the *entries* in ``<state_dir>/mtab.d/``:

* ``.start``: every export's filesystem, while the server starts (it creates
  each export from its file then);
* ``<share id>``: that one export's filesystem, while it is added or
  updated over D-Bus (each change holds the export's own lock, so at most
  one entry per share);
* ``reload``: every export's filesystem, during a SIGHUP (which re-creates
  every export; only a server not on its bus takes changes that way, so
  this is for completeness);

and, first, always, the root filesystem ``/`` (the parent of every export's).

The table is rebuilt under ``mtab.lock`` (a listing of a few entries, a
rename), so two exports added at once both find their lines. An entry a
dead process left behind costs a line per later scan, nothing else (lines of
other paths are ignored); the next start clears them all, and the start's
own lines, if whoever started the server died before dropping them, go
with the next change once the server listens. Removing an export
(``RemoveExport``) and changing its client list in place read no table.

What differs from the host's table: a lookup crossing into a filesystem
mounted *inside* an export after it was created (Ganesha re-reads the table
then) finds nothing and gets EXDEV - shares have no such nested mounts.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from shareflow.exceptions import ExportError
from shareflow.system import filelock

TABLE = "mtab"
LINK = "mtab.link"
ENTRIES = "mtab.d"
LOCK = "mtab.lock"
START_ENTRY = ".start"
#: Every export's filesystem during a SIGHUP reload (not a share id: no dot
#: would be, and temporary files start with one).
RELOAD_ENTRY = "reload"
#: The type a line gives when the filesystem's magic number is not one below.
FSTYPE = "shareflow"
#: statfs(2) f_type -> the name a mount table gives. Ganesha compares the type
#: with a list of types it never exports (nfs, proc, sysfs, devtmpfs, ...:
#: all of them here, so it refuses them as it does from the host's table)
#: and with "btrfs" (then it looks for subvolumes; this build only warns).
MAGIC_TYPES = {
    0x9123683E: "btrfs", 0x58465342: "xfs", 0xEF53: "ext4", 0x01021994: "tmpfs", 0x794C7630: "overlay",
    0x6969: "nfs", 0x0187: "autofs", 0x62656572: "sysfs", 0x9FA0: "proc", 0x73636673: "securityfs",
    0x27E0EB: "cgroup", 0x63677270: "cgroup2", 0xF97CFF8C: "selinuxfs", 0x64626720: "debugfs",
    0x958458F6: "hugetlbfs", 0x19800202: "mqueue", 0x6165676C: "pstore", 0x1CD1: "devpts",
    0x62656570: "configfs", 0x42494E4D: "binfmt_misc", 0x67596969: "rpc_pipefs", 0x786F4256: "vboxsf",
}
TMPFS_MAGIC = 0x01021994
#: getmntent decodes these octal escapes in a field.
_ESCAPES = str.maketrans({" ": "\\040", "\t": "\\011", "\n": "\\012", "\\": "\\134"})


def mount_root(path: str) -> str:
    """The topmost directory of ``path``'s filesystem above it (by device
    number, a ``stat`` per level): a share's own mount is its mount point; a
    plain directory's is the mount it lives on, as the host's table says."""
    path = os.path.normpath(path)
    dev = os.stat(path).st_dev
    root = path
    while root != "/":
        parent = os.path.dirname(root)
        if os.stat(parent).st_dev != dev:
            break
        root = parent
    return root


def fs_type(path: str) -> str:
    """The filesystem type of ``path`` as a mount table names it, from its
    magic number (devtmpfs has tmpfs's: told apart as the filesystem of
    ``/dev``)."""
    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type is its first word
    if _libc().statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    magic = ctypes.c_ulong.from_buffer(buf).value & 0xFFFFFFFF
    if magic == TMPFS_MAGIC and os.stat(path).st_dev == os.stat("/dev").st_dev:
        return "devtmpfs"
    return MAGIC_TYPES.get(magic, FSTYPE)


def line_for(path: str) -> str:
    """The table's line for ``path``'s filesystem. Without the dump and pass
    fields (fstab(5): they default to 0): glibc's ``getmntent`` then skips
    its ``sscanf`` of them, a third of its CPU per line - and a start scans
    the whole table once per export (every export's line, N^2 lines)."""
    root = mount_root(path)
    return f"shareflow {root.translate(_ESCAPES)} {fs_type(root)} rw\n"


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
        _LIBC.statfs.argtypes = (ctypes.c_char_p, ctypes.c_void_p)
    return _LIBC


class MountTable:
    def __init__(self, state_dir: Path, *, timeout: float):
        self.state_dir = state_dir
        self.timeout = timeout

    @property
    def path(self) -> Path:
        return self.state_dir / TABLE

    @property
    def link(self) -> Path:
        """What is mounted over Ganesha's ``/etc/mtab``: a symlink to :attr:`path`."""
        return self.state_dir / LINK

    @property
    def entries_dir(self) -> Path:
        return self.state_dir / ENTRIES

    def prepare(self, start_paths: Iterable[str]) -> None:
        """Before a start: the link, and a table of the filesystems of
        ``start_paths`` (every export), left entries cleared."""
        self.entries_dir.mkdir(parents=True, exist_ok=True)
        target = str(self.path)
        try:
            ok = os.readlink(self.link) == target
        except FileNotFoundError:
            ok = False
        except OSError:  # not a symlink
            ok = False
        if not ok:
            tmp = self.link.with_name(f".{LINK}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            os.symlink(target, tmp)
            os.replace(tmp, self.link)
        lines = []
        for p in start_paths:
            try:
                lines.append(line_for(p))
            except OSError:
                continue  # Ganesha fails that export with its own message
        with self._locked():
            for name in os.listdir(self.entries_dir):
                (self.entries_dir / name).unlink(missing_ok=True)
            _write(self.entries_dir / START_ENTRY, "".join(dict.fromkeys(lines)))
            self._rebuild()

    def starting(self) -> bool:
        """Whether the start's lines are in the table."""
        return (self.entries_dir / START_ENTRY).exists()

    def started(self) -> None:
        """After a start (or a failed one): the exports' lines go."""
        self._drop(START_ENTRY)

    @contextlib.contextmanager
    def listing(self, name: str, path: str) -> Iterator[None]:
        """The filesystem of ``path`` in the table for the block (an export
        being created)."""
        try:
            line = line_for(path)
        except OSError as e:
            raise ExportError(f"cannot export {path}: {e.strerror}") from e
        with self._entry(name, line):
            yield

    @contextlib.contextmanager
    def listing_all(self, paths: Iterable[str]) -> Iterator[None]:
        """The filesystems of ``paths`` (every export) in the table for the
        block: a SIGHUP makes the server create every export again."""
        lines = []
        for p in paths:
            with contextlib.suppress(OSError):
                lines.append(line_for(p))
        with self._entry(RELOAD_ENTRY, "".join(dict.fromkeys(lines))):
            yield

    @contextlib.contextmanager
    def _entry(self, name: str, text: str) -> Iterator[None]:
        with self._locked():
            _write(self.entries_dir / name, text)
            self._rebuild()
        try:
            yield
        finally:
            self._drop(name)

    def read_by(self, pid: int) -> bool:
        """Whether process ``pid``'s ``/etc/mtab`` leads to this table."""
        try:
            return os.readlink(f"/proc/{pid}/root/etc/mtab") == str(self.path)
        except OSError:
            return False

    def lines(self) -> list[str]:
        """The table as it is now (tests, diagnostics)."""
        try:
            return self.path.read_text().splitlines()
        except FileNotFoundError:
            return []

    def _drop(self, name: str) -> None:
        with self._locked():
            (self.entries_dir / name).unlink(missing_ok=True)
            self._rebuild()

    def _locked(self):
        self.entries_dir.mkdir(parents=True, exist_ok=True)
        return filelock.locked(self.state_dir / LOCK, timeout=self.timeout, error=ExportError)

    def _rebuild(self) -> None:
        # The root first, always: a filesystem whose ancestor is not in the
        # table is "unattached" (no parent), and Ganesha looks for the parent
        # of every unattached one on every scan (posix_find_parent), among
        # all it knows: with only the exports listed, the start with N
        # exports cost N^3 (3,000 took 419 s instead of 29 s) and each add
        # N^2. Under "/" each export has its parent once and for all.
        parts = [line_for("/")]
        for name in sorted(os.listdir(self.entries_dir)):
            if name.startswith(".") and name != START_ENTRY:
                continue  # a temporary file
            with contextlib.suppress(FileNotFoundError):
                parts.append((self.entries_dir / name).read_text())
        _write(self.path, "".join(parts))


def _write(path: Path, text: str) -> None:
    """Replace by rename, so Ganesha never reads a torn table. No fsync: the
    table is rebuilt at every start, nothing needs it after a crash."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def visible_to(pid: int, path: str) -> bool:
    """Whether process ``pid`` sees at ``path`` what this process sees there
    (its mount namespace got the share's mount): ``/proc/PID/root`` walks
    that process's own mounts."""
    try:
        mine, theirs = os.stat(path), os.stat(f"/proc/{pid}/root{os.path.normpath(path)}")
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)
