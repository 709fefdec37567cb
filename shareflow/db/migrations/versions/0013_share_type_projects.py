"""Project access lists of private share types (Manila's
``share_type_projects``): ``addProjectAccess`` / ``removeProjectAccess``,
``GET /types/{id}/share_type_access``, and a member sees and uses a private
type only when its project is on the list.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "share_type_projects",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("share_type_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.ForeignKeyConstraint(["share_type_id"], ["share_types.id"], ondelete="CASCADE",
                                name="fk_share_type_projects_share_type_id_share_types"),
        sa.PrimaryKeyConstraint("id", name="pk_share_type_projects"),
        sa.UniqueConstraint("share_type_id", "project_id", name="uq_share_type_projects_share_type_id"),
    )


def downgrade() -> None:
    op.drop_table("share_type_projects")
