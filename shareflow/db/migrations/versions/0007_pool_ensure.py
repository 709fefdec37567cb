"""When each pool's start-up ensure (volumes mounted, exports served, share
servers restored) last began and finished, how long it took and what it
found, for ``shareflow backend show``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pools") as batch:
        batch.add_column(sa.Column("ensure_started_at", sa.DateTime()))
        batch.add_column(sa.Column("ensure_finished_at", sa.DateTime()))
        batch.add_column(sa.Column("ensure_seconds", sa.Float()))
        batch.add_column(sa.Column("ensure_volumes", sa.Integer()))
        batch.add_column(sa.Column("ensure_failures", sa.Integer()))


def downgrade() -> None:
    with op.batch_alter_table("pools") as batch:
        for name in ("ensure_failures", "ensure_volumes", "ensure_seconds", "ensure_finished_at",
                     "ensure_started_at"):
            batch.drop_column(name)
