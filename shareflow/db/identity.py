"""Queries on the built-in identity's tables (users, projects, roles, role
assignments, application credentials, revoked tokens)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

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
