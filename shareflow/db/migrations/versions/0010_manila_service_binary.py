"""Share services are stored under Manila's binary name ``manila-share``
(0008 wrote ``shareflow-share``): Manila's clients and its upstream API tests
pick the share services out of ``GET /services`` by that name (e.g. to find
the availability zones that have storage), and an admin's ``PUT
/services/disable`` names it. Data only: no column changes.

Revision ID: 0010
Revises: 0008 (the lead's merge puts it after 0009)
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0008"
branch_labels = None
depends_on = None

OLD, NEW = "shareflow-share", "manila-share"


#: ``binary`` is a keyword on PostgreSQL: SQLAlchemy quotes it.
_services = sa.table("services", sa.column("binary", sa.String))


def _rename(old: str, new: str) -> None:
    op.execute(_services.update().where(_services.c.binary == old).values(binary=new))


def upgrade() -> None:
    _rename(OLD, NEW)


def downgrade() -> None:
    _rename(NEW, OLD)
