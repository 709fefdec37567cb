#!/usr/bin/env python3
"""Chaos soak: mixed tenant operations on the real stack while its processes are killed.

Run from the repository root, as root (loop devices, mounts, namespaces)::

    .venv/bin/python bench/chaos.py [--operations N] [--max-seconds S] [--clients K]
        [--conductor-kills N] [--aimed-kills N] [--zk-restarts N] [--ganesha-kills N]

It starts everything privately in a fresh temporary directory - a ZooKeeper
server on a free loopback port (the soak kills it), a sparse btrfs loop pool,
and a :class:`tests.fixtures.stack.ServiceStack` over them (SQLite, NFS-Ganesha
in a network namespace, the API under gunicorn, the conductor pool with
``--workers`` workers) - then runs :class:`tests.fixtures.chaos.Soak`:
``--clients`` threads create and delete shares, allow and deny access, extend
and shrink, create and delete snapshots over Manila's v2 API, while conductor
workers are SIGKILLed (at random, and aimed at the worker that owns a running
job), ZooKeeper is SIGKILLed and restarted (by the service if it does so
within ``--zk-grace`` seconds, otherwise by this script) and NFS-Ganesha is
SIGKILLed (the conductor pool restores it); ``--zk-pauses`` times ZooKeeper
is stopped with SIGSTOP longer than the sessions last. Then it waits for the stack to
settle and reconciles the API, the database, btrfs, Ganesha and the jobboard
(:mod:`tests.fixtures.reconcile`), deletes everything (the drain) and
reconciles again.

It prints operations by outcome, HTTP answers, kills by kind, what the
reconciliations found, and a final ``PASS``/``FAIL`` line; the exit status is
0 on PASS, 1 on FAIL (any 5xx other than a 503 while ZooKeeper was down, a
request left without an answer, an operation that did not settle or settled
wrong, a resource stuck in a transitional status, a trashed job, a leak or a
disagreement between the views), 2 on bad arguments. The run is bounded in
operations (``--operations``) and time (``--max-seconds`` for the operations,
``--settle-timeout`` for each wait for quiet). Everything is torn down by its
own handle, also on Ctrl-C. docs/reliability.md has the figures of a long run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/chaos.py", description=__doc__.splitlines()[0])
    p.add_argument("--operations", type=int, default=200, help="operations in all clients together (default 200)")
    p.add_argument("--max-seconds", type=float, default=600.0,
                   help="the operations stop after this long at the latest (default 600)")
    p.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    p.add_argument("--shares-per-client", type=int, default=5, help="live shares a client keeps at most (default 5)")
    p.add_argument("--workers", type=int, default=3, help="conductor worker processes (default 3)")
    p.add_argument("--conductor-kills", type=int, default=8, help="conductor workers SIGKILLed at random (default 8)")
    p.add_argument("--aimed-kills", type=int, default=8,
                   help="SIGKILLs of the worker that owns a running job (default 8)")
    p.add_argument("--zk-restarts", type=int, default=2, help="ZooKeeper SIGKILLs and restarts (default 2)")
    p.add_argument("--zk-pauses", type=int, default=1,
                   help="ZooKeeper stopped (SIGSTOP) for --zk-pause seconds, then continued (default 1)")
    p.add_argument("--zk-pause", type=float, default=6.0,
                   help="seconds a pause lasts: longer than the stack's 2 s sessions (default 6)")
    p.add_argument("--ganesha-kills", type=int, default=4, help="NFS-Ganesha SIGKILLs (default 4)")
    p.add_argument("--kill-interval", type=float, default=1.0,
                   help="kills are spread evenly over the operations, at least about this many seconds apart "
                        "(default 1)")
    p.add_argument("--zk-grace", type=float, default=12.0,
                   help="seconds the service is given to restart a killed ZooKeeper before this script does "
                        "(default 12)")
    p.add_argument("--zk-supervised", action="store_true",
                   help="supervise the soak's ZooKeeper with shareflow run's own ZooKeeperSupervisor (where the "
                        "tree has it), so that the service, not this script, restarts it")
    p.add_argument("--slow-answer", type=float, default=10.0,
                   help="an answer later than this is a failure: while ZooKeeper is down the API must answer "
                        "503 within its own bound (default 10)")
    p.add_argument("--request-timeout", type=float, default=30.0,
                   help="a request without an answer after this long is a failure (default 30)")
    p.add_argument("--op-timeout", type=float, default=90.0,
                   help="an accepted operation not settled after this long is a failure (default 90)")
    p.add_argument("--settle-timeout", type=float, default=180.0, help="bound of each wait for quiet (default 180)")
    p.add_argument("--no-drain", action="store_true", help="skip deleting everything and reconciling again")
    p.add_argument("--no-everyone-rules", action="store_true",
                   help="no 0.0.0.0/0 rules (manila-csi's default client) among the allow requests")
    p.add_argument("--probe-limit", type=int, default=None,
                   help="list at most this many exports over NFS in a reconciliation (default: all)")
    p.add_argument("--hostile", type=float, default=0.0,
                   help="weight of a hostile tenant's requests in the mix (zone-id rules, lone surrogates, "
                        "wrong JSON types), each of which must get a 4xx; the others weigh 1-4 (default 0: none)")
    p.add_argument("--strict", action="store_true",
                   help="an accepted operation that ended in an error status fails the run too")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    p.add_argument("--keep-logs", type=Path, default=None, help="copy the service's logs here before cleaning up")
    args = p.parse_args(argv)
    for name in ("operations", "clients", "shares_per_client", "workers"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("conductor_kills", "aimed_kills", "zk_restarts", "zk_pauses", "ganesha_kills"):
        if getattr(args, name) < 0:
            p.error(f"--{name.replace('_', '-')} must not be negative")
    for name in ("max_seconds", "kill_interval", "zk_grace", "zk_pause", "slow_answer", "request_timeout", "op_timeout",
                 "settle_timeout"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def soak_config(args):
    from tests.fixtures.chaos import SoakConfig

    return SoakConfig(
        operations=args.operations, max_seconds=args.max_seconds, clients=args.clients,
        shares_per_client=args.shares_per_client,
        kills={"conductor-random": args.conductor_kills, "conductor-aimed": args.aimed_kills,
               "zookeeper": args.zk_restarts, "zookeeper-pause": args.zk_pauses, "ganesha": args.ganesha_kills},
        zk_pause=args.zk_pause, zk_supervised=args.zk_supervised,
        kill_interval=args.kill_interval, zk_grace=args.zk_grace, slow_answer=args.slow_answer, request_timeout=args.request_timeout,
        op_timeout=args.op_timeout, settle_timeout=args.settle_timeout, drain=not args.no_drain,
        everyone_rules=not args.no_everyone_rules, probe_limit=args.probe_limit, seed=args.seed,
        strict=args.strict, hostile=args.hostile,
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out + (" (+ local changes)" if dirty else "")


def _print_first(header: str, items: list[str], most: int) -> None:
    """``header``, then the first ``most`` of ``items``, one an indented line:
    a report shows what kind of trouble there was, not every instance of it."""
    print(header)
    for item in items[:most]:
        print(f"  {item}")


def print_report(result: dict, args, wall: float) -> None:
    st = result["stats"]
    print("\n=== shareflow chaos soak ===")
    print(f"shareflow {commit()}; {args.workers} conductor workers, {args.clients} clients, run {result['run_id']}, "
          f"seed {args.seed}")
    print(f"operations: {result['operations']} in {result['operations_seconds']} s; "
          f"settled after {result['settle_seconds']} s ({'yes' if result['settled'] else 'NO'}); {wall:.0f} s in all")
    by_op: dict[str, Counter] = {}
    for key, n in st["outcomes"].items():
        op, outcome = key.split(" ", 1)
        by_op.setdefault(op, Counter())[outcome] += n
    outcomes = sorted({o for c in by_op.values() for o in c})
    print("\noperations by outcome:")
    print(f"  {'operation':16s}" + "".join(f"{o:>14s}" for o in outcomes) + f"{'total':>8s}")
    for op in sorted(by_op):
        c = by_op[op]
        print(f"  {op:16s}" + "".join(f"{c.get(o, 0):14d}" for o in outcomes) + f"{sum(c.values()):8d}")
    total = Counter()
    for op, c in by_op.items():
        if op != "client-view":  # a check after the run, not an operation
            total.update(c)
    print(f"  {'all':16s}" + "".join(f"{total.get(o, 0):14d}" for o in outcomes) + f"{sum(total.values()):8d}")
    http = Counter()
    for key, n in st["http"].items():
        method, status = key.split(" ", 1)
        http[status] += n
    print("\nHTTP answers (all requests, polls included): "
          + ", ".join(f"{s}: {n}" for s, n in sorted(http.items(), key=lambda kv: kv[0])))
    kills = st["kills"]
    print("\nkills: " + ", ".join(f"{k} {kills.get(k, 0)}" for k in
                                  ("conductor-random", "conductor-aimed", "zookeeper", "zookeeper-pause",
                                   "ganesha"))
          + f" (total {sum(v for k, v in kills.items() if k != 'skipped')}; skipped {kills.get('skipped', 0)})")
    aimed = [k for k in st["kill_log"] if k["kind"] == "conductor-aimed"]
    if aimed:
        print("  aimed kills by operation of the job: "
              + ", ".join(f"{op} {n}" for op, n in Counter(k["operation"] for k in aimed).most_common()))
    if st["zk_restarted_by"]:
        print("  ZooKeeper restarted by: " + ", ".join(f"{k} {n}" for k, n in st["zk_restarted_by"].items())
              + f"; down {', '.join(f'{d:.1f}' for d in st['zk_down_seconds'])} s")
    if st["ganesha_restore_seconds"]:
        g = st["ganesha_restore_seconds"]
        print(f"  NFS-Ganesha restored by the pool in {min(g):.1f}-{max(g):.1f} s")
    lat = result.get("latency_zk_down") or {}
    for what, values in lat.items():
        if values:
            print(f"  {what} while ZooKeeper was down or recovering: {len(values)}, "
                  f"p50 {_pct(values, 50):.2f} s, max {max(values):.2f} s")
    _print_first(f"\nAPI server errors (5xx other than 503 while ZooKeeper was down, or no answer): "
                 f"{len(st['server_errors'])}", st["server_errors"], 10)
    _print_first(f"answers later than {args.slow_answer:g} s: {len(st['slow'])}", st["slow"], 10)
    if st["unexpected_503"]:
        _print_first(f"503 while ZooKeeper was up: {len(st['unexpected_503'])} (reported, not a failure)",
                     st["unexpected_503"], 5)
    if st["wrong"]:
        _print_first(f"\noperations that settled wrong (or hostile requests accepted): {len(st['wrong'])}",
                     st["wrong"], 15)
    if st["op_errors"]:
        causes = Counter(error_cause(e) for e in st["op_errors"]).most_common()
        _print_first(f"\noperations that ended in an error status: {len(st['op_errors'])}; by cause:"
                     + "".join(f"\n  {n:4d} x {cause}" for cause, n in causes), st["op_errors"], 15)
    if st["rejections"]:
        _print_first(f"\nrejected requests (4xx): {len(st['rejections'])}", st["rejections"], 8)
    if result["ghosts"]:
        _print_first(f"\nshares whose create was not acknowledged but which exist: {len(result['ghosts'])}",
                     result["ghosts"], 10)
    for label, key in (("after the soak (live)", "reconcile_live"), ("after the drain", "reconcile_drained")):
        r = result.get(key)
        if r is None:
            continue
        seen = ", ".join(f"{k} {v}" for k, v in sorted(r["seen"].items()))
        print(f"\nreconciliation {label}: {'clean' if r['ok'] else 'INCONSISTENT'}; looked at {seen}")
        counts = Counter(f"{f['kind']}: {f['what']}" for f in r["findings"])
        for what, n in counts.most_common():
            print(f"  {n:4d} x {what}")
        for f in r["findings"][:20]:
            print(f"       {f['kind']}: {f['what']}: {f['detail'][:240]}")
    if result["harness_errors"]:
        print("\nharness errors: " + "; ".join(result["harness_errors"]))
    print_summary(result, st)
    print()
    if result["passed"]:
        print("PASS: no inconsistency")
    else:
        kinds = Counter(f.split(":", 1)[0] for f in result["failures"])
        print(f"FAIL: {len(result['failures'])} inconsistencies ("
              + ", ".join(f"{k} {n}" for k, n in kinds.most_common()) + ")")


#: The summary's lines: label -> finding categories (``what``) counted under it.
SUMMARY = (
    ("resources stuck in a transitional status", lambda f: f["kind"] == "stuck"),
    ("subvolumes without shares", lambda f: f["what"] in ("subvolume without share",
                                                         "snapshot subvolume without snapshot",
                                                         "subvolume of a share in error (create not reverted)",
                                                         "subvolume of a snapshot in error")),
    ("exports without shares", lambda f: f["what"] in ("export without share",
                                                      "export of a share in error (create not reverted)")),
    ("shares without subvolumes or exports", lambda f: f["what"] in ("share without subvolume", "share without export",
                                                                     "snapshot without subvolume")),
    ("jobs or claims left on the board, locks held", lambda f: f["kind"] == "board"
     and f["what"] != "job failed as never posted, but posted afterwards"),
    ("jobs failed as never posted, then run", lambda f: f["what"] == "job failed as never posted, but posted afterwards"),
    ("jobs trashed", lambda f: f["kind"] == "trashed"),
    ("other disagreements between the views", lambda f: f["kind"] in ("api", "btrfs", "ganesha") and f["what"] not in (
        "subvolume without share", "snapshot subvolume without snapshot", "export without share",
        "share without subvolume", "share without export", "snapshot without subvolume",
        "subvolume of a share in error (create not reverted)", "subvolume of a snapshot in error",
        "export of a share in error (create not reverted)")),
)


def error_cause(text: str) -> str:
    """An operation's error without its ids, paths and times, for grouping."""
    op = text.split(":", 1)[0]
    text = re.sub(r"\d\d/\d\d/\d{4} [\d:]+ : epoch \w+ : \S+ : \S+ ", "", text)
    m = re.search(r"step=(\S+) failure='([^']+)", text)
    if m:
        cause = f"step {m[1]}: {m[2]}"
    else:
        m = re.search(r"message '([^']*)'|message \"([^\"]*)\"", text)
        cause = (m[1] or m[2]) if m else text.split(": ", 2)[-1]
    cause = re.sub(r"/\S+", "<path>", cause)
    cause = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", cause)
    return f"{op}: {cause[:150]}"


