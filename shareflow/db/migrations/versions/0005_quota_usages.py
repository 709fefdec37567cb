"""Usage kept as counters: ``quota_usages`` (Manila's) per project and
resource, and ``pool_allocations`` (Manila's ``allocated_capacity_gb``) per
backend pool, filled from the live rows and kept by triggers on ``shares`` and
``share_snapshots``.

Why triggers: a counter is only as good as the one path that updates it, and
shares and snapshots change in many places (requests, jobs' status moves,
admin overrides, a job that could not be posted deleting its row). A trigger
runs in the transaction of every such write, whatever wrote it, so the
counters can never drift from the rows; a quota check or a placement then
reads one row instead of counting every share of a project or a pool.

What counts (as ``shareflow.db.quotas`` documented it when usage was counted):

* ``shares`` / ``gigabytes``: live shares (``deleted_at`` null) not in
  ``error``; each share's larger of ``size`` and ``pending_size``;
* ``snapshots`` / ``snapshot_gigabytes``: live snapshots not in ``error``;
* ``pool_allocations.allocated_capacity_gb``: live shares placed on the
  backend, whatever their status; the larger of ``size`` and ``pending_size``.

A trigger writes a counter only when the row's contribution changed (a
status move between two counted statuses writes nothing), so the hot
counter rows are not locked by writes that do not change them. On
PostgreSQL the allocation is written before the project's usage, one order
for every trigger, so two transactions never take them in opposite orders.

Later migrations: on SQLite, rebuilding ``shares`` or ``share_snapshots``
(``batch_alter_table`` with a change SQLite cannot ALTER in place, which
copies the table and drops the old one) drops these triggers with it; such
a migration must create them again (``_create_triggers`` here). Adding a
column or an index does not rebuild. The tests on the ``db`` fixture (head)
fail if the triggers are missing.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ERROR = "error"


def _larger_size(r: str) -> str:
    return f"(CASE WHEN COALESCE({r}.pending_size, 0) > {r}.size THEN {r}.pending_size ELSE {r}.size END)"


def _counted(r: str, value: str) -> str:
    return f"(CASE WHEN {r}.deleted_at IS NULL AND {r}.status <> '{ERROR}' THEN {value} ELSE 0 END)"


def _placed(r: str) -> str:
    return f"(CASE WHEN {r}.deleted_at IS NULL AND {r}.backend IS NOT NULL THEN {_larger_size(r)} ELSE 0 END)"


#: Per table: (counter table, key column of the counter, key column of the
#: row, resource name or None, contribution of row alias ``r``).
COUNTERS = {
    "shares": [
        ("pool_allocations", "backend", "backend", None, _placed),
        ("quota_usages", "project_id", "project_id", "shares", lambda r: _counted(r, "1")),
        ("quota_usages", "project_id", "project_id", "gigabytes", lambda r: _counted(r, _larger_size(r))),
    ],
    "share_snapshots": [
        ("quota_usages", "project_id", "project_id", "snapshots", lambda r: _counted(r, "1")),
        ("quota_usages", "project_id", "project_id", "snapshot_gigabytes", lambda r: _counted(r, f"{r}.size")),
    ],
}


def _add(table: str, key: str, key_value: str, resource: str | None, delta: str, condition: str) -> str:
    """Add ``delta`` to the counter of ``key_value`` (creating it) when ``condition`` holds.

    ``INSERT ... SELECT ... WHERE`` (not VALUES) so it can be conditional; the
    WHERE also resolves SQLite's parsing ambiguity of an upsert on a SELECT."""
    if table == "quota_usages":
        return (
            f"INSERT INTO quota_usages (project_id, resource, in_use, reserved) "
            f"SELECT {key_value}, '{resource}', {delta}, 0 WHERE {condition} "
            f"ON CONFLICT (project_id, resource) DO UPDATE SET in_use = quota_usages.in_use + excluded.in_use;"
        )
    return (
        f"INSERT INTO pool_allocations (backend, allocated_capacity_gb) "
        f"SELECT {key_value}, {delta} WHERE {condition} "
        f"ON CONFLICT (backend) DO UPDATE SET "
        f"allocated_capacity_gb = pool_allocations.allocated_capacity_gb + excluded.allocated_capacity_gb;"
    )


