"""Pools are reported by the conductors of each host, and everything that was
keyed by a bare backend name is keyed by the share service ``host@backend``
(or the pool ``host@backend#pool``), so two hosts that both have a backend
called ``local`` never share a counter, a board or a share server.

* ``pools``: the capabilities the driver reported (JSON), the availability
  zone of the host, and the backend's position in its host's configuration
  (for the ``first_fit`` weigher);
* ``services``: one row per share service ``host@backend`` (Manila's
  ``services``): its binary, zone, whether an admin disabled it and why, and
  ``updated_at``, the heartbeat its conductors write with every report;
* ``shares.backend``, ``share_servers.backend`` and ``jobs.backend`` hold
  ``host@backend`` (from the row's own ``host``: a share's
  ``host@backend#pool``, a share server's ``host@backend``; a job's from the
  resource it works on);
* ``pool_allocations`` is keyed by the pool, ``host@backend#pool`` (the
  share's ``host``), and the triggers of migration 0005 are written again
  for that key (SQLite and PostgreSQL). The counters are refilled from the
  rows, with no write to them in between (PostgreSQL: a table lock; SQLite:
  the migration's own transaction).

A row whose host cannot be known (a bare backend with no host anywhere) keeps
its value: it names no board any conductor serves, and ``shareflow jobs``
shows it as stalled rather than running it on the wrong host.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

ERROR = "error"
SHARE_SERVICE_BINARY = "shareflow-share"


# --- the counters' triggers (0005's, with pool_allocations keyed by host) ----

def _larger_size(r: str) -> str:
    return f"(CASE WHEN COALESCE({r}.pending_size, 0) > {r}.size THEN {r}.pending_size ELSE {r}.size END)"


def _counted(r: str, value: str) -> str:
    return f"(CASE WHEN {r}.deleted_at IS NULL AND {r}.status <> '{ERROR}' THEN {value} ELSE 0 END)"


def _placed(r: str) -> str:
    return f"(CASE WHEN {r}.deleted_at IS NULL AND {r}.host IS NOT NULL THEN {_larger_size(r)} ELSE 0 END)"


def _placed_by_backend(r: str) -> str:
    """0005's contribution (for the downgrade)."""
    return f"(CASE WHEN {r}.deleted_at IS NULL AND {r}.backend IS NOT NULL THEN {_larger_size(r)} ELSE 0 END)"


def _counters(pool_key: str) -> dict:
    placed = _placed if pool_key == "host" else _placed_by_backend
    return {
        "shares": [
            ("pool_allocations", pool_key, pool_key, None, placed),
            ("quota_usages", "project_id", "project_id", "shares", lambda r: _counted(r, "1")),
            ("quota_usages", "project_id", "project_id", "gigabytes", lambda r: _counted(r, _larger_size(r))),
        ],
        "share_snapshots": [
            ("quota_usages", "project_id", "project_id", "snapshots", lambda r: _counted(r, "1")),
            ("quota_usages", "project_id", "project_id", "snapshot_gigabytes", lambda r: _counted(r, f"{r}.size")),
        ],
    }


def _add(table: str, key: str, key_value: str, resource, delta: str, condition: str) -> str:
    if table == "quota_usages":
        return (
            f"INSERT INTO quota_usages (project_id, resource, in_use, reserved) "
            f"SELECT {key_value}, '{resource}', {delta}, 0 WHERE {condition} "
            f"ON CONFLICT (project_id, resource) DO UPDATE SET in_use = quota_usages.in_use + excluded.in_use;"
        )
    return (
        f"INSERT INTO pool_allocations ({key}, allocated_capacity_gb) "
        f"SELECT {key_value}, {delta} WHERE {condition} "
        f"ON CONFLICT ({key}) DO UPDATE SET "
        f"allocated_capacity_gb = pool_allocations.allocated_capacity_gb + excluded.allocated_capacity_gb;"
    )