def print_summary(result: dict, st: dict) -> None:
    """The same lines on every run, zeros included."""
    # The same finding in both reconciliations (a job record outlives the drain) counts once.
    findings = list({(f["kind"], f["what"], f["detail"]): f for key in ("reconcile_live", "reconcile_drained")
                     if result.get(key) for f in result[key]["findings"]}.values())
    print("\nsummary (live and after the drain):")
    for label, match in SUMMARY:
        print(f"  {label:48s} {sum(1 for f in findings if match(f)):5d}")
    five = sum(1 for e in st["server_errors"] if "no answer" not in e)
    print(f"  {'API 5xx (503 while ZooKeeper was down excepted)':48s} {five:5d}")
    print(f"  {'requests without an answer':48s} {len(st['server_errors']) - five:5d}")
    print(f"  {'answers slower than the bound':48s} {len(st['slow']):5d}")
    unsettled = sum(n for k, n in st["outcomes"].items() if k.endswith(" unsettled"))
    wrong = len(st["wrong"])
    view = sum(1 for e in st["wrong"] if e.startswith("client-view"))
    print(f"  {'operations unsettled or settled wrong':48s} {unsettled + wrong - view:5d}")
    print(f"  {'shares not as their clients were told':48s} {view:5d}")
    print(f"  {'unacknowledged creates that left a share':48s} {len(result['ghosts']):5d}")
    print(f"  {'operations that ended in an error status':48s} {len(st['op_errors']):5d}"
          + ("" if result["config"].get("strict") else "   (reported; --strict fails on them)"))


