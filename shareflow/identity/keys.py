"""The Fernet key repository: one file per key under a private directory.

As Keystone's ``fernet_setup``/``fernet_rotate``: files are named by
integers, the highest is the primary key (new tokens are encrypted with it)
and every key in the directory decrypts, so tokens issued before a rotation
stay valid until ``max_active_keys`` rotations have passed. The directory is
created (0700, keys 0600) by the first process that needs it, under a lock,
and API workers reload it when it changes, so a rotation reaches them
without a restart.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet

from shareflow.exceptions import ConfigError
from shareflow.system.atomic_file import write_atomic
from shareflow.system.filelock import locked

LOCK_TIMEOUT = 10.0


class KeyRepository:
    def __init__(self, path: str | os.PathLike, max_active_keys: int):
        self.path = Path(path)
        self.max_active_keys = max_active_keys
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._mutex = threading.Lock()
        self._stamp: tuple | None = None
        self._fernet: MultiFernet | None = None

    def _numbers(self) -> list[int]:
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        return sorted(int(n) for n in names if n.isdigit())

    def ensure(self) -> None:
        """Create the repository with its first key unless it has one."""
        if self._numbers():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self._lock_path, timeout=LOCK_TIMEOUT, error=ConfigError):
            self.path.mkdir(mode=0o700, exist_ok=True)
            if not self._numbers():
                write_atomic(self.path / "1", Fernet.generate_key().decode() + "\n", mode=0o600)

    def rotate(self) -> int:
        """A new primary key; the oldest beyond ``max_active_keys`` go. Returns the new key's number."""
        self.ensure()
        with locked(self._lock_path, timeout=LOCK_TIMEOUT, error=ConfigError):
            numbers = self._numbers()
            new = numbers[-1] + 1
            write_atomic(self.path / str(new), Fernet.generate_key().decode() + "\n", mode=0o600)
            for old in (numbers + [new])[:-self.max_active_keys]:
                (self.path / str(old)).unlink(missing_ok=True)
        return new

    def keys(self) -> list[int]:
        return self._numbers()

    def fernet(self) -> MultiFernet:
        """The keys as one MultiFernet, primary first; reloaded when the directory changes."""
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            stamp = None
        if stamp is None or stamp != self._stamp or self._fernet is None:
            with self._mutex:
                self._load(stamp)
        return self._fernet

    def _load(self, stamp: tuple | None) -> None:
        if stamp is None:
            self.ensure()
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns)
        keys = []
        for number in reversed(self._numbers()):
            try:
                keys.append(Fernet((self.path / str(number)).read_bytes().strip()))
            except FileNotFoundError:
                continue  # removed by a rotation meanwhile
            except (OSError, ValueError) as e:
                raise ConfigError(f"Fernet key {self.path / str(number)} cannot be used: {e}") from None
        if not keys:
            raise ConfigError(f"the Fernet key repository {self.path} holds no key")
        self._fernet, self._stamp = MultiFernet(keys), stamp
