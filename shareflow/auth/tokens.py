"""The tokens file: who may call the API, without storing a single token.

Format (JSON, mode 0600): an object mapping ``sha256(token)`` in hex to its
owner::

    {
      "9f86d08...": {"project_id": "demo", "user_id": "alice",
                     "roles": ["member"], "created_at": "2025-01-01T10:00:00Z"}
    }

A token is shown once, when issued; afterwards only its hash exists. Several
processes issue and revoke (``shareflow token ...`` on any host sharing the
file), so every change happens under an exclusive ``flock`` on a sibling
``.lock`` file and is written to a temporary file that atomically replaces the
old one: readers see either the old or the new file, never half of one.
API workers re-read the file when its identity (inode, size, mtime) changes,
so a token issued a moment ago works without restarting them.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from shareflow.exceptions import ConfigError, InvalidInput, NotFound
from shareflow.system.atomic_file import write_atomic
from shareflow.system.filelock import locked

LOG = logging.getLogger(__name__)

ADMIN_ROLE = "admin"
MEMBER_ROLE = "member"
READER_ROLE = "reader"
#: What ``issue --role`` stores for each role (see :mod:`shareflow.policy`):
#: an admin token is also a member's, as it always was; a reader's only reads.
ROLE_SETS = {ADMIN_ROLE: (ADMIN_ROLE, MEMBER_ROLE), MEMBER_ROLE: (MEMBER_ROLE,), READER_ROLE: (READER_ROLE,)}
TOKEN_BYTES = 32
LOCK_TIMEOUT = 10.0
#: Shortest hash prefix ``revoke`` accepts, so a typo cannot match by accident.
MIN_PREFIX = 6

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class TokenRecord:
    hash: str
    project_id: str
    user_id: str
    roles: tuple[str, ...] = field(default=(MEMBER_ROLE,))
    created_at: str = ""

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    def to_json(self) -> dict:
        return {"project_id": self.project_id, "user_id": self.user_id,
                "roles": list(self.roles), "created_at": self.created_at}


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def valid_id(value: str, what: str) -> str:
    """Project and user ids appear in URLs (``/v2/{project_id}/...``) and logs."""
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInput(
            f"{what} {value!r} must be 1 to 64 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit."
        )
    return value


def _record(key: str, value: object) -> TokenRecord:
    if not _HASH.match(key) or not isinstance(value, dict):
        raise ValueError(f"entry {key[:12]!r} is not a sha256 hash with an object")
    roles = value.get("roles", [MEMBER_ROLE])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ValueError(f"entry {key[:12]}: roles must be a list of strings")
    project, user = value.get("project_id"), value.get("user_id")
    if not isinstance(project, str) or not project or not isinstance(user, str) or not user:
        raise ValueError(f"entry {key[:12]}: project_id and user_id must be non-empty strings")
    return TokenRecord(hash=key, project_id=project, user_id=user, roles=tuple(roles),
                       created_at=str(value.get("created_at", "")))


def parse(text: str, path: Path) -> dict[str, TokenRecord]:
    try:
        data = json.loads(text) if text.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("the top level must be an object")
        return {k: _record(k, v) for k, v in data.items()}
    except ValueError as e:
        raise ConfigError(f"tokens file {path} is not valid: {e}") from None


class TokenFile:
    """Reads (with reload on change) and edits one tokens file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._mutex = threading.Lock()
        self._stamp: tuple | None = None
        self._records: dict[str, TokenRecord] = {}

    # --- reading (API workers) ---------------------------------------------------

    def lookup(self, token: str) -> TokenRecord | None:
        if not token:
            return None
        return self._current().get(hash_token(token))

    def _current(self) -> dict[str, TokenRecord]:
        stamp = self._file_stamp()
        if stamp != self._stamp:
            with self._mutex:
                if stamp != self._stamp:
                    self._reload(stamp)
        return self._records

    def _file_stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _reload(self, stamp: tuple | None) -> None:
        if stamp is None:
            self._records, self._stamp = {}, None
            return
        try:
            records = parse(self.path.read_text(encoding="utf-8"), self.path)
        except (OSError, ConfigError) as e:
            # Keep serving the last good copy: a hand-edit gone wrong must not
            # lock every client out. Retried on the next change of the file.
            LOG.error("keeping the previous tokens: %s", e)
            self._stamp = stamp
            return
        self._records, self._stamp = records, stamp

    def records(self) -> list[TokenRecord]:
        """Strict read for the CLI: a broken file is an error, not an empty list."""
        return sorted(self._read_strict().values(), key=lambda r: (r.created_at, r.hash))

    def _read_strict(self) -> dict[str, TokenRecord]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise ConfigError(f"cannot read tokens file {self.path}: {e}") from None
        return parse(text, self.path)

    # --- editing (CLI) -------------------------------------------------------------

    def issue(self, project_id: str, user_id: str | None = None, *, admin: bool = False,
              role: str | None = None, now: datetime | None = None) -> tuple[str, TokenRecord]:
        """Create a token; returns it (the only time it exists in clear) and its
        record. ``role``: one of :data:`ROLE_SETS` (``admin=True`` is ``role="admin"``)."""
        project_id = valid_id(project_id, "project")
        user_id = valid_id(user_id, "user") if user_id is not None else project_id
        if role is None:
            role = ADMIN_ROLE if admin else MEMBER_ROLE
        elif admin and role != ADMIN_ROLE:
            raise InvalidInput(f"a token cannot be both admin and {role}")
        if role not in ROLE_SETS:
            raise InvalidInput(f"role {role!r} must be one of {', '.join(ROLE_SETS)}")
        roles = ROLE_SETS[role]
        created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        record = TokenRecord(hash=hash_token(token), project_id=project_id, user_id=user_id,
                             roles=roles, created_at=created)
        with self._editing() as records:
            records[record.hash] = record
        return token, record

    def revoke(self, prefix: str) -> TokenRecord:
        prefix = (prefix or "").strip().lower()
        if len(prefix) < MIN_PREFIX or not re.fullmatch(r"[0-9a-f]+", prefix):
            raise InvalidInput(f"give at least {MIN_PREFIX} hex digits of the token's hash")
        with self._editing() as records:
            matches = [h for h in records if h.startswith(prefix)]
            if not matches:
                raise NotFound(f"no token whose hash starts with {prefix}")
            if len(matches) > 1:
                raise InvalidInput(f"{len(matches)} tokens match {prefix}; give a longer prefix")
            return records.pop(matches[0])

    @contextlib.contextmanager
    def _editing(self) -> Iterator[dict[str, TokenRecord]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self._lock_path, timeout=LOCK_TIMEOUT, error=ConfigError):
            records = self._read_strict()
            yield records
            self._write(records)

    def _write(self, records: dict[str, TokenRecord]) -> None:
        data = {h: r.to_json() for h, r in sorted(records.items())}
        write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n", mode=0o600)
