"""Snapshots, per-project quotas, and the size a resize in progress asks for.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

U = 36


def upgrade() -> None:
    op.create_table(
        "share_snapshots",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("share_id", sa.String(U), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255)),
        sa.Column("name", sa.String(255)),
        sa.Column("description", sa.String(255)),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("share_size", sa.Integer(), nullable=False),
        sa.Column("share_proto", sa.String(16), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("provider_location", sa.String(2048)),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.ForeignKeyConstraint(["share_id"], ["shares.id"], name="fk_share_snapshots_share_id_shares"),
        sa.PrimaryKeyConstraint("id", name="pk_share_snapshots"),
    )
    op.create_index("ix_share_snapshots_share_id", "share_snapshots", ["share_id"])
    op.create_index("ix_share_snapshots_project_id", "share_snapshots", ["project_id"])
    op.create_table(
        "quotas",
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("hard_limit", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("project_id", "resource", name="pk_quotas"),
    )
    with op.batch_alter_table("shares") as batch:
        batch.add_column(sa.Column("pending_size", sa.Integer()))


def downgrade() -> None:
    # A plain DROP COLUMN, in place on SQLite too (>= 3.35), not a batch
    # rebuild: dropping the old ``shares`` under foreign keys deletes its
    # rows first, which cascades to their metadata, export locations and
    # access rules, and fails on their snapshots.
    op.drop_column("shares", "pending_size")
    op.drop_table("quotas")
    op.drop_table("share_snapshots")
