"""The lookups every job makes are by index, on real SQLite and PostgreSQL:
TaskFlow loads a logbook's flow details and a flow detail's atoms by
``parent_uuid`` (its schema indexes ``uuid`` only, so each job's load
scanned every atom row of every job ever run), and a scheduling job finds
the create job it recorded by ``jobs.retry_of``. A second upgrade keeps them."""

from __future__ import annotations

import sqlalchemy as sa

from shareflow.db import migrate

LOOKUPS = {"atomdetails": "parent_uuid", "flowdetails": "parent_uuid", "jobs": "retry_of"}


def _indexed_columns(conn, table: str) -> set[str]:
    return {column for index in sa.inspect(conn).get_indexes(table) for column in index["column_names"]}


def _plan(conn, dialect: str, sql: str) -> str:
    if dialect == "sqlite":
        return " ".join(str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # empty tables: only an index can avoid it
    return " ".join(row[0] for row in conn.exec_driver_sql(f"EXPLAIN {sql}"))


def test_every_job_lookup_is_by_index_and_stays_so_after_another_upgrade(db):
    migrate.upgrade(db)  # the fixture upgraded once already: idempotent
    dialect = db.engine.dialect.name
    with db.engine.begin() as conn:
        for table, column in LOOKUPS.items():
            assert column in _indexed_columns(conn, table), (table, column)
            plan = _plan(conn, dialect, f"SELECT * FROM {table} WHERE {column} = 'x'")
            assert "INDEX" in plan.upper() and "SEQ SCAN" not in plan.upper(), (table, plan)
            if dialect == "sqlite":
                assert "SCAN" not in plan.replace("SEARCH", ""), (table, plan)
        # One index leads with atomdetails.parent_uuid: the unique one by
        # (parent_uuid, name) serves the lookups; a second would only cost
        # every atom's insert.
        leading = [i["name"] for i in sa.inspect(conn).get_indexes("atomdetails")
                   if i["column_names"][0] == "parent_uuid"]
        assert leading == ["uq_atomdetails_parent_uuid_name"], leading
