"""Share groups (Manila's share group types with their group specs, share
types and project access; share groups; share group snapshots and their
members), and the group a share was created in.

Revision ID: 0015
Revises: 0013
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None

UUID = sa.String(36)


def _id_column():
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


def _group_type_fk():
    return sa.Column("share_group_type_id", UUID, sa.ForeignKey("share_group_types.id", ondelete="CASCADE"),
                     nullable=False)


def upgrade() -> None:
    op.create_table(
        "share_group_types",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("is_public", sa.Boolean, nullable=False),
        sa.Column("deleted_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime),
    )
    op.create_index("ix_share_group_types_name", "share_group_types", ["name"])
    op.create_table(
        "share_group_type_specs", _id_column(), _group_type_fk(),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.UniqueConstraint("share_group_type_id", "key", name="uq_share_group_type_specs_key"),
    )
    op.create_table(
        "share_group_type_share_types", _id_column(), _group_type_fk(),
        sa.Column("share_type_id", UUID, sa.ForeignKey("share_types.id"), nullable=False),
    )
    op.create_table(
        "share_group_type_projects", _id_column(), _group_type_fk(),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("share_group_type_id", "project_id",
                            name="uq_share_group_type_projects_share_group_type_id"),
    )
    op.create_table(
        "share_groups",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255)),
        sa.Column("name", sa.String(255)),
        sa.Column("description", sa.String(255)),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("share_group_type_id", UUID, sa.ForeignKey("share_group_types.id"), nullable=False),
        sa.Column("share_network_id", UUID),
        sa.Column("availability_zone", sa.String(255)),
        sa.Column("host", sa.String(255)),
        sa.Column("backend", sa.String(255)),
        sa.Column("source_share_group_snapshot_id", UUID),
        sa.Column("deleted_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime),
    )
    op.create_index("ix_share_groups_project_id", "share_groups", ["project_id"])
    op.create_table(
        "share_group_share_types", _id_column(),
        sa.Column("share_group_id", UUID, sa.ForeignKey("share_groups.id", ondelete="CASCADE"), nullable=False),
        sa.Column("share_type_id", UUID, sa.ForeignKey("share_types.id"), nullable=False),
    )
    op.create_table(
        "share_group_snapshots",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255)),
        sa.Column("share_group_id", UUID, sa.ForeignKey("share_groups.id"), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("description", sa.String(255)),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("deleted_at", sa.DateTime),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime),
    )
    op.create_table(
        "share_group_snapshot_members",
        sa.Column("id", UUID, primary_key=True),
        sa.Column("share_group_snapshot_id", UUID,
                  sa.ForeignKey("share_group_snapshots.id", ondelete="CASCADE"), nullable=False),
        sa.Column("share_id", UUID, sa.ForeignKey("shares.id"), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("share_proto", sa.String(16), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("provider_location", sa.String(255)),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime),
    )
    # A plain column (no foreign key): SQLite adds it without rebuilding ``shares``.
    op.add_column("shares", sa.Column("share_group_id", UUID))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # In place (SQLite >= 3.35): a batch rebuild would drop ``shares``,
        # and under foreign keys that drop cascades to its children's rows.
        op.execute("ALTER TABLE shares DROP COLUMN share_group_id")
    else:
        op.drop_column("shares", "share_group_id")
    for table in ("share_group_snapshot_members", "share_group_snapshots", "share_group_share_types",
                  "share_groups", "share_group_type_projects", "share_group_type_share_types",
                  "share_group_type_specs", "share_group_types"):
        op.drop_table(table)
