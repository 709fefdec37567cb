"""An index for the lookups a job makes by another job: the create job a
scheduling job recorded (``jobs.retry_of``), which every scheduling job and
every resumed one looks up; without it each lookup scans every job ever run.

(TaskFlow's own tables get their missing ``parent_uuid`` indexes in
``shareflow.db.migrate`` after TaskFlow's migrations have made them.)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_retry_of", "jobs", ["retry_of"])


def downgrade() -> None:
    op.drop_index("ix_jobs_retry_of", table_name="jobs")
