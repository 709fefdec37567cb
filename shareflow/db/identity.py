"""Queries on the built-in identity's tables (users, projects, roles, role
assignments, application credentials, revoked tokens)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db import json_rows
from shareflow.db.models import (
    IdentityAppCredential,
    IdentityProject,
    IdentityRevocation,
    IdentityRole,
    IdentityRoleAssignment,
    IdentityUser,
)
from shareflow.exceptions import NotFound


def user(session: Session, user_id: str) -> IdentityUser | None:
    return session.get(IdentityUser, user_id)


def user_by_name(session: Session, name: str, domain_id: str) -> IdentityUser | None:
    q = sa.select(IdentityUser).where(IdentityUser.name == name, IdentityUser.domain_id == domain_id)
    return session.scalars(q).first()


def users(session: Session) -> list[IdentityUser]:
    return list(session.scalars(sa.select(IdentityUser).order_by(IdentityUser.name)))


def project(session: Session, project_id: str) -> IdentityProject | None:
    return session.get(IdentityProject, project_id)


def project_by_name(session: Session, name: str, domain_id: str) -> IdentityProject | None:
    q = sa.select(IdentityProject).where(IdentityProject.name == name, IdentityProject.domain_id == domain_id)
    return session.scalars(q).first()


def projects(session: Session) -> list[IdentityProject]:
    return list(session.scalars(sa.select(IdentityProject).order_by(IdentityProject.name)))


def role(session: Session, role_id: str) -> IdentityRole | None:
    return session.get(IdentityRole, role_id)


def role_by_name(session: Session, name: str) -> IdentityRole | None:
    return session.scalars(sa.select(IdentityRole).where(IdentityRole.name == name)).first()


def roles(session: Session) -> list[IdentityRole]:
    return list(session.scalars(sa.select(IdentityRole).order_by(IdentityRole.name)))


def roles_on(session: Session, user_id: str, project_id: str) -> list[IdentityRole]:
    """The roles assigned (not implied) to a user on a project."""
    q = (sa.select(IdentityRole).join(IdentityRoleAssignment, IdentityRoleAssignment.role_id == IdentityRole.id)
         .where(IdentityRoleAssignment.user_id == user_id, IdentityRoleAssignment.project_id == project_id)
         .order_by(IdentityRole.name))
    return list(session.scalars(q))


def assignments(session: Session, *, user_id: str | None = None, project_id: str | None = None,
                role_id: str | None = None) -> list[IdentityRoleAssignment]:
    q = sa.select(IdentityRoleAssignment).order_by(IdentityRoleAssignment.id)
    if user_id is not None:
        q = q.where(IdentityRoleAssignment.user_id == user_id)
    if project_id is not None:
        q = q.where(IdentityRoleAssignment.project_id == project_id)
    if role_id is not None:
        q = q.where(IdentityRoleAssignment.role_id == role_id)
    return list(session.scalars(q))


def add_assignment(session: Session, user_id: str, project_id: str, role_id: str, now: datetime) -> None:
    if assignments(session, user_id=user_id, project_id=project_id, role_id=role_id):
        return  # Keystone's PUT is idempotent
    session.add(IdentityRoleAssignment(user_id=user_id, project_id=project_id, role_id=role_id, created_at=now))


def remove_assignment(session: Session, user_id: str, project_id: str, role_id: str) -> None:
    result = session.execute(sa.delete(IdentityRoleAssignment).where(
        IdentityRoleAssignment.user_id == user_id, IdentityRoleAssignment.project_id == project_id,
        IdentityRoleAssignment.role_id == role_id))
    if result.rowcount == 0:
        raise NotFound(f"user {user_id} has no role {role_id} on project {project_id}")


def app_credential(session: Session, credential_id: str) -> IdentityAppCredential | None:
    return session.get(IdentityAppCredential, credential_id)


def app_credential_by_name(session: Session, user_id: str, name: str) -> IdentityAppCredential | None:
    q = sa.select(IdentityAppCredential).where(IdentityAppCredential.user_id == user_id,
                                               IdentityAppCredential.name == name)
    return session.scalars(q).first()


def app_credentials(session: Session, user_id: str | None = None) -> list[IdentityAppCredential]:
    q = sa.select(IdentityAppCredential).order_by(IdentityAppCredential.name)
    if user_id is not None:
        q = q.where(IdentityAppCredential.user_id == user_id)
    return list(session.scalars(q))


def is_revoked(session: Session, audit_id: str) -> bool:
    return session.get(IdentityRevocation, audit_id) is not None


def revoke(session: Session, audit_id: str, expires_at: datetime, now: datetime) -> None:
    if session.get(IdentityRevocation, audit_id) is None:
        session.add(IdentityRevocation(audit_id=audit_id, expires_at=expires_at, created_at=now))
    # Tokens past their expiry fail validation anyway: their records can go.
    session.execute(sa.delete(IdentityRevocation).where(IdentityRevocation.expires_at < now))


# --- what a token stands for, in one statement --------------------------------------
#
# Every API request with a token of the built-in identity is validated afresh
# (a removed role, user, project or application credential, or a revoked
# token, ends its tokens at once). Read as five ORM statements in a read
# transaction, that cost ~1.5 ms of CPU per request, five times a share's GET;
# here it is one statement, built once per database, run outside any
# transaction (Database.snapshot): one statement is its own consistent snapshot.

_REVOCATION = IdentityRevocation.__table__
_USER = IdentityUser.__table__
_PROJECT = IdentityProject.__table__
_ROLE = IdentityRole.__table__
_ASSIGNMENT = IdentityRoleAssignment.__table__
_CREDENTIAL = IdentityAppCredential.__table__
AUDIT_ID, USER_ID, PROJECT_ID, CREDENTIAL_ID = "audit_id", "user_id", "project_id", "credential_id"


class TokenSubject:
    """What :func:`token_subject` read: None for a row that does not exist."""

    __slots__ = ("revoked", "user_name", "user_enabled", "project_name", "project_enabled",
                 "assigned", "credential_user_id", "credential_name", "credential_roles", "roles")

    def __init__(self, revoked, user_name, user_enabled, project_name, project_enabled, assigned,
                 credential_user_id, credential_name, credential_roles, roles):
        self.revoked, self.user_name, self.user_enabled = bool(revoked), user_name, user_enabled
        self.project_name, self.project_enabled = project_name, project_enabled
        #: The role names assigned (not implied) to the user on the project.
        self.assigned: set[str] = assigned
        self.credential_user_id, self.credential_name = credential_user_id, credential_name
        self.credential_roles = credential_roles
        #: Every role as (id, name), by name (as :func:`roles` lists them).
        self.roles: list[tuple[str, str]] = roles


_subject_statements: dict[str, sa.Select] = {}


def _one(column, *where) -> sa.ScalarSelect:
    return sa.select(column).where(*where).scalar_subquery()


def _subject_statement(dialect: str) -> sa.Select:
    stmt = _subject_statements.get(dialect)
    if stmt is not None:
        return stmt
    user = _USER.c.id == sa.bindparam(USER_ID)
    project = _PROJECT.c.id == sa.bindparam(PROJECT_ID)
    credential = _CREDENTIAL.c.id == sa.bindparam(CREDENTIAL_ID)
    assigned = (sa.select(json_rows.aggregate(dialect, [], [_ROLE.c.name]))
                .select_from(_ASSIGNMENT.join(_ROLE, _ROLE.c.id == _ASSIGNMENT.c.role_id))
                .where(_ASSIGNMENT.c.user_id == sa.bindparam(USER_ID),
                       _ASSIGNMENT.c.project_id == sa.bindparam(PROJECT_ID))
                .scalar_subquery())
    roles = sa.select(json_rows.aggregate(dialect, [_ROLE.c.id], [_ROLE.c.name])).scalar_subquery()
    stmt = _subject_statements[dialect] = sa.select(
        sa.exists().where(_REVOCATION.c.audit_id == sa.bindparam(AUDIT_ID)),
        _one(_USER.c.name, user), _one(_USER.c.enabled, user),
        _one(_PROJECT.c.name, project), _one(_PROJECT.c.enabled, project),
        assigned,
        _one(_CREDENTIAL.c.user_id, credential), _one(_CREDENTIAL.c.name, credential),
        _one(_CREDENTIAL.c.roles, credential),
        roles,
    )
    return stmt


def token_subject(conn: sa.Connection, *, audit_id: str, user_id: str, project_id: str | None,
                  credential_id: str | None) -> TokenSubject:
    """Whether a token is revoked, its user, project, the user's roles there,
    its application credential and the roles, all in ONE statement (see above)."""
    dialect = conn.dialect.name
    row = conn.execute(_subject_statement(dialect), {
        AUDIT_ID: audit_id, USER_ID: user_id, PROJECT_ID: project_id or "", CREDENTIAL_ID: credential_id or "",
    }).one()
    (revoked, user_name, user_enabled, project_name, project_enabled, assigned,
     credential_user, credential_name, credential_roles, roles) = row
    return TokenSubject(
        revoked, user_name, user_enabled, project_name, project_enabled,
        {name for name, in json_rows.decode(assigned, dialect, keys=1, keep_keys=True)} if project_id else set(),
        credential_user, credential_name, credential_roles,
        [(role_id, name) for name, role_id in json_rows.decode(roles, dialect, keys=1, keep_keys=True)]
        if project_id else [],
    )
