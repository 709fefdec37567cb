"""Passwords and application credential secrets, hashed with argon2id
(argon2-cffi's defaults, RFC 9106's low-memory choice)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()
#: A hash no secret matches, verified when the user is unknown so that an
#: unknown name costs as long as a wrong password (no user enumeration by timing).
_DUMMY = _HASHER.hash("shareflow: no such user")


def hash_secret(secret: str) -> str:
    return _HASHER.hash(secret)


def verify(hashed: str | None, secret: str) -> bool:
    try:
        return _HASHER.verify(hashed or _DUMMY, secret) and hashed is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
