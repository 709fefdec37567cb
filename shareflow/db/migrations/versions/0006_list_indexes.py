"""Indexes for the list filters and orders clients use.

* shares by name (manila-csi finds a volume's share by name), snapshots by
  name (manila-csi finds snapshots the same way);
* a project's live shares newest first (Horizon's pages: ``limit``/``offset``,
  ``sort_key=created_at``), and every project's for ``all_tenants``: the index
  gives the order, so a page reads its rows instead of sorting the table;
* export locations by share: every share shown reads its locations.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_shares_name", "shares", ["name"]),
    ("ix_shares_project_id_deleted_at_created_at", "shares", ["project_id", "deleted_at", "created_at"]),
    ("ix_shares_deleted_at_created_at", "shares", ["deleted_at", "created_at"]),
    ("ix_share_snapshots_name", "share_snapshots", ["name"]),
    ("ix_export_locations_share_id", "export_locations", ["share_id"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
