"""Initial schema: share types, shares, export locations, access rules, jobs,
user messages, pools.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

U = 36


def upgrade() -> None:
    op.create_table(
        "share_types",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255)),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_share_types"),
    )
    op.create_index("ix_share_types_name", "share_types", ["name"])
    op.create_table(
        "share_type_extra_specs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("share_type_id", sa.String(U), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["share_type_id"], ["share_types.id"], ondelete="CASCADE",
            name="fk_share_type_extra_specs_share_type_id_share_types",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_share_type_extra_specs"),
        sa.UniqueConstraint("share_type_id", "key", name="uq_share_type_extra_specs_key"),
    )
    op.create_table(
        "shares",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255)),
        sa.Column("name", sa.String(255)),
        sa.Column("description", sa.String(255)),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("share_proto", sa.String(16), nullable=False),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("access_rules_status", sa.String(32), nullable=False),
        sa.Column("share_type_id", sa.String(U)),
        sa.Column("host", sa.String(255)),
        sa.Column("backend", sa.String(64)),
        sa.Column("availability_zone", sa.String(255)),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("snapshot_id", sa.String(U)),
        sa.Column("share_network_id", sa.String(U)),
        sa.Column("task_state", sa.String(64)),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.ForeignKeyConstraint(
            ["share_type_id"], ["share_types.id"], name="fk_shares_share_type_id_share_types"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_shares"),
    )
    op.create_index("ix_shares_project_id", "shares", ["project_id"])
    op.create_index("ix_shares_status", "shares", ["status"])
    op.create_table(
        "share_metadata",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("share_id", sa.String(U), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(1023), nullable=False),
        sa.ForeignKeyConstraint(
            ["share_id"], ["shares.id"], ondelete="CASCADE", name="fk_share_metadata_share_id_shares"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_share_metadata"),
        sa.UniqueConstraint("share_id", "key", name="uq_share_metadata_key"),
    )
    op.create_table(
        "export_locations",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("share_id", sa.String(U), nullable=False),
        sa.Column("path", sa.String(2048), nullable=False),
        sa.Column("is_admin_only", sa.Boolean(), nullable=False),
        sa.Column("preferred", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.ForeignKeyConstraint(
            ["share_id"], ["shares.id"], ondelete="CASCADE", name="fk_export_locations_share_id_shares"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_export_locations"),
    )
    op.create_table(
        "access_rules",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("share_id", sa.String(U), nullable=False),
        sa.Column("access_type", sa.String(32), nullable=False),
        sa.Column("access_to", sa.String(255), nullable=False),
        sa.Column("access_level", sa.String(8), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.ForeignKeyConstraint(
            ["share_id"], ["shares.id"], ondelete="CASCADE", name="fk_access_rules_share_id_shares"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_access_rules"),
    )
    op.create_index("ix_access_rules_share_id", "access_rules", ["share_id"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("board_job_id", sa.String(U)),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(U), nullable=False),
        sa.Column("project_id", sa.String(255)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(255)),
        sa.Column("logbook_id", sa.String(U), nullable=False),
        sa.Column("flow_detail_id", sa.String(U), nullable=False),
        sa.Column("failed_step", sa.String(255)),
        sa.Column("failure", sa.Text()),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("finished_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
    )
    op.create_index("ix_jobs_resource_id", "jobs", ["resource_id"])
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_table(
        "messages",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("request_id", sa.String(64)),
        sa.Column("resource_type", sa.String(32), nullable=False),
        sa.Column("resource_id", sa.String(U), nullable=False),
        sa.Column("action_id", sa.String(8), nullable=False),
        sa.Column("detail_id", sa.String(8), nullable=False),
        sa.Column("message_level", sa.String(16), nullable=False),
        sa.Column("user_message", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime()),
        sa.Column("deleted_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
    )
    op.create_index("ix_messages_project_id", "messages", ["project_id"])
    op.create_index("ix_messages_resource_id", "messages", ["resource_id"])
    op.create_table(
        "pools",
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("pool", sa.String(64), nullable=False),
        sa.Column("driver_handles_share_servers", sa.Boolean(), nullable=False),
        sa.Column("total_capacity_gb", sa.Integer(), nullable=False),
        sa.Column("free_capacity_gb", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("host", name="pk_pools"),
    )


def downgrade() -> None:
    for table in (
        "pools", "messages", "jobs", "access_rules", "export_locations",
        "share_metadata", "shares", "share_type_extra_specs", "share_types",
    ):
        op.drop_table(table)
