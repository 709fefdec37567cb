"""Security services (Manila's LDAP / Kerberos / Active Directory records) and
their association with share networks; share network subnets keep the
``neutron_net_id`` / ``neutron_subnet_id`` a client gave as given, whether or
not they name a provider network this deployment knows (Manila accepts any and
fails only when a share server must be built there).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

U = 36


def upgrade() -> None:
    op.create_table(
        "security_services",
        sa.Column("id", sa.String(U), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("description", sa.String(255)),
        sa.Column("dns_ip", sa.String(64)),
        sa.Column("ou", sa.String(255)),
        sa.Column("server", sa.String(255)),
        sa.Column("domain", sa.String(255)),
        sa.Column("user", sa.String(255)),
        sa.Column("password", sa.String(255)),
        sa.Column("default_ad_site", sa.String(255)),
        sa.Column("deleted_at", sa.DateTime()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime()),
        sa.PrimaryKeyConstraint("id", name="pk_security_services"),
    )
    op.create_index("ix_security_services_project_id", "security_services", ["project_id"])
    op.create_table(
        "share_network_security_services",
        sa.Column("share_network_id", sa.String(U), nullable=False),
        sa.Column("security_service_id", sa.String(U), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["share_network_id"], ["share_networks.id"],
            name="fk_sn_security_services_share_network_id",
        ),
        sa.ForeignKeyConstraint(
            ["security_service_id"], ["security_services.id"],
            name="fk_sn_security_services_security_service_id",
        ),
        sa.PrimaryKeyConstraint("share_network_id", "security_service_id",
                                name="pk_share_network_security_services"),
    )
    op.create_index("ix_sn_security_services_security_service_id",
                    "share_network_security_services", ["security_service_id"])
    # Plain ADD COLUMN (no table rebuild on SQLite): the ids as the client gave them.
    op.add_column("share_network_subnets", sa.Column("neutron_net_id", sa.String(255)))
    op.add_column("share_network_subnets", sa.Column("neutron_subnet_id", sa.String(255)))


def downgrade() -> None:
    with op.batch_alter_table("share_network_subnets") as batch:
        batch.drop_column("neutron_subnet_id")
        batch.drop_column("neutron_net_id")
    op.drop_index("ix_sn_security_services_security_service_id",
                  table_name="share_network_security_services")
    op.drop_table("share_network_security_services")
    op.drop_index("ix_security_services_project_id", table_name="security_services")
    op.drop_table("security_services")
