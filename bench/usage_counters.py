#!/usr/bin/env python3
"""What a create's quota check and placement read, against the shares there are.

Issue 13, "No scans per operation": a create reads its project's quota usage
and its pool's allocated capacity. Before migration 0005 both were counted
from the share rows on every request (a COUNT/SUM over the project's shares,
a SUM over the backend's); now each is one counter row, kept by triggers.
Both are timed here on the same database: the old way is exactly
``shareflow.db.quotas.recount`` and ``shareflow.db.pools.recount_allocated_gb``
(what ``shareflow db check-usage`` runs). Run from the repository root::

    .venv/bin/python bench/usage_counters.py [--shares 10,5000] [--reads 200]
    .venv/bin/python bench/usage_counters.py --database postgresql

For each N a fresh database (SQLite in a temp dir, or a database in a private
PostgreSQL cluster, the tests' one, loopback only) is migrated and given N
live shares of one project on one backend (plus one snapshot per ten shares),
inserted through the ORM so the triggers run; then ``--reads`` times each
read in a read transaction, and the p50 in ms is printed, with what an
insert cost per share (triggers included).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shareflow.db import migrate  # noqa: E402
from shareflow.db import pools as pools_db  # noqa: E402
from shareflow.db import quotas as quotas_db  # noqa: E402
from shareflow.db.engine import Database  # noqa: E402
from shareflow.db.models import Share, ShareSnapshot, ShareType  # noqa: E402

NOW = datetime(2026, 11, 30)
PROJECT, BACKEND = "bench-project", "h@b1"
POOL = f"{BACKEND}#p"


def _fill(db: Database, n: int) -> float:
    """N shares (and N/10 snapshots) in batches; returns seconds per share."""
    with db.write() as s:
        s.add(ShareType(id="t", name="t", is_public=True, created_at=NOW))
    start = time.perf_counter()
    for first in range(0, n, 500):
        with db.write() as s:
            for i in range(first, min(n, first + 500)):
                sid = str(uuid.uuid4())
                s.add(Share(id=sid, project_id=PROJECT, size=1 + i % 3, share_proto="NFS", status="available",
                            access_rules_status="active", share_type_id="t", backend=BACKEND,
                            host=POOL, is_public=False, created_at=NOW))
                if i % 10 == 0:
                    s.flush()
                    s.add(ShareSnapshot(id=str(uuid.uuid4()), share_id=sid, project_id=PROJECT, size=1,
                                        share_size=1, share_proto="NFS", status="available", created_at=NOW))
    return (time.perf_counter() - start) / max(n, 1)


def _p50(db: Database, fn, reads: int) -> float:
    samples = []
    for _ in range(reads):
        with db.read() as s:
            t0 = time.perf_counter()
            fn(s)
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1000


@contextlib.contextmanager
def _postgres():
    """A private PostgreSQL cluster (the tests' one: loopback only, trust
    auth, fsync off) in a temp directory; yields a function making an empty
    database in it and giving its URL. Stopped and removed afterwards."""
    import shutil

    from shareflow.system.ports import free_port
    from tests.fixtures.postgres import PostgresCluster, find_bindir

    bindir = find_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL server binaries not found (make bootstrap installs them)")
    base = Path(tempfile.mkdtemp(prefix="shareflow-bench-pg-"))
    cluster = PostgresCluster(bindir, base, free_port())
    try:
        cluster.start()
        yield lambda n: cluster.create_database(f"usage{n}")
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def measure(url: str, n: int, reads: int) -> dict[str, float]:
    db = Database(url)
    try:
        migrate.upgrade(db)
        per_share = _fill(db, n)
        with db.read() as s:
            assert quotas_db.usage(s, PROJECT) == quotas_db.recount(s, PROJECT)
            assert pools_db.allocated_gb(s, POOL) == pools_db.recount_allocated_gb(s, POOL)
        return {
            "quota usage, counted (before)": _p50(db, lambda s: quotas_db.recount(s, PROJECT), reads),
            "quota usage, counters (after)": _p50(db, lambda s: quotas_db.usage(s, PROJECT), reads),
            "pool allocated, summed (before)": _p50(
                db, lambda s: pools_db.recount_allocated_gb(s, POOL), reads),
            "pool allocated, counter (after)": _p50(db, lambda s: pools_db.allocated_gb(s, POOL), reads),
            "insert, ms per share (with triggers)": per_share * 1000,
        }
    finally:
        db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shares", default="10,5000", help="live shares, comma-separated")
    parser.add_argument("--reads", type=int, default=200)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    results = {}
    shares = [int(x) for x in args.shares.split(",")]
    if args.database == "postgresql":
        with _postgres() as new_database:
            for n in shares:
                results[n] = measure(new_database(n), n, args.reads)
    else:
        for n in shares:
            with tempfile.TemporaryDirectory(prefix="sf-bench-usage-") as tmp:
                results[n] = measure(f"sqlite:///{Path(tmp) / 'bench.sqlite'}", n, args.reads)
    ns = list(results)
    print(f"{args.database}: p50 in ms")
    print("| read | " + " | ".join(f"N={n}" for n in ns) + " |")
    print("| --- |" + " --- |" * len(ns))
    for key in results[ns[0]]:
        print(f"| {key} | " + " | ".join(f"{results[n][key]:.3f}" for n in ns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
