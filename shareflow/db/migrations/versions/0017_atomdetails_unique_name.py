"""One atom detail per flow and atom name in TaskFlow's ``atomdetails``: a
unique index on ``(parent_uuid, name)`` (``shareflow.db.models.ATOMDETAILS_UNIQUE_NAME``).

A conductor that had lost a job's claim without knowing it yet could insert
a second set of atom details into a flow another conductor had taken over;
with the index, the later of the two first writes fails as a whole and its
engine stops (``shareflow.engine.storage``).

A database that already holds such a second set (the race happened before
this revision) cannot take the index as it is. Nothing is deleted: of the
rows sharing a flow and name, the one written last (``updated_at``, else
``created_at``) keeps the name - TaskFlow loading such a flow kept one of
them by name anyway, whichever its query returned last - and each other is
renamed ``<name>~duplicate~<uuid>``, kept for an operator to look at (no
flow atom has that name, so no engine reads it as a step). The flows
concerned are logged as a warning.

On a new database ``atomdetails`` does not exist yet (TaskFlow's migrations
run after ours, ``shareflow.db.migrate``): nothing to do here, and
``shareflow.db.migrate`` makes the index right after TaskFlow makes the
table (it makes sure of it on every upgrade).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01
"""

import logging
from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

LOG = logging.getLogger(__name__)
_EPOCH = datetime.min

INDEX = "uq_atomdetails_parent_uuid_name"
SUFFIX = "~duplicate~"
#: TaskFlow's ``atomdetails.name`` length.
NAME_LENGTH = 255


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("atomdetails"):
        return
    _rename_duplicates(bind)
    bind.exec_driver_sql(f"CREATE UNIQUE INDEX IF NOT EXISTS {INDEX} ON atomdetails (parent_uuid, name)")


def _rename_duplicates(bind) -> None:
    atoms = sa.table("atomdetails", sa.column("uuid"), sa.column("parent_uuid"), sa.column("name"),
                     sa.column("created_at"), sa.column("updated_at"))
    groups = bind.execute(
        sa.select(atoms.c.parent_uuid, atoms.c.name)
        .where(atoms.c.parent_uuid.is_not(None), atoms.c.name.is_not(None))
        .group_by(atoms.c.parent_uuid, atoms.c.name)
        .having(sa.func.count() > 1)
    ).all()
    for parent_uuid, name in groups:
        rows = bind.execute(
            sa.select(atoms.c.uuid, atoms.c.created_at, atoms.c.updated_at)
            .where(atoms.c.parent_uuid == parent_uuid, atoms.c.name == name)
        ).all()
        # The row written last keeps the name; ties by uuid, so the choice
        # is the same on every run.
        rows.sort(key=lambda r: (r.updated_at or r.created_at or _EPOCH, r.created_at or _EPOCH, r.uuid),
                  reverse=True)
        for row in rows[1:]:
            suffix = f"{SUFFIX}{row.uuid}"
            bind.execute(sa.update(atoms).where(atoms.c.uuid == row.uuid)
                         .values(name=name[:NAME_LENGTH - len(suffix)] + suffix))
        LOG.warning("flow %s had %d atom details named %r (two conductors recorded it): kept %s, "
                    "renamed the others '%s<uuid>'", parent_uuid, len(rows), name, rows[0].uuid, SUFFIX)


def downgrade() -> None:
    # Rows renamed by the upgrade keep their new names (nothing reads them).
    op.get_bind().exec_driver_sql(f"DROP INDEX IF EXISTS {INDEX}")
