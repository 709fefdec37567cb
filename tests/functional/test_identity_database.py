"""The built-in identity's tables on SQLite and PostgreSQL (migration 0014):
seeded roles, deletes cascading to assignments and application credentials,
revocations recorded once and pruned after their token's expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from shareflow.db.models import IdentityAppCredential, IdentityRevocation, IdentityRoleAssignment
from shareflow.exceptions import Conflict, NotAuthenticated
from shareflow.services.identity import IdentityService
from shareflow.wiring import utcnow
from shareflow.config import IdentityConfig


def _count(db, model) -> int:
    with db.read() as s:
        return s.scalar(sa.select(sa.func.count()).select_from(model))


def _password_auth(user: str, password: str, project: str) -> dict:
    return {"identity": {"methods": ["password"], "password": {
        "user": {"name": user, "domain": {"id": "default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}


def test_roles_users_and_cascades(db, tmp_path):
    identity = IdentityService(IdentityConfig(key_repository=tmp_path / "keys"), db, clock=utcnow)
    assert [r.name for r in identity.roles()] == ["admin", "member", "reader"]
    assert identity.bootstrap_admin("pw") and not identity.bootstrap_admin("other")
    info = identity.authenticate(_password_auth("admin", "pw", "admin"))
    assert info.role_names == ("admin", "member", "reader")
    with pytest.raises(Conflict):
        identity.create_user("admin", "x")
    identity.create_app_credential("admin", "admin", "c")
    assert _count(db, IdentityRoleAssignment) == 1 and _count(db, IdentityAppCredential) == 1
    identity.delete_user("admin")
    assert _count(db, IdentityRoleAssignment) == 0 and _count(db, IdentityAppCredential) == 0
    with pytest.raises(NotAuthenticated):
        identity.validate(info.token)


def test_revocations_are_recorded_once_and_pruned(db, tmp_path):
    now = [utcnow()]
    identity = IdentityService(IdentityConfig(key_repository=tmp_path / "keys"), db, clock=lambda: now[0])
    identity.bootstrap_admin("pw")
    first = identity.authenticate(_password_auth("admin", "pw", "admin"))
    identity.revoke(first)
    identity.revoke(first)
    assert _count(db, IdentityRevocation) == 1
    now[0] += timedelta(seconds=IdentityConfig().token_expiration + 1)
    second = identity.authenticate(_password_auth("admin", "pw", "admin"))
    identity.revoke(second)
    with db.read() as s:
        assert list(s.scalars(sa.select(IdentityRevocation.audit_id))) == [second.payload.audit_id]
