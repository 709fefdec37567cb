"""Metadata on access rules (Manila 2.45: ``share_access_rules_metadata``):
string keys and values per rule, created with the rule or set later through
``/share-access-rules/{id}/metadata``; they go with the rule's row.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_rule_metadata",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("access_id", sa.String(36), sa.ForeignKey("access_rules.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(1023), nullable=False),
        sa.UniqueConstraint("access_id", "key", name="uq_access_rule_metadata_key"),
    )


def downgrade() -> None:
    op.drop_table("access_rule_metadata")
