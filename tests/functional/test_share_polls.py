"""What polling clients read of one share (shareflow.db.share_polls), on real
SQLite and PostgreSQL: each read is exactly one statement, run outside any
transaction (no BEGIN/COMMIT round trips), and it reads what the general
path reads - the same fields, collections in the same order, the same
visibility."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from shareflow.db import access as access_db
from shareflow.db import share_polls
from shareflow.db import share_types as types_db
from shareflow.db import shares as shares_db
from shareflow.db.models import AccessRule, ExportLocation
from shareflow.domain import states
from shareflow.exceptions import NotFound

T0 = datetime(2026, 11, 30, 12, 0, 0, 120000)
SHARE = "00000000-0000-4000-8000-000000000001"
PUBLIC = "00000000-0000-4000-8000-000000000002"
PRIVATE = "00000000-0000-4000-8000-000000000003"
DELETED = "00000000-0000-4000-8000-000000000004"
BARE = "00000000-0000-4000-8000-000000000005"
#: Locations: two share a created_at (the id breaks the tie), one is older.
LOCATIONS = [("ffffffff-0000-4000-8000-000000000001", T0, "h:/b", True, False),
             ("00000000-0000-4000-8000-0000000000aa", T0, "h:/a", False, True),
             ("88888888-0000-4000-8000-000000000001", T0 - timedelta(seconds=1), "h:/old", False, False)]


@pytest.fixture
def shares(db) -> None:
    with db.write() as s:
        st = types_db.create(s, now=T0, name="t", specs={"zeta": "1", "snapshot_support": "True", "alpha": "x"})
        common = dict(size=1, share_proto="NFS", status=states.AVAILABLE, share_type_id=st.id, user_id="u")
        # Metadata in an order that is neither alphabetical nor reversed: insertion order is shown.
        shares_db.create(s, now=T0, id=SHARE, project_id="p", name="mine", is_public=False,
                         metadata={"m": "1", "a": "2", "z": "3", "é": "4"}, **common)
        for el_id, at, path, admin_only, preferred in LOCATIONS:
            s.add(ExportLocation(id=el_id, share_id=SHARE, path=path, is_admin_only=admin_only,
                                 preferred=preferred, created_at=at))
        shares_db.create(s, now=T0, id=PUBLIC, project_id="q", name="public", is_public=True, **common)
        shares_db.create(s, now=T0, id=PRIVATE, project_id="q", name="private", is_public=False, **common)
        shares_db.create(s, now=T0, id=DELETED, project_id="p", name="gone", is_public=False, **common)
        shares_db.create(s, now=T0, id=BARE, project_id="p", name="bare", is_public=False, size=1,
                         share_proto="NFS", status=states.CREATING)
        s.flush()
        shares_db.get(s, DELETED).deleted_at = T0
        rules = [("r-2", T0, {"b": "1", "B": "2", "a": "3"}), ("r-1", T0, {}),
                 ("r-0", T0 - timedelta(seconds=5), {"k": "v"}), ("r-deleted", T0, {})]
        for rule_id, at, metadata in rules:
            access_db.create(s, id=rule_id, share_id=SHARE, access_type="ip", access_to=f"10.0.0.{len(rule_id)}",
                             access_level="rw", state=states.ACTIVE if rule_id != "r-2" else states.QUEUED_TO_APPLY,
                             created_at=at, updated_at=at + timedelta(seconds=1) if metadata else None)
            if metadata:
                access_db.set_metadata(s, rule_id, metadata)
        s.get(AccessRule, "r-deleted").deleted_at = T0


class Statements:
    """Every statement sent on the engine, and whether the connection was in
    a transaction when it ran (a BEGIN sent by the driver itself, as psycopg
    does outside autocommit, does not pass through the cursor)."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.sent: list[tuple[str, bool]] = []

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        dbapi = conn.connection.dbapi_connection
        if conn.dialect.name == "sqlite":
            in_transaction = dbapi.in_transaction
        else:
            from psycopg.pq import TransactionStatus

            in_transaction = dbapi.info.transaction_status != TransactionStatus.IDLE
        self.sent.append((statement, in_transaction))

    def __enter__(self) -> Statements:
        sa.event.listen(self.engine, "after_cursor_execute", self._after)
        return self

    def __exit__(self, *exc) -> None:
        sa.event.remove(self.engine, "after_cursor_execute", self._after)


