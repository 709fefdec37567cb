"""The token format: a Fernet token (AES-CBC + HMAC-SHA256, so signed and
opaque) over a small JSON payload. Nothing about a token is stored: it is
checked by decrypting it, its expiry read from the payload (against the
service's clock, not Fernet's own timestamp), and its revocation looked up by
its audit id."""

from __future__ import annotations

import base64
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.fernet import InvalidToken, MultiFernet

EPOCH = datetime(1970, 1, 1)


@dataclass(frozen=True)
class TokenPayload:
    user_id: str
    project_id: str
    methods: tuple[str, ...]
    issued_at: datetime
    expires_at: datetime
    audit_id: str
    app_credential_id: str | None = None


def new_audit_id() -> str:
    """Keystone's shape: 16 random bytes, URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


def _seconds(moment: datetime) -> float:
    return (moment - EPOCH).total_seconds()


def _moment(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def encode(fernet: MultiFernet, payload: TokenPayload) -> str:
    data = {"u": payload.user_id, "p": payload.project_id, "m": list(payload.methods),
            "i": _seconds(payload.issued_at), "e": _seconds(payload.expires_at), "a": payload.audit_id}
    if payload.app_credential_id:
        data["c"] = payload.app_credential_id
    return fernet.encrypt(json.dumps(data, separators=(",", ":")).encode()).decode()


def decode(fernet: MultiFernet, token: str) -> TokenPayload | None:
    """The payload, or None when the token is not one of ours (tampered,
    encrypted with a key rotated out, or not a Fernet token at all)."""
    try:
        data = json.loads(fernet.decrypt(token.encode("ascii")))
        return TokenPayload(
            user_id=str(data["u"]), project_id=str(data["p"]), methods=tuple(str(m) for m in data["m"]),
            issued_at=_moment(float(data["i"])), expires_at=_moment(float(data["e"])),
            audit_id=str(data["a"]), app_credential_id=data.get("c"),
        )
    except (InvalidToken, UnicodeError, ValueError, KeyError, TypeError):
        return None