def statements(table: str, event: str) -> list[str]:
    """The statements a trigger on ``table`` runs for one row on ``event``."""
    out = []
    for counter, key, row_key, resource, contribution in COUNTERS[table]:
        new, old = contribution("NEW"), contribution("OLD")
        if event == "INSERT":
            out.append(_add(counter, key, f"NEW.{row_key}", resource, new,
                            f"NEW.{row_key} IS NOT NULL AND {new} <> 0"))
        elif event == "DELETE":
            out.append(_add(counter, key, f"OLD.{row_key}", resource, f"-{old}",
                            f"OLD.{row_key} IS NOT NULL AND {old} <> 0"))
        else:
            same = f"COALESCE(OLD.{row_key}, '') = COALESCE(NEW.{row_key}, '')"
            delta = f"({new} - CASE WHEN {same} THEN {old} ELSE 0 END)"
            out.append(_add(counter, key, f"NEW.{row_key}", resource, delta,
                            f"NEW.{row_key} IS NOT NULL AND {delta} <> 0"))
            # The row moved to another project or pool: its old one gives it back.
            out.append(_add(counter, key, f"OLD.{row_key}", resource, f"-{old}",
                            f"OLD.{row_key} IS NOT NULL AND NOT {same} AND {old} <> 0"))
    return out


def _fill(bind) -> None:
    """The counters from the rows as they are."""
    for table, counters in COUNTERS.items():
        for counter, key, row_key, resource, contribution in counters:
            value = contribution(table)
            if counter == "quota_usages":
                bind.execute(sa.text(
                    f"INSERT INTO quota_usages (project_id, resource, in_use, reserved) "
                    f"SELECT {row_key}, '{resource}', SUM({value}), 0 FROM {table} "
                    f"WHERE deleted_at IS NULL GROUP BY {row_key}"
                ))
            else:
                bind.execute(sa.text(
                    f"INSERT INTO pool_allocations (backend, allocated_capacity_gb) "
                    f"SELECT {row_key}, SUM({value}) FROM {table} "
                    f"WHERE deleted_at IS NULL AND {row_key} IS NOT NULL GROUP BY {row_key}"
                ))


EVENTS = ("INSERT", "UPDATE", "DELETE")


def _create_triggers(bind) -> None:
    postgresql = bind.dialect.name == "postgresql"
    for table in COUNTERS:
        if postgresql:
            branches = "\n".join(
                f"{'IF' if i == 0 else 'ELSIF'} TG_OP = '{event}' THEN\n" + "\n".join(statements(table, event))
                for i, event in enumerate(EVENTS)
            )
            bind.execute(sa.text(
                f"CREATE FUNCTION {table}_counters() RETURNS trigger LANGUAGE plpgsql AS $$\n"
                f"BEGIN\n{branches}\nEND IF;\nRETURN NULL;\nEND;\n$$"
            ))
            bind.execute(sa.text(
                f"CREATE TRIGGER {table}_counters AFTER INSERT OR UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_counters()"
            ))
        else:
            for event in EVENTS:
                body = "\n".join(statements(table, event))
                bind.execute(sa.text(
                    f"CREATE TRIGGER {table}_counters_{event.lower()} AFTER {event} ON {table} "
                    f"FOR EACH ROW BEGIN\n{body}\nEND"
                ))


def _drop_triggers(bind) -> None:
    for table in COUNTERS:
        if bind.dialect.name == "postgresql":
            bind.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_counters ON {table}"))
            bind.execute(sa.text(f"DROP FUNCTION IF EXISTS {table}_counters()"))
        else:
            for event in EVENTS:
                bind.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_counters_{event.lower()}"))


def upgrade() -> None:
    op.create_table(
        "quota_usages",
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("resource", sa.String(64), nullable=False),
        sa.Column("in_use", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "resource", name="pk_quota_usages"),
    )
    op.create_table(
        "pool_allocations",
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("allocated_capacity_gb", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("backend", name="pk_pool_allocations"),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # No write to the counted tables between the fill and the triggers.
        bind.execute(sa.text("LOCK TABLE shares, share_snapshots IN SHARE ROW EXCLUSIVE MODE"))
    _fill(bind)
    _create_triggers(bind)


def downgrade() -> None:
    _drop_triggers(op.get_bind())
    op.drop_table("pool_allocations")
    op.drop_table("quota_usages")