@pytest.mark.parametrize("read", ["share", "access_rules", "export_locations"])
def test_each_poll_is_one_statement_outside_a_transaction(db, shares, read):
    with db.snapshot() as conn:
        getattr(share_polls, read)(conn, SHARE, "p")  # warm: the pool's first connect runs PRAGMAs
    with Statements(db.engine) as seen, db.snapshot() as conn:
        found = getattr(share_polls, read)(conn, SHARE, "p")
    assert found
    assert len(seen.sent) == 1, seen.sent
    ((statement, in_transaction),) = seen.sent
    assert statement.lstrip().startswith("SELECT")
    assert not in_transaction


def _share_fields(record) -> tuple:
    return (
        tuple(getattr(record, c) for c in ("id", "project_id", "user_id", "name", "size", "status", "is_public",
                                           "created_at", "share_type_id", "access_rules_status")),
        [(el.id, el.share_id, el.path, el.is_admin_only, el.preferred) for el in record.export_locations],
        list(record.metadata_dict().items()),
        None if record.share_type is None else
        (record.share_type.id, record.share_type.name, list(record.share_type.specs().items())),
    )


@pytest.mark.parametrize("share_id, project", [(SHARE, "p"), (SHARE, None), (PUBLIC, "p"), (BARE, "p")])
def test_a_share_reads_as_the_general_path_reads_it(db, shares, share_id, project):
    with db.read() as s:
        general = shares_db.record(s, share_id, project)
    with db.snapshot() as conn:
        polled = share_polls.share(conn, share_id, project)
    assert _share_fields(polled) == _share_fields(general)
    if share_id == SHARE:
        assert [el.path for el in polled.export_locations] == ["h:/old", "h:/a", "h:/b"]
        assert list(polled.metadata_dict()) == ["m", "a", "z", "é"]
        assert list(polled.share_type.specs()) == ["zeta", "snapshot_support", "alpha"]
        assert [(el.is_admin_only, el.preferred) for el in polled.export_locations] == [
            (False, False), (False, True), (True, False)]
    if share_id == BARE:
        assert polled.share_type is None and polled.export_locations == [] and polled.metadata_dict() == {}


@pytest.mark.parametrize("read", ["share", "access_rules", "export_locations"])
@pytest.mark.parametrize("share_id, project", [(PRIVATE, "p"), (DELETED, "p"), (DELETED, None),
                                               ("no-such-share", None), (None, "p")])
def test_what_the_caller_may_not_see_is_not_found(db, shares, read, share_id, project):
    with db.snapshot() as conn, pytest.raises(NotFound):
        getattr(share_polls, read)(conn, share_id, project)


def test_an_admin_and_a_public_share_reader_see_through_the_polls(db, shares):
    with db.snapshot() as conn:
        assert share_polls.share(conn, PRIVATE, None).name == "private"
        assert share_polls.access_rules(conn, PUBLIC, "p") == []
        assert share_polls.export_locations(conn, BARE, "p") == []


def test_rules_read_as_the_general_path_reads_them(db, shares):
    with db.read() as s:
        general = [(r.id, r.share_id, r.access_type, r.access_to, r.access_level, r.state, r.created_at,
                    r.updated_at, list(r.metadata_dict().items())) for r in access_db.for_share(s, SHARE)]
    with db.snapshot() as conn:
        polled = [(r.id, r.share_id, r.access_type, r.access_to, r.access_level, r.state, r.created_at,
                   r.updated_at, list(r.metadata_dict().items())) for r in share_polls.access_rules(conn, SHARE, "p")]
    assert polled == general
    assert [r[0] for r in polled] == ["r-0", "r-1", "r-2"]


def test_export_locations_read_oldest_first_ties_by_id(db, shares):
    with db.read() as s:
        general = {el.id: (el.share_id, el.path, el.is_admin_only, el.preferred, el.created_at, el.updated_at)
                   for el in shares_db.get(s, SHARE).export_locations}
    with db.snapshot() as conn:
        polled = share_polls.export_locations(conn, SHARE, "p")
    assert [el.id for el in polled] == [LOCATIONS[2][0], LOCATIONS[1][0], LOCATIONS[0][0]]
    assert {el.id: (el.share_id, el.path, el.is_admin_only, el.preferred, el.created_at, el.updated_at)
            for el in polled} == general