def _statements(counters: dict, table: str, event: str) -> list[str]:
    out = []
    for counter, key, row_key, resource, contribution in counters[table]:
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


EVENTS = ("INSERT", "UPDATE", "DELETE")


def _create_triggers(bind, counters: dict) -> None:
    postgresql = bind.dialect.name == "postgresql"
    for table in counters:
        if postgresql:
            branches = "\n".join(
                f"{'IF' if i == 0 else 'ELSIF'} TG_OP = '{event}' THEN\n"
                + "\n".join(_statements(counters, table, event))
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
                body = "\n".join(_statements(counters, table, event))
                bind.execute(sa.text(
                    f"CREATE TRIGGER {table}_counters_{event.lower()} AFTER {event} ON {table} "
                    f"FOR EACH ROW BEGIN\n{body}\nEND"
                ))


def _drop_triggers(bind) -> None:
    for table in ("shares", "share_snapshots"):
        if bind.dialect.name == "postgresql":
            bind.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_counters ON {table}"))
            bind.execute(sa.text(f"DROP FUNCTION IF EXISTS {table}_counters()"))
        else:
            for event in EVENTS:
                bind.execute(sa.text(f"DROP TRIGGER IF EXISTS {table}_counters_{event.lower()}"))


def _recreate_pool_allocations(bind, key: str, key_type) -> None:
    op.drop_table("pool_allocations")
    op.create_table(
        "pool_allocations",
        sa.Column(key, key_type, nullable=False),
        sa.Column("allocated_capacity_gb", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(key, name="pk_pool_allocations"),
    )
    placed = (_placed if key == "host" else _placed_by_backend)("shares")
    bind.execute(sa.text(
        f"INSERT INTO pool_allocations ({key}, allocated_capacity_gb) "
        f"SELECT {key}, SUM({placed}) FROM shares "
        f"WHERE deleted_at IS NULL AND {key} IS NOT NULL GROUP BY {key}"
    ))


# --- the data ------------------------------------------------------------------

def _service_of(pool_host: str | None) -> str | None:
    """``host@backend#pool`` -> ``host@backend``; None when it is not one."""
    if not pool_host or "@" not in pool_host:
        return None
    return pool_host.partition("#")[0]


def _rekey_shares(bind) -> dict[str, set[str]]:
    """shares.backend := host@backend from each row's host; returns, per bare
    backend name, the services it was found on (for the jobs)."""
    found: dict[str, set[str]] = {}
    rows = bind.execute(sa.text(
        "SELECT DISTINCT host, backend FROM shares WHERE host IS NOT NULL AND backend IS NOT NULL"
    )).all()
    for host, backend in rows:
        service = _service_of(host)
        if service is None or "@" in backend:
            continue
        found.setdefault(backend, set()).add(service)
        bind.execute(sa.text("UPDATE shares SET backend = :service WHERE host = :host AND backend = :backend"),
                     {"service": service, "host": host, "backend": backend})
    return found


def _rekey_share_servers(bind, found: dict[str, set[str]]) -> None:
    rows = bind.execute(sa.text("SELECT DISTINCT host, backend FROM share_servers")).all()
    for host, backend in rows:
        if "@" in (backend or "") or not host or "@" not in host:
            continue
        found.setdefault(backend, set()).add(host)
        bind.execute(sa.text("UPDATE share_servers SET backend = :host WHERE host = :host AND backend = :backend"),
                     {"host": host, "backend": backend})


#: Where a job's resource says which service it is on, per resource type.
_JOB_SERVICES = {
    "share": "SELECT backend FROM shares WHERE id = :rid",
    "snapshot": "SELECT s.backend FROM share_snapshots n JOIN shares s ON s.id = n.share_id WHERE n.id = :rid",
    "access_rule": "SELECT s.backend FROM access_rules a JOIN shares s ON s.id = a.share_id WHERE a.id = :rid",
    "share_server": "SELECT backend FROM share_servers WHERE id = :rid",
}


def _rekey_jobs(bind, found: dict[str, set[str]]) -> None:
    pools = bind.execute(sa.text("SELECT host, backend FROM pools")).all()
    for host, backend in pools:
        service = _service_of(host)
        if service is not None:
            found.setdefault(backend, set()).add(service)
    jobs = bind.execute(sa.text("SELECT id, backend, resource_type, resource_id FROM jobs")).all()
    for job_id, backend, resource_type, resource_id in jobs:
        if "@" in (backend or ""):
            continue
        service = None
        query = _JOB_SERVICES.get(resource_type)
        if query is not None:
            service = bind.execute(sa.text(query), {"rid": resource_id}).scalar()
            if service is not None and (_service_of(service) is None
                                        or service.partition("@")[2] != backend):
                service = None
        if service is None and len(found.get(backend, ())) == 1:
            # The resource is gone (a purged row): the one host that has the backend.
            (service,) = found[backend]
        if service is not None:
            bind.execute(sa.text("UPDATE jobs SET backend = :service WHERE id = :id"),
                         {"service": service, "id": job_id})


def _fill_services(bind) -> None:
    rows = bind.execute(sa.text("SELECT host, updated_at FROM pools")).all()
    latest: dict[str, object] = {}
    for host, updated_at in rows:
        service = _service_of(host)
        if service is not None and (service not in latest or updated_at > latest[service]):
            latest[service] = updated_at
    for service, updated_at in sorted(latest.items()):
        bind.execute(sa.text(
            'INSERT INTO services (host, "binary", disabled, created_at, updated_at) '
            "VALUES (:host, :binary, :disabled, :now, :now)"
        ), {"host": service, "binary": SHARE_SERVICE_BINARY, "disabled": False, "now": updated_at})


def _widen(table: str, column: str, length: int) -> None:
    # SQLite does not enforce VARCHAR lengths; altering there would rebuild
    # the table (and drop its triggers) for nothing.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column(table, column, type_=sa.String(length))


def upgrade() -> None:
    bind = op.get_bind()
    postgresql = bind.dialect.name == "postgresql"
    if postgresql:
        # No write to the counted and re-keyed tables until the triggers are back.
        bind.execute(sa.text("LOCK TABLE shares, share_snapshots, share_servers, jobs "
                             "IN SHARE ROW EXCLUSIVE MODE"))
    with op.batch_alter_table("pools") as batch:
        batch.add_column(sa.Column("capabilities", sa.Text()))
        batch.add_column(sa.Column("availability_zone", sa.String(255)))
        batch.add_column(sa.Column("config_order", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "services",
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("binary", sa.String(64), nullable=False),
        sa.Column("availability_zone", sa.String(255)),
        sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("disabled_reason", sa.String(255)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("host", name="pk_services"),
    )
    _fill_services(bind)
    _drop_triggers(bind)
    for table in ("shares", "share_servers", "jobs"):
        _widen(table, "backend", 255)
    found = _rekey_shares(bind)
    _rekey_share_servers(bind, found)
    _rekey_jobs(bind, found)
    _recreate_pool_allocations(bind, "host", sa.String(255))
    _create_triggers(bind, _counters("host"))


def downgrade() -> None:
    bind = op.get_bind()
    _drop_triggers(bind)
    for table in ("shares", "share_servers", "jobs"):
        rows = bind.execute(sa.text(f"SELECT DISTINCT backend FROM {table} WHERE backend LIKE '%@%'")).all()
        for (backend,) in rows:
            bind.execute(sa.text(f"UPDATE {table} SET backend = :bare WHERE backend = :backend"),
                         {"bare": backend.partition("@")[2], "backend": backend})
    _recreate_pool_allocations(bind, "backend", sa.String(64))
    _create_triggers(bind, _counters("backend"))
    op.drop_table("services")
    with op.batch_alter_table("pools") as batch:
        for name in ("config_order", "availability_zone", "capabilities"):
            batch.drop_column(name)