def keep_logs(infra, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    stack = infra.stack
    paths = []
    if stack is not None:
        paths += [stack.base / "api.log", stack.base / "pool.log", stack.base / "ganesha" / "ganesha.log"]
        db = stack.base / "shareflow.db"
        if db.exists():
            # The database is in WAL mode: a copy of the file alone misses the last commits.
            src, dst = sqlite3.connect(db), sqlite3.connect(dest / db.name)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
    if infra.zk is not None:
        paths.append(infra.zk.log_path)
    for p in paths:
        if p.exists():
            shutil.copy2(p, dest / p.name)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/chaos.py: needs root (loop devices, mounts, network namespaces)", file=sys.stderr)
        return 2
    from tests.fixtures.chaos import Infrastructure, Soak

    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="shareflow-chaos-"))
    # Sizes grow by extends; the scheduler never overcommits, so room for all.
    pool_gb = max(64, args.clients * args.shares_per_client * 8)
    infra = Infrastructure(base, workers=args.workers, pool_gb=pool_gb, log=log)

    def interrupt(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, interrupt)
    rc = 1
    try:
        log(f"setting up in {base}")
        infra.start()
        soak = Soak(infra.stack, infra.zk, soak_config(args), log=log)
        result = soak.run()
        result["latency_zk_down"] = {"writes": soak.stats.write_latency_zk_down,
                                     "reads": soak.stats.read_latency_zk_down}
        print_report(result, args, time.monotonic() - started)
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=1, default=str))
            log(f"raw results written to {args.json}")
        rc = 0 if result["passed"] else 1
    except KeyboardInterrupt as e:
        log(f"interrupted ({e or 'Ctrl-C'}); cleaning up")
        rc = 130
    except Exception as e:  # noqa: BLE001 - reported, then cleaned up
        log(f"chaos run failed: {e!r}")
        if infra.stack is not None:
            log("last lines of the conductor log:\n" + infra.stack.log("pool")[-3000:])
    finally:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        if args.keep_logs is not None:
            try:
                keep_logs(infra, args.keep_logs)
            except OSError as e:
                log(f"could not keep the logs: {e}")
        log("tearing down")
        problems = infra.stop()
        from shareflow.system import mounts

        left = mounts.mounts_under(base)
        if left:
            problems.append(f"not removing {base}: still mounted below it: {[str(m.mount_point) for m in left]}")
        else:
            shutil.rmtree(base, ignore_errors=True)
        for p in problems:
            log(f"cleanup problem: {p}")
        if problems and rc == 0:
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
