"""Provider networks and their allocations, share networks, share servers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

U = 36


def upgrade() -> None:
    op.create_table(
        "provider_networks",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("subnet_id", sa.String(U), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("bridge", sa.String(15), nullable=False),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("gateway", sa.String(64)),
        sa.Column("mtu", sa.Integer(), nullable=False),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_provider_networks"),
        sa.UniqueConstraint("subnet_id", name="uq_provider_networks_subnet_id"),
    )
    op.create_index("ix_provider_networks_name", "provider_networks", ["name"])
    op.create_table(
        "allocation_ranges",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("network_id", sa.String(U), nullable=False),
        sa.Column("first", sa.String(64), nullable=False),
        sa.Column("last", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_id"], ["provider_networks.id"], ondelete="CASCADE",
            name="fk_allocation_ranges_network_id_provider_networks",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_allocation_ranges"),
    )
    op.create_table(
        "network_allocations",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("network_id", sa.String(U), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("share_server_id", sa.String(U)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["network_id"], ["provider_networks.id"],
            name="fk_network_allocations_network_id_provider_networks",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_network_allocations"),
        sa.UniqueConstraint("network_id", "address", name="uq_network_allocations_address"),
    )
    op.create_table(
        "share_networks",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255)),
        sa.Column("name", sa.String(255)),
        sa.Column("description", sa.String(255)),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_share_networks"),
    )
    op.create_index("ix_share_networks_project_id", "share_networks", ["project_id"])
    op.create_table(
        "share_network_subnets",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("share_network_id", sa.String(U), nullable=False),
        sa.Column("provider_network_id", sa.String(U)),
        sa.Column("availability_zone", sa.String(255)),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.ForeignKeyConstraint(
            ["share_network_id"], ["share_networks.id"],
            name="fk_share_network_subnets_share_network_id_share_networks",
        ),
        sa.ForeignKeyConstraint(
            ["provider_network_id"], ["provider_networks.id"],
            name="fk_share_network_subnets_provider_network_id_provider_networks",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_share_network_subnets"),
    )
    op.create_table(
        "share_servers",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("share_network_id", sa.String(U), nullable=False),
        sa.Column("share_network_subnet_id", sa.String(U), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("address", sa.String(64)),
        sa.Column("allocation_id", sa.String(U)),
        sa.Column("is_auto_deletable", sa.Boolean(), nullable=False),
        sa.Column("unused_since", sa.DateTime()),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_share_servers"),
    )
    op.create_index("ix_share_servers_share_network_id", "share_servers", ["share_network_id"])
    with op.batch_alter_table("shares") as batch:
        batch.add_column(sa.Column("share_server_id", sa.String(U)))


def downgrade() -> None:
    # In place, as in 0002's downgrade: a batch rebuild of ``shares`` would
    # take its children's rows with it (the column has no foreign key or
    # index, so SQLite can drop it in place).
    op.drop_column("shares", "share_server_id")
    for table in ("share_servers", "share_network_subnets", "share_networks",
                  "network_allocations", "allocation_ranges", "provider_networks"):
        op.drop_table(table)
