"""The built-in identity's tables on SQLite and PostgreSQL (migration 0014):
seeded roles, deletes cascading to assignments and application credentials,
revocations recorded once and pruned after their token's expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from shareflow.db.models import (
    IdentityAppCredential,
    IdentityProject,
    IdentityRevocation,
    IdentityRoleAssignment,
)
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


def test_a_tokens_validation_is_one_statement_and_sees_every_change_at_once(db, tmp_path):
    """Each API request with an identity token is validated afresh, in ONE
    statement outside any transaction (was five in a read transaction); what
    ends a token - revocation, its user or project disabled or gone, its role
    removed, its application credential deleted - ends it at the next request."""
    identity = IdentityService(IdentityConfig(key_repository=tmp_path / "keys"), db, clock=utcnow)
    identity.bootstrap_admin("pw")
    project = identity.create_project("p1")
    identity.create_user("u1", "pw")
    identity.add_role("u1", "p1", "member")
    token = identity.authenticate(_password_auth("u1", "pw", "p1")).token

    sent: list[tuple[str, bool]] = []

    def after(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, conn.connection.dbapi_connection.autocommit
                     if db.engine.dialect.name == "postgresql"
                     else not conn.connection.dbapi_connection.in_transaction))

    sa.event.listen(db.engine, "after_cursor_execute", after)
    try:
        info = identity.validate(token)
    finally:
        sa.event.remove(db.engine, "after_cursor_execute", after)
    assert len(sent) == 1 and sent[0][1] is True, sent
    assert (info.user.name, info.project.id, info.project.name) == ("u1", project.id, "p1")
    assert info.role_names == ("member", "reader")  # implied, in the roles' order

    def refused(token: str) -> str:
        with pytest.raises(NotAuthenticated) as caught:
            identity.validate(token)
        return str(caught.value)

    identity.remove_role("u1", "p1", "member")
    assert "no role" in refused(token)
    identity.add_role("u1", "p1", "admin")
    assert identity.validate(token).role_names == ("admin", "member", "reader")
    identity.update_user("u1", enabled=False)
    assert "disabled" in refused(token)
    identity.update_user("u1", enabled=True)
    with db.write() as s:
        s.execute(sa.update(IdentityProject).values(enabled=False))
    assert "project" in refused(token)
    with db.write() as s:
        s.execute(sa.update(IdentityProject).values(enabled=True))
    credential, secret = identity.create_app_credential("u1", "p1", "c", roles=["reader"])
    delegated = identity.authenticate({"identity": {"methods": ["application_credential"],
                                                    "application_credential": {"id": credential.id,
                                                                               "secret": secret}}})
    assert delegated.role_names == ("reader",) and delegated.app_credential.name == "c"
    identity.delete_app_credential(credential.id)
    assert "application credential" in refused(delegated.token)
    fresh = identity.authenticate(_password_auth("u1", "pw", "p1")).token
    identity.revoke(identity.validate(token))
    assert "revoked" in refused(token)
    assert identity.validate(fresh).user.name == "u1"
    identity.delete_user("u1")
    assert "gone" in refused(fresh)
