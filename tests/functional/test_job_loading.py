"""The job's store is persisted whole, in one transaction, and a store left
half-written by TaskFlow's own two-step injection (issue 8) is completed:
on TaskFlow's persistence over our real database engines."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json

import pytest
import sqlalchemy as sa
from oslo_utils import uuidutils
from taskflow import engines
from taskflow import states as tf_states
from taskflow.persistence import models as tf_models

from shareflow.engine import checkpoints
from shareflow.engine.loading import STORE_ATOM, is_transient, save_store, store_atom
from shareflow.engine.persistence import make_persistence
from shareflow.flows.delete_share import delete_share
from shareflow.exceptions import CoordinationError, DatabaseError, InjectedFault
from tests.fixtures.stack import wait_until

STORE = {"share_id": "s-1", "resource_id": "s-1", "job_id": "j-1", "backend": "b1"}


@pytest.fixture
def persistence(db):
    return make_persistence(db)


def posted_flow(persistence) -> str:
    """A logbook as JobPoster saves it: one flow detail naming its factory."""
    book = tf_models.LogBook("delete_share-s-1", uuid=uuidutils.generate_uuid())
    flow = tf_models.FlowDetail("delete_share", uuid=uuidutils.generate_uuid())
    book.add(flow)
    engines.save_factory_details(flow, delete_share, [], {})
    with contextlib.closing(persistence.get_connection()) as conn:
        conn.save_logbook(book)
    return flow.uuid


def reload(persistence, flow_uuid):
    with contextlib.closing(persistence.get_connection()) as conn:
        return conn.get_flow_details(flow_uuid)


def half_write_store(persistence, flow_uuid) -> None:
    """What TaskFlow's ``Storage.inject`` has written when its process dies
    between its two transactions: the store atom detail, results NULL."""
    flow = reload(persistence, flow_uuid)
    half = tf_models.TaskDetail(STORE_ATOM, uuidutils.generate_uuid())
    half.state = None
    flow.add(half)
    with contextlib.closing(persistence.get_connection()) as conn:
        conn.update_flow_details(flow)


def test_taskflow_cannot_load_a_half_written_store(persistence):
    """The failure issue 8 saw, reproduced: why the conductor must not let
    TaskFlow write the store (nor load one it left half-written)."""
    flow_uuid = posted_flow(persistence)
    half_write_store(persistence, flow_uuid)
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute 'keys'"):
        engines.load_from_detail(reload(persistence, flow_uuid), store=STORE, backend=persistence)


def test_a_half_written_store_is_completed_and_the_flow_loads(persistence):
    flow_uuid = posted_flow(persistence)
    half_write_store(persistence, flow_uuid)

    assert save_store(persistence, reload(persistence, flow_uuid), STORE) is True

    flow = reload(persistence, flow_uuid)
    (stored,) = [ad for ad in flow if ad.name == STORE_ATOM]
    assert stored.results == STORE and stored.state == tf_states.SUCCESS
    engine = engines.load_from_detail(flow, backend=persistence)
    engine.compile()
    engine.prepare()
    assert engine.storage.fetch("share_id") == "s-1"
    assert engine.storage.fetch("backend") == "b1"


def test_the_store_is_written_whole_in_one_transaction(db, persistence):
    flow_uuid = posted_flow(persistence)
    commits = []

    def on_commit(conn):
        commits.append(conn)

    fresh, again = reload(persistence, flow_uuid), None
    sa.event.listen(db.engine, "commit", on_commit)
    try:
        assert save_store(persistence, fresh, STORE) is True
        writes = len(commits)
        again = reload(persistence, flow_uuid)
        del commits[:]
        # A resumed job whose store is intact writes nothing.
        assert save_store(persistence, again, STORE) is False
        assert commits == []
    finally:
        sa.event.remove(db.engine, "commit", on_commit)
    assert writes == 1
    stored = store_atom(reload(persistence, flow_uuid))
    assert stored.results == STORE and stored.state == tf_states.SUCCESS
    # A job whose details carry a changed value (as TaskFlow's inject would merge it).
    assert save_store(persistence, reload(persistence, flow_uuid), {**STORE, "backend": "b2"}) is True
    assert store_atom(reload(persistence, flow_uuid)).results["backend"] == "b2"


def test_transient_errors_are_told_apart():
    assert is_transient(DatabaseError("down"))
    assert is_transient(CoordinationError("zk down"))
    assert not is_transient(InjectedFault("conductor.engine_loaded"))
    assert not is_transient(ImportError("Could not import factory"))
    assert not is_transient(AttributeError("'NoneType' object has no attribute 'keys'"))


def stored_rows(db) -> int:
    """Committed store atom details, read beside a writer that holds the lock."""
    with db.read() as s:
        return s.scalar(sa.text("select count(*) from atomdetails where name = :n"), {"n": STORE_ATOM})


def test_a_conductor_held_inside_the_store_write_has_committed_nothing(db, persistence, tmp_path):
    """The in-transaction checkpoint really is inside it: what a conductor
    killed there leaves is the flow detail as posted."""
    plan = tmp_path / "faults.json"
    plan.write_text(json.dumps({checkpoints.PREFIX + checkpoints.IN_STORE_WRITE: "hang"}))
    points = checkpoints.Checkpoints(plan, hang_limit=30)
    points.watch(db.engine)
    flow_uuid = posted_flow(persistence)
    fresh = reload(persistence, flow_uuid)

    def load():
        with points.loading("job-1"):
            return save_store(persistence, fresh, STORE)

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        saving = pool.submit(load)
        marker = checkpoints.marker_path(plan, checkpoints.IN_STORE_WRITE)
        wait_until(marker.exists, 10, "the store write to be held")
        assert stored_rows(db) == 0
        plan.write_text("{}")
        assert saving.result(timeout=10) is True
    assert store_atom(reload(persistence, flow_uuid)).results == STORE
    assert stored_rows(db) == 1
    sa.event.remove(db.engine, "after_cursor_execute", points._on_statement)
