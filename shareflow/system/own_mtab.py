"""Run a program in a mount namespace of its own whose ``/etc/mtab`` is a
file shareflow writes (``python -m shareflow.system.own_mtab LINK -- ARGV...``).

Why: NFS-Ganesha 4.3's FSAL VFS re-reads the mount table
(``setmntent(MOUNTED)``, glibc's ``/etc/mtab``, a symlink to
``/proc/self/mounts`` on Debian) for every export it creates - at start and
on each D-Bus ``AddExport`` (``src/FSAL/localfs.c``,
``populate_posix_file_systems``) - so each export cost time in proportion
to every mount on the host, most of it the kernel rendering each btrfs
line. Given a table that lists only the mounts being exported right now,
the same code does constant work per export (docs/benchmarks.md, "Ganesha's
own mount table").

What this does, in the process that then becomes ARGV (same pid):

1. ``unshare(CLONE_NEWNS)``, then every mount made a *slave*: mounts the
   host makes later (a new share's) still appear here, and nothing made here
   leaves the namespace;
2. bind-mounts the symlink LINK (which points at the table file) over
   ``/etc/mtab`` itself, not over what ``/etc/mtab`` points at: mount(2)
   always follows a trailing symlink (over ``/proc/self/mounts`` it would
   land on ``/proc/<this pid>/mounts``), ``open_tree`` + ``move_mount``
   without ``MOVE_MOUNT_T_SYMLINKS`` do not. Mounting a symlink (not the file)
   lets the table be replaced by rename, so a reader never sees it torn;
3. lets go of the copies of the host's *private* mounts that the program
   does not need (``--keep`` paths, the table's directories and the system
   directories, with their ancestors and what is below them): a private
   mount gets no unmount from the host, so its copy here would keep that
   filesystem (and its loop device) alive until the program exits, after
   the host had unmounted it. Mounts that receive the host's changes stay;
4. checks that ``/etc/mtab`` now leads to the table, and execs ARGV.

Only the standard library is imported: this runs before every start of
Ganesha. Linux >= 5.2 (``open_tree``, ``move_mount``).
"""

from __future__ import annotations

import ctypes
import os
import sys

MTAB = "/etc/mtab"
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_SLAVE = 1 << 19
MNT_DETACH = 2
#: What a program needs of the system, kept with everything below it.
SYSTEM_DIRS = ("/proc", "/sys", "/dev", "/run", "/etc", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/var/lib/nfs")
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
OPEN_TREE_CLONE = 1
MOVE_MOUNT_F_EMPTY_PATH = 0x4
#: The same number on every architecture (syscalls added since 5.1 share one table).
SYS_OPEN_TREE = 428
SYS_MOVE_MOUNT = 429


def _libc():
    # By name: ctypes.util.find_library may run ldconfig, at every start.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
    libc.unshare.argtypes = (ctypes.c_int,)
    libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)
    return libc


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _table_dirs(table: str) -> list[str]:
    dirs = []
    with open(table) as f:
        for line in f:
            fields = line.split()
            if len(fields) > 1:
                dirs.append(_unescape(fields[1]))
    return dirs


def _related(mount_point: str, path: str) -> bool:
    """``mount_point`` is ``path``, above it or below it."""
    a, b = mount_point.rstrip("/") + "/", path.rstrip("/") + "/"
    return a.startswith(b) or b.startswith(a)


def prune(libc, keep: list[str]) -> int:
    """Detach the private mounts unrelated to ``keep``; how many."""
    with open("/proc/self/mountinfo") as f:
        rows = [line.split(" - ", 1)[0].split() for line in f]
    detached = 0
    for row in reversed(rows):  # children before their parents
        mount_point, optional = _unescape(row[4]), row[6:]
        if optional or any(_related(mount_point, k) for k in keep):
            continue  # receives the host's changes (master:N), or needed
        if libc.umount2(os.fsencode(mount_point), MNT_DETACH) == 0:
            detached += 1
    return detached


def enter(link: str, keep: list[str] = ()) -> None:
    """Steps 1-4 above for the calling (single-threaded) process."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(None, b"/", None, MS_REC | MS_SLAVE, None), "make every mount a slave")
    fd = _check(libc.syscall(SYS_OPEN_TREE, AT_FDCWD, os.fsencode(link),
                             OPEN_TREE_CLONE | AT_SYMLINK_NOFOLLOW | os.O_CLOEXEC), f"open_tree({link})")
    try:
        _check(libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, os.fsencode(MTAB), MOVE_MOUNT_F_EMPTY_PATH),
               f"move_mount({link} over {MTAB})")
    finally:
        os.close(fd)
    table = os.readlink(link)
    # ("/", which every table lists, would keep everything.)
    prune(libc, [*SYSTEM_DIRS, os.path.dirname(table), *keep, *(d for d in _table_dirs(table) if d != "/")])
    if os.readlink(MTAB) != table:
        raise OSError(f"{MTAB} does not lead to {table} after the mount")


def main(argv: list[str]) -> int:
    """``LINK [--keep PATH]... -- PROGRAM [ARGS...]``"""
    keep = []
    link, rest = (argv[0], argv[1:]) if argv else ("", [])
    while len(rest) >= 2 and rest[0] == "--keep":
        keep.append(rest[1])
        rest = rest[2:]
    if not link or len(rest) < 2 or rest[0] != "--":
        print("usage: own_mtab.py LINK [--keep PATH]... -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    try:
        enter(link, keep)
    except OSError as e:
        print(f"own_mtab: {e}", file=sys.stderr)
        return 1
    sys.stdout.flush()
    os.execvp(rest[1], rest[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
