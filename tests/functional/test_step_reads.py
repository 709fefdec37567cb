"""What the jobs' own steps read around their driver calls, on real SQLite
and PostgreSQL: ``begin`` reads its resource's status (and a share's
backend) in one statement outside any transaction - not the ORM entity,
whose ``selectin`` relationships (type, type specs, export locations,
metadata) cost four more statements - and decides as before; the create's
access step asks whether the share has rules in one statement."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest

from shareflow.db import access as access_db
from shareflow.db import pools as pools_db
from shareflow.db import resources
from shareflow.db import share_services
from shareflow.db import share_types as types_db
from shareflow.db import shares as shares_db
from shareflow.db.models import ExportLocation, Job, Pool, Service
from shareflow.domain import states
from shareflow.engine import placement
from shareflow.exceptions import ResourceStateChanged
from shareflow.tasks.lifecycle import BeginOperation
from tests.functional.test_share_polls import Statements

T0 = datetime(2026, 12, 1, 3, 0, 0)
SHARE = "00000000-0000-4000-8000-0000000000c1"
BACKEND = "host@vm#pool"


@pytest.fixture
def share(db) -> str:
    """A share being created, with everything its ORM entity would load."""
    with db.write() as s:
        st = types_db.create(s, now=T0, name="t", specs={"snapshot_support": "True", "a": "b"})
        shares_db.create(s, now=T0, id=SHARE, project_id="p", name="n", size=1, share_proto="NFS",
                         status=states.CREATING, share_type_id=st.id, user_id="u", backend=BACKEND,
                         metadata={"k": "v"})
        s.add(ExportLocation(id="el-1", share_id=SHARE, path="h:/x", is_admin_only=False, preferred=True,
                             created_at=T0))
    return SHARE


def runtime(db) -> SimpleNamespace:
    """What ``begin`` uses of the conductor's Runtime for a share."""
    return SimpleNamespace(db=db, clock=lambda: T0)


def warm(db) -> None:
    with db.snapshot() as conn:  # the pool's first connect runs PRAGMAs
        resources.status(conn, states.operation("create_share"), SHARE)


@pytest.mark.parametrize("operation", ["create_share", "delete_share"])
def test_begin_reads_one_statement_outside_a_transaction(db, share, operation):
    with db.write() as s:
        shares_db.get_any(s, SHARE).status = states.operation(operation).start_status
    warm(db)
    with Statements(db.engine) as seen:
        BeginOperation(operation).execute(runtime(db), SHARE, backend=BACKEND)
    assert len(seen.sent) == 1, seen.sent
    ((statement, in_transaction),) = seen.sent
    assert statement.lstrip().startswith("SELECT")
    assert not in_transaction


def test_begin_still_refuses_a_share_that_moved_on(db, share):
    begin = BeginOperation("create_share")
    # Rescheduled to another backend by a later attempt.
    with pytest.raises(ResourceStateChanged, match="rescheduled to host@vm#pool, not other@vm#pool"):
        begin.execute(runtime(db), SHARE, backend="other@vm#pool")
    # A bare backend name (a job posted before per-host boards) is not compared.
    begin.execute(runtime(db), SHARE, backend="vm")
    with db.write() as s:
        shares_db.get_any(s, SHARE).status = states.ERROR
    with pytest.raises(ResourceStateChanged, match="is error"):
        begin.execute(runtime(db), SHARE, backend=BACKEND)
    with db.write() as s:
        shares_db.get_any(s, SHARE).deleted_at = T0
    with pytest.raises(ResourceStateChanged, match="is deleted"):
        begin.execute(runtime(db), SHARE, backend=BACKEND)
    with pytest.raises(ResourceStateChanged, match="is gone"):
        begin.execute(runtime(db), "00000000-0000-4000-8000-0000000000ff", backend=BACKEND)


def test_status_reads_the_row_whatever_the_kind(db, share):
    with db.write() as s:
        access_db.create(s, id="r-1", share_id=SHARE, access_type="ip", access_to="10.0.0.1",
                         access_level="rw", state=states.QUEUED_TO_APPLY, created_at=T0)
    with db.read() as s:
        assert resources.status(s, states.operation("create_share"), SHARE) == states.CREATING
        assert resources.status(s, states.operation("allow_access"), "r-1") == states.QUEUED_TO_APPLY
        assert resources.status_and_backend(s, states.operation("create_share"), SHARE) == (
            states.CREATING, BACKEND)
        assert resources.status_and_backend(s, states.operation("allow_access"), "r-1") == (
            states.QUEUED_TO_APPLY, None)
    # In a write transaction, it sees what that transaction wrote (not a cached entity).
    with db.write() as s:
        assert resources.status(s, states.operation("create_share"), SHARE) == states.CREATING
        assert shares_db.set_status(s, SHARE, states.AVAILABLE, now=T0)
        assert resources.status(s, states.operation("create_share"), SHARE) == states.AVAILABLE


