#!/usr/bin/env python3
"""What PostgreSQL is asked per create_share, counted at the server.

Run from the repository root, as root (loop devices, mounts, namespaces)::

    .venv/bin/python bench/pg_round_trips.py [--shares N] [--poll S]

Starts the same private stack as ``bench/create_share.py --database
postgresql`` (``tests.fixtures.infrastructure.Infrastructure``), turns on
``log_statement = all`` on its private cluster (``ALTER SYSTEM``), creates 3
warm-up shares, then ``--shares`` (10) one at a time, each polled every
``--poll`` seconds (0.2) through python-manilaclient, and reads the
cluster's log for those creates. It prints, per create, the transactions by
shape (``BEGIN U:jobs COMMIT``: one transaction with one ``UPDATE jobs``;
``AUTOCOMMIT S:shares``: one statement outside any) and the round trips:
statements + ``BEGIN``s + ``COMMIT``s, consecutive identical INSERTs or
UPDATEs in a transaction counted once (psycopg pipelines an executemany),
without the polls' reads (``AUTOCOMMIT S:shares``, ``S:export_locations``)
and the periodic work (pool reports, housekeeping). Statement logging costs
PostgreSQL CPU: this counts, it does not time. docs/benchmarks.md
("PostgreSQL's round trips") has the results.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.fixtures.infrastructure import Infrastructure  # noqa: E402

_ENTRY = re.compile(r"^\S+ \S+ \S+ \[(\d+)\] LOG:  (?:statement|execute [^:]*): (.*?)(?=^\S+ \S+ \S+ \[\d+\] |\Z)",
                    re.M | re.S)
#: Transactions that are not a create's: the polls, pool reports, housekeeping.
_OTHERS = ("AUTOCOMMIT S:shares", "AUTOCOMMIT S:export_locations*", "BEGIN S:jobs COMMIT",
           "BEGIN S:jobs* COMMIT")


def short(statement: str) -> str:
    words = statement.split()
    verb = words[0].upper()
    if verb == "SELECT":
        table = re.search(r"FROM (\w+)", statement)
        return f"S:{table.group(1) if table else words[1][:30]}" + ("*" if statement.count(",") > 5 else "")
    if verb == "UPDATE":
        return f"U:{words[1]}"
    if verb in ("INSERT", "DELETE"):
        return f"{verb[0]}:{words[2]}"
    return words[0] if verb != "BEGIN" else "BEGIN"


def shapes(log_text: str) -> collections.Counter:
    open_: dict[str, list[str]] = {}
    found: collections.Counter = collections.Counter()
    for pid, statement in _ENTRY.findall(log_text):
        word = short(" ".join(statement.split()))
        if word == "BEGIN":
            open_[pid] = ["BEGIN"]
        elif word in ("COMMIT", "ROLLBACK"):
            found[" ".join([*open_.pop(pid, ["?"]), word])] += 1
        elif pid in open_:
            open_[pid].append(word)
        else:
            found[f"AUTOCOMMIT {word}"] += 1
    return found


def round_trips(shape: str) -> int:
    count, previous = 0, None
    for word in shape.split():
        if word == "AUTOCOMMIT":
            continue
        if word.startswith(("I:", "U:")) and word == previous:
            continue  # an executemany: one pipelined round trip
        count, previous = count + 1, word
    return count


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shares", type=int, default=10)
    p.add_argument("--poll", type=float, default=0.2)
    args = p.parse_args(argv)
    import psycopg

    infra = Infrastructure(Path(tempfile.mkdtemp(prefix="shareflow-pgrt-")), workers=2,
                           pool_gb=args.shares + 20, database="postgresql", log=print)
    try:
        infra.start()
        cluster = infra.postgres.cluster
        with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET log_statement = 'all'")
            conn.execute("ALTER SYSTEM SET log_line_prefix = '%m [%p] '")
            conn.execute("SELECT pg_reload_conf()")
        stack = infra.stack
        stack.manila().quotas.update("bench", shares=-1, gigabytes=-1)
        client = stack.manila(stack.token("bench"))

        def create(name: str) -> None:
            share = client.shares.create("NFS", 1, name=name)
            deadline = time.monotonic() + 60
            while client.shares.get(share.id).status != "available":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"share {share.id} not available after 60 s")
                time.sleep(args.poll)

        for i in range(3):
            create(f"warm-{i}")
        time.sleep(1.0)
        start = cluster.log_path.stat().st_size
        for i in range(args.shares):
            create(f"count-{i}")
        time.sleep(1.0)
        text = cluster.log_path.read_bytes()[start:].decode(errors="replace")
    finally:
        problems = infra.stop()
        if problems:
            print("teardown problems:", problems, file=sys.stderr)
    found = shapes(text)
    n = args.shares
    print(f"\nper create ({n} creates):")
    for shape, count in found.most_common():
        print(f"{count / n:6.1f}  {shape}")
    # The pool reports write their pool (U:pools); place_share reads the
    # pools too, and is a create's (it was left out here before, 15 round trips).
    own = sum(round_trips(s) * c for s, c in found.items() if s not in _OTHERS and "U:pools" not in s)
    print(f"\nround trips per create, without the polls and the periodic work: {own / n:.1f}")
    logged = sum(len([w for w in s.split() if w != "AUTOCOMMIT"]) * c for s, c in found.items())
    print(f"statements logged per create (BEGIN and COMMIT included, the polls too): {logged / n:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
