"""Jobs an operator can steer: states that tell a clean revert from a failed
one, who asked, the job's inputs, the job it retries, and the steering
history.

``failed`` becomes ``reverted``, or ``revert_failed`` where the job's flow
ended FAILURE in TaskFlow's tables (an undo failed too).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

U = 36


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("user_id", sa.String(255)))
        batch.add_column(sa.Column("retry_of", sa.String(U)))
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("factory", sa.String(255)))
        batch.add_column(sa.Column("factory_kwargs", sa.Text()))
        batch.add_column(sa.Column("store", sa.Text()))
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_table(
        "job_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(U), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_state", sa.String(32)),
        sa.Column("to_state", sa.String(32)),
        sa.Column("user_id", sa.String(255)),
        sa.Column("project_id", sa.String(255)),
        sa.Column("request_id", sa.String(64)),
        sa.Column("note", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_job_actions"),
    )
    op.create_index("ix_job_actions_job_id", "job_actions", ["job_id"])
    bind = op.get_bind()
    if sa.inspect(bind).has_table("flowdetails"):
        bind.execute(sa.text(
            "UPDATE jobs SET state = 'revert_failed' WHERE state = 'failed' AND flow_detail_id IN "
            "(SELECT uuid FROM flowdetails WHERE state = 'FAILURE')"
        ))
    bind.execute(sa.text("UPDATE jobs SET state = 'reverted' WHERE state = 'failed'"))


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.text(
        "UPDATE jobs SET state = 'failed' WHERE state IN ('reverted', 'revert_failed', 'cancelled')"
    ))
    bind.execute(sa.text("UPDATE jobs SET state = 'running' WHERE state = 'cancelling'"))
    op.drop_index("ix_job_actions_job_id", table_name="job_actions")
    op.drop_table("job_actions")
    op.drop_index("ix_jobs_created_at", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for column in ("store", "factory_kwargs", "factory", "attempt", "retry_of", "user_id"):
            batch.drop_column(column)
