"""The built-in identity's logic: Keystone v3's token methods (password,
application credential, token) scoped to a project, token validation and
revocation, and the management of users, projects, role assignments and
application credentials.

What Keystone does, where shareflow has to choose: one domain (``default``,
named ``Default``); roles imply each other as Keystone's bootstrap makes them
(admin implies member, member implies reader), and a token carries the
implied roles too; a token's roles are recomputed at every validation, so a
removed assignment, user, project or application credential ends its tokens
at once. Argon2 is deliberately slow, so no database transaction is open
while a secret is verified.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shareflow.config import IdentityConfig, MAX_LOCKOUT_DURATION
from shareflow.db import identity as identity_db
from shareflow.db.engine import Database
from shareflow.db.models import IdentityAppCredential, IdentityProject, IdentityUser
from shareflow.exceptions import Conflict, InvalidInput, NotAuthenticated, NotFound
from shareflow.identity import hashing
from shareflow.identity import tokens as token_format
from shareflow.identity.keys import KeyRepository
from shareflow.identity.tokens import TokenPayload

DOMAIN_ID = "default"
DOMAIN_NAME = "Default"
SEEDED_ROLES = ("admin", "member", "reader")
#: Keystone's bootstrap: admin implies member, member implies reader.
IMPLIES = {"admin": ("member",), "member": ("reader",)}
METHODS = ("password", "application_credential", "token")
UNAUTHORIZED = "The request you have made requires authentication."
APP_CREDENTIAL_SECRET_BYTES = 48
#: Tokens whose decrypted payload a process keeps (~1 KB each).
PAYLOAD_CACHE_SIZE = 4096

_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,255}$")


@dataclass(frozen=True)
class Ref:
    id: str
    name: str


@dataclass(frozen=True)
class TokenInfo:
    """A valid token and what it stands for (recomputed, never stored)."""

    token: str
    payload: TokenPayload
    user: Ref
    project: Ref | None
    roles: tuple[Ref, ...]
    app_credential: Ref | None = None

    @property
    def role_names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.roles)


def unauthorized(detail: str) -> NotAuthenticated:
    """Keystone says as little as possible on a failed authentication."""
    return NotAuthenticated(detail, user_message=UNAUTHORIZED)


def implied(names: set[str]) -> set[str]:
    out = set(names)
    todo = list(names)
    while todo:
        for more in IMPLIES.get(todo.pop(), ()):
            if more not in out:
                out.add(more)
                todo.append(more)
    return out


def _obj(value, what: str) -> dict:
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be an object", user_message=f"Invalid input for field '{what}'.")
    return value


def _str(container: dict, key: str, what: str) -> str | None:
    value = container.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidInput(f"{what}.{key} must be a non-empty string",
                           user_message=f"Invalid input for field '{what}.{key}'.")
    return value


def check_name(name, what: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name) or name != name.strip():
        raise InvalidInput(f"{what} name {name!r}: 1 to 255 printable characters, no surrounding blanks")
    return name


class IdentityService:
    def __init__(self, config: IdentityConfig, db: Database, *, clock: Callable[[], datetime],
                 keys: KeyRepository | None = None):
        self.config = config
        self.db = db
        self.clock = clock
        self.keys = keys or KeyRepository(config.key_repository, config.max_active_keys)
        #: Decrypted payloads by token, for the keys ``_payloads_of`` (see _payload).
        self._payloads: dict[str, TokenPayload] = {}
        self._payloads_of = None

    # --- issuing tokens ---------------------------------------------------------------

    def authenticate(self, auth: object) -> TokenInfo:
        """``POST /v3/auth/tokens``'s ``auth`` object: a new token, or 401."""
        auth = _obj(auth, "auth")
        identity = _obj(auth.get("identity"), "identity")
        methods = identity.get("methods")
        if (not isinstance(methods, list) or len(methods) != 1 or methods[0] not in METHODS):
            raise InvalidInput(f"identity.methods {methods!r}: one of {METHODS}",
                               user_message="Invalid input for field 'identity.methods'.")
        method = methods[0]
        data = _obj(identity.get(method), method)
        scope = auth.get("scope")
        app_credential = None
        if method == "password":
            user = self._password(_obj(data.get("user"), "password.user"))
        elif method == "application_credential":
            app_credential = self._app_credential_auth(data)
            user = self._user_or_401(app_credential.user_id)
            if scope is not None:
                wanted = self._scope_project(scope)
                if wanted.id != app_credential.project_id:
                    raise unauthorized("an application credential's token is scoped to its own project")
        else:
            presented = self.validate(_str(data, "id", "token") or "")
            user = self._user_or_401(presented.user.id)
            if presented.app_credential is not None:
                raise unauthorized("a token from an application credential cannot be rescoped")
            if scope is None and presented.project is not None:
                scope = {"project": {"id": presented.project.id}}
        now = self.clock()
        if app_credential is not None:
            project_id = app_credential.project_id
        elif scope is not None:
            project_id = self._scope_project(scope).id
        else:
            project_id = ""
        payload = TokenPayload(
            user_id=user.id, project_id=project_id, methods=(method,), issued_at=now,
            expires_at=now + timedelta(seconds=self.config.token_expiration),
            audit_id=token_format.new_audit_id(),
            app_credential_id=app_credential.id if app_credential is not None else None,
        )
        if app_credential is not None and app_credential.expires_at is not None:
            # A token never outlives the credential it came from.
            payload = dataclasses.replace(payload, expires_at=min(payload.expires_at, app_credential.expires_at))
        # Roles (and so whether the user may act on the project) as validation sees them.
        return self._describe(token_format.encode(self.keys.fernet(), payload), payload)

    def _password(self, data: dict) -> IdentityUser:
        password = data.get("password")
        if not isinstance(password, str):
            raise InvalidInput("password.user.password must be a string",
                               user_message="Invalid input for field 'password.user.password'.")
        user = self._find_user(data)
        now = self.clock()
        if user is not None and user.locked_until is not None and now < user.locked_until:
            # Refused without checking: guessing goes no faster than the back-off.
            raise unauthorized(f"user {user.id} is locked out until {user.locked_until}")
        ok = hashing.verify(user.password_hash if user is not None else None, password)
        if user is None:
            raise unauthorized("no such user")
        self._count_attempt(user.id, ok)
        if not ok:
            raise unauthorized(f"wrong password for user {user.id}")
        if not user.enabled:
            raise unauthorized(f"user {user.id} is disabled")
        return user

    def _count_attempt(self, user_id: str, ok: bool) -> None:
        cfg = self.config
        with self.db.write() as s:
            user = identity_db.user(s, user_id)
            if user is None:
                return
            if ok:
                user.failed_attempts, user.locked_until = 0, None
                return
            user.failed_attempts += 1
            beyond = user.failed_attempts - cfg.lockout_failure_attempts
            if beyond >= 0:
                delay = min(cfg.lockout_duration * 2 ** min(beyond, 20), MAX_LOCKOUT_DURATION)
                user.locked_until = self.clock() + timedelta(seconds=delay)

    def _find_user(self, data: dict) -> IdentityUser | None:
        user_id, name = _str(data, "id", "user"), _str(data, "name", "user")
        with self.db.read() as s:
            if user_id is not None:
                return identity_db.user(s, user_id)
            if name is None:
                raise InvalidInput("user needs an id, or a name and a domain",
                                   user_message="Invalid input for field 'user': an id or a name is required.")
            domain = self._domain(data.get("domain"))
            if domain is None:
                return None
            return identity_db.user_by_name(s, name, domain)

    def _domain(self, domain) -> str | None:
        """The domain id a name is looked up in: None when it is not ours."""
        domain = _obj(domain, "domain") if domain is not None else None
        if domain is None:
            raise InvalidInput("a name needs its domain", user_message="Invalid input for field 'domain'.")
        domain_id, name = _str(domain, "id", "domain"), _str(domain, "name", "domain")
        if domain_id is None and name is None:
            raise InvalidInput("domain needs an id or a name", user_message="Invalid input for field 'domain'.")
        if domain_id is not None:
            return DOMAIN_ID if domain_id == DOMAIN_ID else None
        return DOMAIN_ID if name == DOMAIN_NAME else None

    def _app_credential_auth(self, data: dict) -> IdentityAppCredential:
        secret = data.get("secret")
        if not isinstance(secret, str):
            raise InvalidInput("application_credential.secret must be a string",
                               user_message="Invalid input for field 'application_credential.secret'.")
        credential_id, name = _str(data, "id", "application_credential"), _str(data, "name", "application_credential")
        if credential_id is None and name is None:
            raise InvalidInput("application_credential needs an id, or a name and a user",
                               user_message="Invalid input for field 'application_credential'.")
        user = None if credential_id else self._find_user(_obj(data.get("user"), "application_credential.user"))
        with self.db.read() as s:
            if credential_id is not None:
                credential = identity_db.app_credential(s, credential_id)
            else:
                credential = identity_db.app_credential_by_name(s, user.id, name) if user else None
        ok = hashing.verify(credential.secret_hash if credential is not None else None, secret)
        if credential is None or not ok:
            raise unauthorized("unknown application credential or wrong secret")
        if credential.expires_at is not None and self.clock() >= credential.expires_at:
            raise unauthorized(f"application credential {credential.id} has expired")
        return credential

    def _user_or_401(self, user_id: str) -> IdentityUser:
        with self.db.read() as s:
            user = identity_db.user(s, user_id)
        if user is None or not user.enabled:
            raise unauthorized(f"user {user_id} is gone or disabled")
        return user

    def _scope_project(self, scope) -> IdentityProject:
        scope = _obj(scope, "scope")
        wanted = _obj(scope.get("project"), "scope.project")
        project_id, name = _str(wanted, "id", "project"), _str(wanted, "name", "project")
        with self.db.read() as s:
            if project_id is not None:
                project = identity_db.project(s, project_id)
            elif name is not None:
                domain = self._domain(wanted.get("domain"))
                project = identity_db.project_by_name(s, name, domain) if domain else None
            else:
                raise InvalidInput("scope.project needs an id, or a name and a domain",
                                   user_message="Invalid input for field 'scope.project'.")
        if project is None or not project.enabled:
            raise unauthorized("unknown or disabled project in scope")
        return project

    # --- validating and revoking ------------------------------------------------------

    def validate(self, token: str) -> TokenInfo:
        """The token's current meaning, or 401 (not ours, tampered, expired, revoked,
        or its user, project, roles or application credential gone)."""
        payload = self._payload(token) if token else None
        if payload is None:
            raise unauthorized("not a valid token")
        if self.clock() >= payload.expires_at:
            raise unauthorized(f"token {payload.audit_id} expired at {payload.expires_at}")
        return self._describe(token, payload)

    def _payload(self, token: str) -> TokenPayload | None:
        """The token's payload, decrypted once per set of keys: a payload is a
        pure function of the token and the keys (its expiry and everything it
        stands for are checked at each validation), and a client sends the same
        token with every request. Tokens that do not decrypt are not kept."""
        fernet = self.keys.fernet()
        if fernet is not self._payloads_of:  # keys rotated: a removed key must end its tokens
            self._payloads, self._payloads_of = {}, fernet
        payloads = self._payloads
        payload = payloads.get(token)
        if payload is None:
            payload = token_format.decode(fernet, token)
            if payload is not None:
                if len(payloads) >= PAYLOAD_CACHE_SIZE:
                    payloads.clear()  # simpler than LRU; refilled by the clients still active
                payloads[token] = payload
        return payload

    def _describe(self, token: str, payload: TokenPayload) -> TokenInfo:
        # One statement, outside a transaction (every API request with one of
        # our tokens comes here; see shareflow.db.identity.token_subject).
        with self.db.snapshot() as conn:
            found = identity_db.token_subject(
                conn, audit_id=payload.audit_id, user_id=payload.user_id,
                project_id=payload.project_id or None, credential_id=payload.app_credential_id)
        if found.revoked:
            raise unauthorized(f"token {payload.audit_id} was revoked")
        if found.user_name is None or not found.user_enabled:
            raise unauthorized(f"user {payload.user_id} is gone or disabled")
        user = Ref(payload.user_id, found.user_name)
        if not payload.project_id:
            return TokenInfo(token=token, payload=payload, user=user, project=None, roles=())
        if found.project_name is None or not found.project_enabled:
            raise unauthorized(f"project {payload.project_id} is gone or disabled")
        names = implied(found.assigned)
        credential_ref = None
        if payload.app_credential_id:
            if found.credential_user_id is None or found.credential_user_id != payload.user_id:
                raise unauthorized(f"application credential {payload.app_credential_id} is gone")
            names &= implied(set(filter(None, found.credential_roles.split(","))))
            credential_ref = Ref(payload.app_credential_id, found.credential_name)
        if not names:
            raise unauthorized(f"user {payload.user_id} has no role on project {payload.project_id}")
        roles = tuple(Ref(role_id, name) for role_id, name in found.roles if name in names)
        return TokenInfo(token=token, payload=payload, user=user,
                         project=Ref(payload.project_id, found.project_name), roles=roles,
                         app_credential=credential_ref)

    def revoke(self, info: TokenInfo) -> None:
        with self.db.write() as s:
            identity_db.revoke(s, info.payload.audit_id, info.payload.expires_at, self.clock())

    # --- users, projects, roles ------------------------------------------------------

    def bootstrap_admin(self, password: str, *, user: str = "admin", project: str = "admin") -> bool:
        """An ``admin`` user with the admin role on project ``admin``, once.
        Returns whether it was created now."""
        with self.db.read() as s:
            if identity_db.user_by_name(s, user, DOMAIN_ID) is not None:
                return False
            existing = identity_db.project_by_name(s, project, DOMAIN_ID)
        project_row = existing or self.create_project(project, description="shareflow's admin project")
        created = self.create_user(user, password)
        self.add_role(created.id, project_row.id, "admin")
        return True

    def create_user(self, name: str, password: str | None, *, enabled: bool = True) -> IdentityUser:
        name = check_name(name, "user")
        if password is not None and (not isinstance(password, str) or not password):
            raise InvalidInput("a password must be a non-empty string")
        hashed = hashing.hash_secret(password) if password is not None else None
        with self.db.write() as s:
            if identity_db.user_by_name(s, name, DOMAIN_ID) is not None:
                raise Conflict(f"user {name} exists", user_message=f"Duplicate entry: user {name} exists.")
            user = IdentityUser(id=uuid.uuid4().hex, name=name, domain_id=DOMAIN_ID, password_hash=hashed,
                                enabled=enabled, failed_attempts=0, created_at=self.clock())
            s.add(user)
        return user

    def update_user(self, ref: str, *, password: str | None = None, enabled: bool | None = None,
                    name: str | None = None) -> IdentityUser:
        hashed = hashing.hash_secret(password) if password else None
        with self.db.write() as s:
            user = self._user(s, ref)
            if hashed is not None:
                user.password_hash, user.failed_attempts, user.locked_until = hashed, 0, None
            if enabled is not None:
                user.enabled = enabled
            if name is not None and name != user.name:
                if identity_db.user_by_name(s, check_name(name, "user"), DOMAIN_ID) is not None:
                    raise Conflict(f"user {name} exists", user_message=f"Duplicate entry: user {name} exists.")
                user.name = name
        return user

    def users(self) -> list[IdentityUser]:
        with self.db.read() as s:
            return identity_db.users(s)

    def user(self, ref: str) -> IdentityUser:
        with self.db.read() as s:
            return self._user(s, ref)

    def delete_user(self, ref: str) -> IdentityUser:
        with self.db.write() as s:
            user = self._user(s, ref)
            s.delete(user)
        return user

    def create_project(self, name: str, *, description: str | None = None, enabled: bool = True) -> IdentityProject:
        name = check_name(name, "project")
        if len(name) > 64:
            raise InvalidInput(f"project name {name!r} is longer than 64 characters")
        with self.db.write() as s:
            if identity_db.project_by_name(s, name, DOMAIN_ID) is not None:
                raise Conflict(f"project {name} exists", user_message=f"Duplicate entry: project {name} exists.")
            project = IdentityProject(id=uuid.uuid4().hex, name=name, domain_id=DOMAIN_ID,
                                      description=description, enabled=enabled, created_at=self.clock())
            s.add(project)
        return project

    def projects(self) -> list[IdentityProject]:
        with self.db.read() as s:
            return identity_db.projects(s)

    def project(self, ref: str) -> IdentityProject:
        with self.db.read() as s:
            return self._project(s, ref)

    def delete_project(self, ref: str) -> IdentityProject:
        with self.db.write() as s:
            project = self._project(s, ref)
            s.delete(project)
        return project

    def roles(self):
        with self.db.read() as s:
            return identity_db.roles(s)

    def role(self, ref: str):
        with self.db.read() as s:
            return self._role(s, ref)

    def add_role(self, user_ref: str, project_ref: str, role_ref: str) -> None:
        with self.db.write() as s:
            user, project, role = self._user(s, user_ref), self._project(s, project_ref), self._role(s, role_ref)
            identity_db.add_assignment(s, user.id, project.id, role.id, self.clock())

    def remove_role(self, user_ref: str, project_ref: str, role_ref: str) -> None:
        with self.db.write() as s:
            user, project, role = self._user(s, user_ref), self._project(s, project_ref), self._role(s, role_ref)
            identity_db.remove_assignment(s, user.id, project.id, role.id)

    def has_role(self, user_ref: str, project_ref: str, role_ref: str) -> bool:
        with self.db.read() as s:
            user, project, role = self._user(s, user_ref), self._project(s, project_ref), self._role(s, role_ref)
            return bool(identity_db.assignments(s, user_id=user.id, project_id=project.id, role_id=role.id))

    def assignments(self, *, user_ref: str | None = None, project_ref: str | None = None,
                    role_ref: str | None = None) -> list[tuple[IdentityUser, IdentityProject, object]]:
        """(user, project, role) rows, filtered by what is given."""
        with self.db.read() as s:
            rows = identity_db.assignments(
                s, user_id=self._user(s, user_ref).id if user_ref else None,
                project_id=self._project(s, project_ref).id if project_ref else None,
                role_id=self._role(s, role_ref).id if role_ref else None)
            return [(identity_db.user(s, a.user_id), identity_db.project(s, a.project_id),
                     identity_db.role(s, a.role_id)) for a in rows]

    # --- application credentials ---------------------------------------------------------

    def create_app_credential(self, user_ref: str, project_ref: str, name: str, *,
                              roles: list[str] | None = None, expires_at: datetime | None = None,
                              description: str | None = None, secret: str | None = None,
                              ) -> tuple[IdentityAppCredential, str]:
        """Returns the credential and its secret, the only time it exists in clear.
        ``roles`` default to all the user's roles on the project; asking for one
        the user does not have is a 400 (Keystone's "delegation" rule)."""
        name = check_name(name, "application credential")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise InvalidInput("an application credential's secret must be a non-empty string")
        secret = secret or secrets.token_urlsafe(APP_CREDENTIAL_SECRET_BYTES)
        if expires_at is not None and expires_at <= self.clock():
            raise InvalidInput(f"expires_at {expires_at} is in the past")
        hashed = hashing.hash_secret(secret)
        with self.db.write() as s:
            user, project = self._user(s, user_ref), self._project(s, project_ref)
            held = {r.name for r in identity_db.roles_on(s, user.id, project.id)}
            wanted = set(roles) if roles else held
            if not wanted or not wanted <= implied(held):
                raise InvalidInput(f"user {user.name} does not hold the role(s) {sorted(wanted - implied(held))} "
                                   f"on project {project.name}" if wanted else
                                   f"user {user.name} has no role on project {project.name}")
            if identity_db.app_credential_by_name(s, user.id, name) is not None:
                raise Conflict(f"application credential {name} exists",
                               user_message=f"Duplicate entry: application credential {name} exists.")
            credential = IdentityAppCredential(
                id=uuid.uuid4().hex, name=name, description=description, user_id=user.id, project_id=project.id,
                secret_hash=hashed, roles=",".join(sorted(wanted)), expires_at=expires_at, created_at=self.clock())
            s.add(credential)
        return credential, secret

    def app_credentials(self, user_ref: str | None = None) -> list[IdentityAppCredential]:
        with self.db.read() as s:
            return identity_db.app_credentials(s, self._user(s, user_ref).id if user_ref else None)

    def app_credential(self, ref: str, user_ref: str | None = None) -> IdentityAppCredential:
        with self.db.read() as s:
            return self._app_credential(s, ref, user_ref)

    def delete_app_credential(self, ref: str, user_ref: str | None = None) -> IdentityAppCredential:
        with self.db.write() as s:
            credential = self._app_credential(s, ref, user_ref)
            s.delete(credential)
        return credential

    # --- lookups by id or name ---------------------------------------------------------

    @staticmethod
    def _user(s, ref: str) -> IdentityUser:
        user = identity_db.user(s, ref) or identity_db.user_by_name(s, ref, DOMAIN_ID)
        if user is None:
            raise NotFound(f"Could not find user: {ref}.")
        return user

    @staticmethod
    def _project(s, ref: str) -> IdentityProject:
        project = identity_db.project(s, ref) or identity_db.project_by_name(s, ref, DOMAIN_ID)
        if project is None:
            raise NotFound(f"Could not find project: {ref}.")
        return project

    @staticmethod
    def _role(s, ref: str):
        role = identity_db.role(s, ref) or identity_db.role_by_name(s, ref)
        if role is None:
            raise NotFound(f"Could not find role: {ref}.")
        return role

    def _app_credential(self, s, ref: str, user_ref: str | None) -> IdentityAppCredential:
        user_id = self._user(s, user_ref).id if user_ref else None
        credential = identity_db.app_credential(s, ref)
        if credential is None and user_id is not None:
            credential = identity_db.app_credential_by_name(s, user_id, ref)
        if credential is None or (user_id is not None and credential.user_id != user_id):
            raise NotFound(f"Could not find application credential: {ref}.")
        return credential
