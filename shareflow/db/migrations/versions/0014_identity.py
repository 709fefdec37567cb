"""Built-in identity, Keystone v3 compatible: users, projects, roles (admin,
member and reader seeded), role assignments, application credentials and
token revocations (by audit id).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30
"""

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ID = 64
SEEDED_ROLES = ("admin", "member", "reader")


def upgrade() -> None:
    op.create_table(
        "identity_projects",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("domain_id", sa.String(64), nullable=False),
        sa.Column("description", sa.String(255)),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_identity_projects"),
        sa.UniqueConstraint("domain_id", "name", name="uq_identity_projects_domain_id_name"),
    )
    op.create_table(
        "identity_users",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("domain_id", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("failed_attempts", sa.Integer, nullable=False),
        sa.Column("locked_until", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_identity_users"),
        sa.UniqueConstraint("domain_id", "name", name="uq_identity_users_domain_id_name"),
    )
    roles = op.create_table(
        "identity_roles",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_identity_roles"),
        sa.UniqueConstraint("name", name="uq_identity_roles_name"),
    )
    op.create_table(
        "identity_role_assignments",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(ID), nullable=False),
        sa.Column("project_id", sa.String(ID), nullable=False),
        sa.Column("role_id", sa.String(ID), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["identity_users.id"], ondelete="CASCADE",
                                name="fk_identity_role_assignments_user_id_identity_users"),
        sa.ForeignKeyConstraint(["project_id"], ["identity_projects.id"], ondelete="CASCADE",
                                name="fk_identity_role_assignments_project_id_identity_projects"),
        sa.ForeignKeyConstraint(["role_id"], ["identity_roles.id"], ondelete="CASCADE",
                                name="fk_identity_role_assignments_role_id_identity_roles"),
        sa.PrimaryKeyConstraint("id", name="pk_identity_role_assignments"),
        sa.UniqueConstraint("user_id", "project_id", "role_id", name="uq_identity_role_assignments_user_id"),
    )
    op.create_table(
        "identity_app_credentials",
        sa.Column("id", sa.String(ID), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255)),
        sa.Column("user_id", sa.String(ID), nullable=False),
        sa.Column("project_id", sa.String(ID), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("roles", sa.String(255), nullable=False),
        sa.Column("expires_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["identity_users.id"], ondelete="CASCADE",
                                name="fk_identity_app_credentials_user_id_identity_users"),
        sa.ForeignKeyConstraint(["project_id"], ["identity_projects.id"], ondelete="CASCADE",
                                name="fk_identity_app_credentials_project_id_identity_projects"),
        sa.PrimaryKeyConstraint("id", name="pk_identity_app_credentials"),
        sa.UniqueConstraint("user_id", "name", name="uq_identity_app_credentials_user_id"),
    )
    op.create_table(
        "identity_revocations",
        sa.Column("audit_id", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("audit_id", name="pk_identity_revocations"),
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    op.bulk_insert(roles, [{"id": uuid.uuid4().hex, "name": name, "created_at": now} for name in SEEDED_ROLES])


def downgrade() -> None:
    for table in ("identity_revocations", "identity_app_credentials", "identity_role_assignments",
                  "identity_roles", "identity_users", "identity_projects"):
        op.drop_table(table)
