"""Migration 0017 on real SQLite and PostgreSQL: TaskFlow's ``atomdetails``
gets a unique index on ``(parent_uuid, name)``. A database where the claim
race already left a flow with two atom details of one name takes it too:
the row written last keeps the name, each other one is renamed and kept;
the flow still loads. Afterwards a second atom detail of a name is refused."""

from __future__ import annotations

import contextlib
from datetime import datetime

import pytest
import sqlalchemy as sa
from alembic import command
from oslo_utils import uuidutils
from taskflow.persistence import models as tf_models

from shareflow.db import migrate
from shareflow.db.models import ATOMDETAILS_UNIQUE_NAME
from shareflow.engine.persistence import make_persistence

T0, T1, T2 = datetime(2026, 1, 1, 12), datetime(2026, 1, 1, 13), datetime(2026, 1, 1, 14)


def unique_index(conn) -> list[dict]:
    return [ix for ix in sa.inspect(conn).get_indexes("atomdetails") if ix["name"] == ATOMDETAILS_UNIQUE_NAME]


def new_flow(db) -> str:
    book = tf_models.LogBook("b", uuid=uuidutils.generate_uuid())
    book.add(tf_models.FlowDetail("f", uuid=uuidutils.generate_uuid()))
    with contextlib.closing(make_persistence(db).get_connection()) as conn:
        conn.save_logbook(book)
    return next(iter(book)).uuid


def insert_atom(conn, flow_uuid: str, name: str, state: str, created_at, updated_at=None) -> str:
    atoms = sa.Table("atomdetails", sa.MetaData(), autoload_with=conn)
    uuid = uuidutils.generate_uuid()
    conn.execute(atoms.insert().values(uuid=uuid, parent_uuid=flow_uuid, name=name, state=state,
                                       atom_type="TASK_DETAIL", intention="EXECUTE", version="1.0",
                                       created_at=created_at, updated_at=updated_at))
    return uuid


def test_upgrade_keeps_the_last_written_of_duplicates_and_then_refuses_them(db):
    with db.engine.begin() as conn:
        assert [ix["column_names"] for ix in unique_index(conn)] == [["parent_uuid", "name"]]
        assert unique_index(conn)[0]["unique"]
        command.downgrade(migrate._alembic_config(conn), "0016")
    flow = new_flow(db)
    with db.engine.begin() as conn:
        assert unique_index(conn) == []
        # Two conductors' sets: one's "one" updated later, the other's "two" (only created later).
        one_old = insert_atom(conn, flow, "one", "RUNNING", T0, T1)
        one_new = insert_atom(conn, flow, "one", "SUCCESS", T0, T2)
        two_old = insert_atom(conn, flow, "two", "PENDING", T0)
        two_new = insert_atom(conn, flow, "two", "RUNNING", T1)
        three = insert_atom(conn, flow, "three", "PENDING", T0)

    migrate.upgrade(db)

    with db.engine.begin() as conn:
        assert unique_index(conn)
        rows = dict(conn.execute(sa.text("SELECT uuid, name FROM atomdetails WHERE parent_uuid = :p"),
                                 {"p": flow}).all())
    assert rows == {one_new: "one", one_old: f"one~duplicate~{one_old}", two_new: "two",
                    two_old: f"two~duplicate~{two_old}", three: "three"}
    with contextlib.closing(make_persistence(db).get_connection()) as conn:
        loaded = conn.get_flow_details(flow)
    assert {ad.name: ad.uuid for ad in loaded if "~" not in ad.name} == {
        "one": one_new, "two": two_new, "three": three}

    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
        insert_atom(conn, flow, "three", "RUNNING", T2)
    # Same names in another flow are fine.
    other = new_flow(db)
    with db.engine.begin() as conn:
        insert_atom(conn, other, "one", "PENDING", T0)
