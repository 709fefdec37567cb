"""Whether the running NFS-Ganesha serves an export as its file says.

A step that tells Ganesha what it serves already - the client list of a
share just exported, told again by the create's access step; a retried step
- costs a D-Bus round trip and, as the call may create the export, a
listing in Ganesha's mount table around it: 3-4 ms of every create
(``bench/create_share.py``, step ``apply_access``). The call is needed only
when Ganesha may not serve the file: when a change was written but a process
died before (or while) telling it, or when the export is not served at all.

So each change records it in the export's lock file (``export-locks/<share
id>.lock``, held by every change of that export, in every process):
*before* the export's file changes and before its D-Bus call the lock file
is marked **changing**, and once Ganesha answered the call it is marked
**served**: by that Ganesha (its boot, pid and start time: a restarted or
another server is another instance, and a restarted one reads every file
at its start anyway), as the export's file was then (inode, size and
modification time: a file someone else changed, without the lock, is not
the one served). A process that dies between the two leaves *changing*, so
the next change tells Ganesha again, as it always did. Only a change that
finds the mark *served* by the very instance running now and the file as
it was may leave Ganesha alone - or, for a new client list, change it in
place without the mount-table listing (an export Ganesha serves is updated,
not created).

The mark is not durable (no fsync) and needs not be: after a crash of the
machine every Ganesha is a new instance, whatever the mark says.
"""

from __future__ import annotations

import os

#: Fixed-size records, written in place: the lock file's one block is never
#: freed and allocated again.
SIZE = 160
CHANGING = b"changing".ljust(SIZE)
_BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_boot_id: str | None = None


def instance(pid: int | None) -> str | None:
    """The running process ``pid`` as one instance of it: boot, pid and
    start time (so a pid used again is another instance). None if ``pid`` is
    None or gone."""
    global _boot_id
    if pid is None:
        return None
    try:
        if _boot_id is None:
            with open(_BOOT_ID_PATH) as f:
                _boot_id = f.read().strip()
        with open(f"/proc/{pid}/stat") as f:
            # Field 22, counted after the command's closing parenthesis (the
            # command may hold spaces and parentheses).
            start = f.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None
    return f"{_boot_id} {pid} {start}"


def file_version(path: str | os.PathLike) -> str | None:
    """The file at ``path`` as it is now (None: there is none): what any
    write of it, in place or by rename, changes."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return f"{st.st_ino} {st.st_size} {st.st_mtime_ns}"


class ServedMark:
    """The mark in one export's lock file, ``fd`` (held, open read-write)."""

    def __init__(self, fd: int):
        self._fd = fd

    @staticmethod
    def _served(by: str, file: str) -> bytes:
        record = f"served {by} {file}".encode()
        if len(record) > SIZE:
            raise ValueError(f"{record!r} is too long for the mark")
        return record.ljust(SIZE)

    def served_by(self, by: str | None, file: str | None) -> bool:
        """Whether the last change was served by instance ``by`` with the
        export's file at version ``file`` (:func:`file_version`), and no
        change began since."""
        return by is not None and file is not None and os.pread(self._fd, SIZE, 0) == self._served(by, file)

    def changing(self) -> None:
        """Before the export's file changes, and before Ganesha is told."""
        os.pwrite(self._fd, CHANGING, 0)

    def served(self, by: str, file: str) -> None:
        """Once instance ``by`` answered the change of the file at version
        ``file``."""
        os.pwrite(self._fd, self._served(by, file), 0)
