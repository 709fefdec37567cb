"""The conductor's test checkpoints: inert without a plan; hold (naming the
holder) or fail where the plan says, steered through the fault plan file."""

import json
import os
import threading

import pytest
import sqlalchemy.exc as sa_exc

from shareflow.engine.checkpoints import (
    DATABASE_OUTAGE,
    HANG_FIRST,
    OUTAGE_HITS,
    PREFIX,
    Checkpoints,
    in_start_write,
    marker_path,
)
from shareflow.exceptions import CoordinationError, InjectedFault


def write_plan(path, plan):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(plan))
    tmp.replace(path)


@pytest.fixture
def plan(tmp_path):
    return tmp_path / "faults.json"


def reach_in_thread(plan, point: str, job: str) -> tuple[threading.Thread, dict]:
    """``reach(point)`` in a thread of its own, returned once the point's
    marker is written (or after 5 s); the dict gets ``done`` when the reach
    returns, ``error`` when it raises an injected fault."""
    box: dict = {}

    def held():
        try:
            Checkpoints(plan, hang_limit=30).reach(point, job)
            box["done"] = True
        except InjectedFault as e:
            box["error"] = e

    t = threading.Thread(target=held, daemon=True)
    t.start()
    marker = marker_path(plan, point)
    for _ in range(500):
        if marker.exists():
            break
        t.join(0.01)
    return t, box


def test_without_a_plan_checkpoints_are_inert(plan):
    write_plan(plan, {PREFIX + "claimed": "fail"})  # not this conductor's plan
    points = Checkpoints()
    assert not points.active
    points.reach("claimed", "job-1")


def test_other_points_and_driver_entries_pass(plan):
    write_plan(plan, {PREFIX + "compiled": "fail", "claimed": "fail"})
    Checkpoints(plan).reach("claimed", "job-1")


def test_fail(plan):
    write_plan(plan, {PREFIX + "book_loaded": "fail"})
    with pytest.raises(InjectedFault) as e:
        Checkpoints(plan).reach("book_loaded", "job-1")
    assert e.value.point == PREFIX + "book_loaded"


def test_hold_names_the_holder_until_released(plan):
    write_plan(plan, {PREFIX + "store_saved": "hang"})
    t, box = reach_in_thread(plan, "store_saved", "job-7")
    assert json.loads(marker_path(plan, "store_saved").read_text()) == {"pid": os.getpid(), "job": "job-7"}
    assert "done" not in box
    write_plan(plan, {})
    t.join(5)
    assert box == {"done": True}


def test_hold_changed_to_fail_fails(plan):
    write_plan(plan, {PREFIX + "compiled": "hang"})
    t, box = reach_in_thread(plan, "compiled", "job-1")
    assert marker_path(plan, "compiled").exists() and not box
    write_plan(plan, {PREFIX + "compiled": "fail"})
    t.join(5)
    assert isinstance(box.get("error"), InjectedFault)


def test_unavailable_is_a_passing_outage_and_names_the_conductor(plan):
    write_plan(plan, {PREFIX + "book_loaded": "unavailable"})
    with pytest.raises(CoordinationError):
        Checkpoints(plan).reach("book_loaded", "job-2")
    assert json.loads(marker_path(plan, "book_loaded").read_text())["job"] == "job-2"


def test_database_outage_fails_the_first_reaches_then_passes(plan):
    """As many reaches as TaskFlow's storage makes attempts at a write fail
    as a lost connection does, counted in the marker across conductors
    (each reach reads it); then the database is back."""
    point = in_start_write("export")
    write_plan(plan, {PREFIX + point: DATABASE_OUTAGE})
    for hit in range(1, OUTAGE_HITS + 1):
        with pytest.raises(sa_exc.OperationalError):
            Checkpoints(plan).reach(point, "job-3")
        assert json.loads(marker_path(plan, point).read_text()) == {"pid": os.getpid(), "job": "job-3",
                                                                     "hits": hit}
    Checkpoints(plan).reach(point, "job-3")
    assert json.loads(marker_path(plan, point).read_text())["hits"] == OUTAGE_HITS + 1


def test_hang_first_holds_the_first_conductor_only(plan):
    """Two conductors on one job: the first to reach the point holds (and
    names itself), a second one passes while the first's marker is there."""
    write_plan(plan, {PREFIX + "first_write": HANG_FIRST})
    t, box = reach_in_thread(plan, "first_write", "job-a")
    marker = marker_path(plan, "first_write")
    assert json.loads(marker.read_text())["job"] == "job-a"
    Checkpoints(plan, hang_limit=30).reach("first_write", "job-a")  # the second: passes at once
    assert "done" not in box and json.loads(marker.read_text())["job"] == "job-a"
    write_plan(plan, {})
    t.join(5)
    assert box == {"done": True}