def test_whether_a_share_has_rules_in_effect_is_one_statement(db, share):
    with db.write() as s:
        for rule_id, state in (("r-deny", states.QUEUED_TO_DENY), ("r-gone", states.ACTIVE)):
            access_db.create(s, id=rule_id, share_id=SHARE, access_type="ip", access_to=f"10.0.0.{len(rule_id)}",
                             access_level="rw", state=state, created_at=T0)
        s.flush()
        access_db.get(s, "r-gone").deleted_at = T0
    warm(db)
    with Statements(db.engine) as seen, db.snapshot() as conn:
        assert access_db.any_for_share(conn, SHARE, states.RULES_IN_EFFECT) is False
    assert len(seen.sent) == 1, seen.sent
    with db.write() as s:
        access_db.create(s, id="r-new", share_id=SHARE, access_type="ip", access_to="10.0.0.9",
                         access_level="ro", state=states.QUEUED_TO_APPLY, created_at=T0)
    with db.snapshot() as conn:
        assert access_db.any_for_share(conn, SHARE, states.RULES_IN_EFFECT) is True
        assert access_db.any_for_share(conn, SHARE, frozenset({states.DENYING})) is False


def test_the_scheduling_job_reads_its_share_in_one_statement(db, share):
    """``place_share``'s read: the share, its type, the type's specs and its
    metadata (the scheduler hints') in one statement - four with selectin,
    a round trip each on PostgreSQL; the export locations are still there
    when asked for."""
    warm(db)
    with db.read() as s, Statements(db.engine) as seen:
        placed = shares_db.for_placement(s, SHARE)
        assert placed.status == states.CREATING and placed.share_type.specs() == {
            "snapshot_support": "True", "a": "b"}
        assert placed.metadata_dict() == {"k": "v"}
        selects = [sql for sql, _ in seen.sent if sql.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 1, selects
        assert [e.path for e in placed.export_locations] == ["h:/x"]


def job_row(job_id: str, operation: str, at: datetime, retry_of: str | None) -> Job:
    return Job(id=job_id, operation=operation, state=states.JOB_POSTED, retry_of=retry_of, backend=BACKEND,
               resource_type="share", resource_id=SHARE, logbook_id=f"lb-{job_id}", flow_detail_id=f"fd-{job_id}",
               created_at=at)


def test_the_scheduling_job_reads_itself_and_its_create_job_in_one_statement(db):
    """``place_share`` reads its own job and the create job recorded after it
    (a resumed step finds it) in one statement."""
    with db.write() as s:
        for job_id, retry_of, op, at in (("j-sched", None, "schedule_share", T0),
                                         ("j-other", "j-sched", "delete_share", T0),
                                         ("j-create", "j-sched", "create_share", T0.replace(minute=1)),
                                         ("j-later", "j-sched", "create_share", T0.replace(minute=2))):
            s.add(job_row(job_id, op, at, retry_of))
        s.add(job_row("j-alone", "schedule_share", T0, None))
    warm(db)
    with db.read() as s, Statements(db.engine) as seen:
        own, after = placement.with_following(s, "j-sched")
        alone, nothing = placement.with_following(s, "j-alone")
    assert (own.id, after.id) == ("j-sched", "j-create")
    assert (alone.id, nothing) == ("j-alone", None)
    selects = [sql for sql, _ in seen.sent if sql.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2, selects


def test_the_scheduler_reads_the_pools_and_their_services_flags_in_one_statement(db):
    """The pools ``place_share`` chooses from, each with whether its share
    service is disabled, in one statement; a disabled ``host@vm`` disables
    only its own pools (not ``host@vm2``'s, whose key it prefixes)."""
    with db.write() as s:
        for host in ("host@vm#pool", "host@vm#other", "host@vm2#pool", "other@vm#pool"):
            s.add(Pool(host=host, backend=host.split("@")[1].split("#")[0], pool=host.split("#")[1],
                       driver_handles_share_servers=False, total_capacity_gb=10, free_capacity_gb=10,
                       updated_at=T0))
        for host, disabled in (("host@vm", True), ("host@vm2", False), ("other@vm", False)):
            s.add(Service(host=host, binary=share_services.SHARE_BINARY, disabled=disabled, created_at=T0,
                          updated_at=T0))
        s.add(Service(host="other@vm#pool", binary="manila-data", disabled=True, created_at=T0, updated_at=T0))
    warm(db)
    with db.read() as s, Statements(db.engine) as seen:
        enabled = {p.host: p.enabled for p in pools_db.pool_states(s, now=T0, stale_after=None)}
    assert enabled == {"host@vm#pool": False, "host@vm#other": False, "host@vm2#pool": True,
                       "other@vm#pool": True}
    assert len([sql for sql, _ in seen.sent if sql.lstrip().upper().startswith("SELECT")]) == 1, seen.sent


def test_the_apis_create_reads_its_type_by_name_with_its_specs_in_one_statement(db, share):
    warm(db)
    with db.read() as s, Statements(db.engine) as seen:
        st = types_db.get_by_name(s, "t")
        assert st.specs() == {"snapshot_support": "True", "a": "b"}
        assert types_db.get_by_name(s, "no such type") is None
    assert len([sql for sql, _ in seen.sent if sql.lstrip().upper().startswith("SELECT")]) == 2, seen.sent
