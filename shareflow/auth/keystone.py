"""Tokens of an existing OpenStack Keystone (``[auth] strategy = "keystone"``).

What keystonemiddleware's ``auth_token`` does in front of Manila, for the part
shareflow needs: the user's ``X-Auth-Token`` is validated with Keystone's v3
API (``GET /v3/auth/tokens`` with the token in ``X-Subject-Token``, asked with
a service user's own token), and the answer is turned into a project, a user
and role names. keystoneauth1 (the library every OpenStack client and
keystonemiddleware itself use) obtains and renews the service user's token.

A valid answer is remembered for ``cache_seconds`` (keystonemiddleware's
``token_cache_time``, 300 s by default), never past the token's own expiry,
so a polling client costs Keystone one request per token and period, not one
per request. The price is the same as keystonemiddleware's: a token revoked
in Keystone keeps working here until its cached answer expires (set
``cache_seconds = 0`` to ask on every request). Invalid tokens are not
remembered: each one is asked about again.

Errors are translated here, once: a token Keystone does not know (wrong,
expired, revoked, tampered with) or one not scoped to a project is
:class:`NotAuthenticated` (401); Keystone unreachable, refusing the service
user's credentials or answering with an error is :class:`ServiceUnavailable`
(503): the caller's token may be fine, so it must not be told it is not.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import cachetools
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from shareflow.auth import Identity
from shareflow.config import KeystoneConfig
from shareflow.exceptions import NotAuthenticated, ServiceUnavailable

LOG = logging.getLogger(__name__)

UNAUTHENTICATED = "The request you have made requires authentication."
IDENTITY_UNAVAILABLE = "The identity service is not available right now; try again later."
#: Distinct tokens remembered at once (per API worker process).
CACHE_SIZE = 10_000


def _token_key(token: str) -> str:
    # Tokens are bearer secrets: the cache keeps only their digests.
    return hashlib.sha256(token.encode()).hexdigest()


def _parse_time(value: str) -> datetime:
    """Keystone's ``expires_at``: ``2026-11-30T19:12:20.000000Z``."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class KeystoneAuth:
    """An :class:`~shareflow.auth.Authenticator` backed by an external Keystone.

    ``session`` is keystoneauth1's (built from the configuration unless
    given); ``monotonic`` and ``now`` are injectable so the cache's ageing is
    testable without waiting."""

    def __init__(self, config: KeystoneConfig, *, session: ks_session.Session | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.config = config
        self._session = session or ks_session.Session(
            auth=v3.Password(
                auth_url=config.auth_url, username=config.username, password=config.password,
                project_name=config.project_name, user_domain_name=config.user_domain_name,
                project_domain_name=config.project_domain_name,
            ),
            timeout=config.timeout,
        )
        self._monotonic = monotonic
        self._now = now
        self._lock = threading.Lock()
        # (identity, monotonic deadline) per token digest; the LRU bound keeps a
        # flood of distinct tokens from growing the process.
        self._cache: cachetools.LRUCache = cachetools.LRUCache(maxsize=CACHE_SIZE)

    def authenticate(self, token: str | None, headers: dict[str, str]) -> Identity:
        if not token:
            raise NotAuthenticated("missing token", user_message=UNAUTHENTICATED)
        key = _token_key(token)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            identity, deadline = cached
            if self._monotonic() < deadline:
                return identity
        body = self._validate(token)
        try:
            identity, expires_at = self._identity(body)
        except (KeyError, TypeError, ValueError) as e:
            LOG.error("Keystone answered a token validation with a body shareflow cannot read: %r", e)
            raise ServiceUnavailable("unreadable token validation", user_message=IDENTITY_UNAVAILABLE) from None
        lifetime = min(self.config.cache_seconds, (expires_at - self._now()).total_seconds())
        if lifetime > 0:
            with self._lock:
                self._cache[key] = (identity, self._monotonic() + lifetime)
        return identity

    def _validate(self, token: str) -> dict:
        url = f"{self.config.auth_url}/auth/tokens?nocatalog"
        for attempt in (1, 2):
            try:
                resp = self._session.get(url, headers={"X-Subject-Token": token}, authenticated=True,
                                         raise_exc=False)
            except ks_exc.Unauthorized as e:
                # Raised while getting the *service* token: our own credentials.
                LOG.error("Keystone at %s refused shareflow's service user %r: %s",
                          self.config.auth_url, self.config.username, e)
                raise ServiceUnavailable("service credentials refused", user_message=IDENTITY_UNAVAILABLE) from None
            except ks_exc.ClientException as e:
                LOG.warning("Keystone at %s cannot be reached: %s", self.config.auth_url, e)
                raise ServiceUnavailable(f"identity service unreachable: {e}",
                                         user_message=IDENTITY_UNAVAILABLE) from None
            if resp.status_code == 200:
                return resp.json()
            if resp.status_code == 404:
                # Keystone's answer for a token that is unknown, expired or revoked.
                raise NotAuthenticated("token not valid", user_message=UNAUTHENTICATED)
            if resp.status_code == 401 and attempt == 1:
                # The service token itself was revoked or expired early: get a new one, once.
                self._session.invalidate()
                continue
            LOG.error("Keystone answered %s to a token validation: %s", resp.status_code, resp.text[:200])
            raise ServiceUnavailable(f"identity service answered {resp.status_code}",
                                     user_message=IDENTITY_UNAVAILABLE)
        raise AssertionError("unreachable")

    @staticmethod
    def _identity(body: dict) -> tuple[Identity, datetime]:
        token = body["token"]
        project = token.get("project")
        if not project:
            # Unscoped, domain- or system-scoped: Manila's resources belong to projects.
            raise NotAuthenticated("token not scoped to a project", user_message=UNAUTHENTICATED)
        roles = tuple(dict.fromkeys(r["name"].lower() for r in token.get("roles", ())))
        identity = Identity(project_id=project["id"], user_id=token["user"]["id"], roles=roles)
        return identity, _parse_time(token["expires_at"])
