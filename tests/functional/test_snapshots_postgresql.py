"""Snapshots on PostgreSQL: the snapshot, clone and revert cycle, and the race
between taking a snapshot and deleting its share, where PostgreSQL's row locks
(not SQLite's single writer) decide the winner."""

from __future__ import annotations

from tests.functional.test_snapshots import (
    FULL_SPECS,
    assert_share_left_nothing,
    make_type,
    new_share,
    wait_gone,
    wait_snapshot,
)
from tests.functional.lifecycle_helpers import race


def test_snapshot_cycle_and_races_on_postgresql(pg_stack):
    stack = pg_stack
    assert stack.db.engine.dialect.name == "postgresql"
    snappy = make_type(stack, "snappy", FULL_SPECS)
    m = stack.manila(stack.token("tenant-pgsnap"))
    share = new_share(stack, m, snappy)
    snap = wait_snapshot(m, m.share_snapshots.create(share).id, {"available", "error"})
    assert snap.status == "available", stack.log("pool")[-3000:]
    clone = stack.wait_for_share(m, m.shares.create("NFS", 1, snapshot_id=snap.id).id, {"available", "error"})
    assert clone.status == "available"
    m.shares.revert_to_snapshot(share, snap)
    assert stack.wait_for_share(m, share.id, {"available", "reverting_error"}).status == "available"
    assert m.share_snapshots.get(snap.id).status == "available"
    m.share_snapshots.delete(snap)
    wait_gone(m.share_snapshots.get, snap.id)

    for attempt in range(5):
        outcomes = race(stack, {"snapshot": lambda n=f"racer-{attempt}": m.share_snapshots.create(share, name=n),
                                "delete": lambda: m.shares.delete(share)},
                        hold=("create_snapshot", "delete_volume"))
        assert sorted(outcomes.values()) in (["BadRequest", "accepted"], ["Forbidden", "accepted"]), outcomes
        snaps = m.share_snapshots.list(search_opts={"share_id": share.id})
        if outcomes["delete"] == "accepted":  # the delete won: no snapshot was taken
            assert snaps == []
            break
        (racer,) = snaps
        assert wait_snapshot(m, racer.id, {"available", "error"}).status == "available"
        assert m.shares.get(share.id).status == "available"
        m.share_snapshots.delete(racer)
        wait_gone(m.share_snapshots.get, racer.id)
    else:
        m.shares.delete(share)
    wait_gone(m.shares.get, share.id)
    assert_share_left_nothing(stack, share.id)
    m.shares.delete(clone)
    wait_gone(m.shares.get, clone.id)
    assert_share_left_nothing(stack, clone.id)
