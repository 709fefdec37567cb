#!/usr/bin/env python3
"""shareflow at scale: every figure of issue 13 from one run, at each pool population.

Run from the repository root, as root (loop devices, mounts, Ganesha)::

    .venv/bin/python bench/scale.py --shares-on-pool 0,200 --ops 50
    .venv/bin/python bench/scale.py --shares-on-pool 0,5000 --ops 100 --json out.json --profile

The service is driven as users run it: ``shareflow run`` on a configuration
generated like ``etc/shareflow.toml`` (``tests.fixtures.run_service``) in a
private temporary directory - embedded ZooKeeper, SQLite under its
``state_dir`` (or ``--database postgresql``: a private cluster), a sparse
loop-file btrfs pool sized for the largest population plus the load, NFS-Ganesha
in the host's namespace on 127.0.0.1, free loopback ports for everything, and
quotas unlimited (the project holds thousands of shares). For each population
N in ``--shares-on-pool`` (ascending), the pool is first filled up to N real
shares through the API (``--prepopulate-clients`` clients posting creates over
raw HTTP and waiting for each, then allowing 127.0.0.1 to it - a share has
clients -; no database shortcut), waits until every export is served (a
population an earlier run left, ``--state``, comes back through a cold
NFS-Ganesha start, which the restart phase measures: the other phases measure
the service serving it), then it measures:

* sequential create -> ``available`` and delete -> gone (python-manilaclient,
  ``--ops`` shares, one at a time, polled every ``--seq-poll`` s): p50/p99;
* throughput (``--throughput K:POLL,...``, default ``10:0.02,8:1.0``): ``--ops``
  creates from K manilaclient clients, each polling its share every POLL s,
  then ``--ops`` deletes: creates/s and deletes/s (operations over wall time);
* ``GET /shares/detail`` and ``GET /shares`` (raw HTTP, keep-alive), with exactly N
  shares: p50;
* allow access -> rule ``active`` (manilaclient, 20 ms polls): p50/p99 of
  ``--ops`` rules over a few shares made for it;
* restart-to-served: ``shareflow run`` is stopped and started again on the
  same state (the conductor pool is its child: it cannot be restarted alone
  under ``shareflow run``); the time from the new start, and from the new
  conductor pool process's start (its line in ``shareflow run``'s log), until
  every export is served: a listing of every live share's export from
  127.0.0.1 succeeds (libnfs in-process, ``bench/nfs_probe.py``; each share
  has a rule for it; first 16 shares polled until served, then all, the ones
  that failed again until none is left; the last sweep's duration bounds the
  figure's resolution, its start is reported too);
* CPU seconds per process kind (API workers, conductor workers, the pool
  supervisor, ZooKeeper, Ganesha, dbus-daemon, PostgreSQL, the launcher) per
  phase, from ``/proc/<pid>/stat`` deltas (utime+stime plus reaped children).

Every figure is printed with its ratio to the N=0 figures of the same run
(or of ``--baseline FILE``, an earlier ``--json`` output). ``--profile``
records py-spy speedscope profiles of the API and the conductors during the
first throughput phase into ``--out``. Everything is torn down by its own
handle at the end, also on failure or Ctrl-C. docs/benchmarks.md has results.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import nfs_probe  # noqa: E402
from bench.create_share import log, percentile, remove_base, signals_as_interrupt, signals_ignored  # noqa: E402
from tests.fixtures.infrastructure import PrivatePostgres  # noqa: E402
from tests.fixtures.run_service import RunService  # noqa: E402

VERSION = "2.65"
SHARE_GB = 1
#: Room beyond the shares alive at once (sparse image: costs nothing).
POOL_SPARE_GB = 16
OP_TIMEOUT = 120.0
ACCESS_POLL = 0.02
PREFIX = "/shares/"


class Aborted(Exception):
    pass


# --- clients ----------------------------------------------------------------------


def manila(svc: RunService):
    from manilaclient import client

    return client.Client(VERSION, input_auth_token=svc.token, service_catalog_url=svc.url)


class Http:
    """Raw HTTP on one keep-alive connection (for lists and pre-population)."""

    def __init__(self, svc: RunService):
        self.svc = svc
        self.conn = http.client.HTTPConnection("127.0.0.1", svc.api_port, timeout=OP_TIMEOUT)
        self.headers = {"X-Auth-Token": svc.token, "X-OpenStack-Manila-API-Version": VERSION,
                        "Content-Type": "application/json", "Accept": "application/json"}

    def call(self, method: str, path: str, body=None) -> tuple[int, dict | None]:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(2):
            try:
                self.conn.request(method, f"/v2{path}", body=data, headers=self.headers)
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
            except (http.client.HTTPException, ConnectionError):
                # gunicorn closed an idle keep-alive connection: once more on a new one.
                self.conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def wait_for(check: Callable[[], bool], poll: float, what: str, timeout: float = OP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise Aborted(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)


def create_one(client, name: str, poll: float) -> tuple[str, float]:
    t0 = time.monotonic()
    share = client.shares.create("NFS", SHARE_GB, name=name)
    status = share.status

    def available() -> bool:
        nonlocal status
        if status == "available":
            return True
        status = client.shares.get(share.id).status
        if status == "error":
            raise Aborted(f"share {share.id} ({name}) went to error")
        return status == "available"

    if status != "available":
        time.sleep(poll)
        wait_for(available, poll, f"share {share.id} to become available")
    return share.id, time.monotonic() - t0


def delete_one(client, share_id: str, poll: float) -> float:
    from manilaclient import exceptions as mexc

    t0 = time.monotonic()
    client.shares.delete(share_id)

    def gone() -> bool:
        try:
            status = client.shares.get(share_id).status
        except mexc.NotFound:
            return True
        if status == "error_deleting":
            raise Aborted(f"share {share_id} went to error_deleting")
        return False

    time.sleep(poll)
    wait_for(gone, poll, f"share {share_id} to be gone")
    return time.monotonic() - t0


def run_clients(count: int, items: list, work: Callable[[object, object], object], make_client) -> list:
    """``work(client, item)`` over ``items`` from ``count`` threads, each with its own client."""
    results: list = [None] * len(items)
    errors: list[BaseException] = []
    it = iter(range(len(items)))
    lock = threading.Lock()

    def worker() -> None:
        client = make_client()
        try:
            while not errors:
                with lock:
                    i = next(it, None)
                if i is None:
                    return
                results[i] = work(client, items[i])
        except Exception as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)
        finally:
            if hasattr(client, "close"):
                client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)  # so that Ctrl-C reaches the main thread
    if errors:
        raise Aborted(f"{errors[0]!r}") from errors[0]
    return results


# --- CPU per process kind -------------------------------------------------------------

KINDS = (
    ("shareflow.api.server", "api"),
    ("shareflow.engine.worker", "conductor workers"),
    ("shareflow.engine.pool", "conductor pool"),
    ("QuorumPeerMain", "zookeeper"),
    ("ganesha.nfsd", "ganesha"),
    ("dbus-daemon", "dbus-daemon"),
    ("postgres", "postgresql"),
    ("shareflow.cli.main", "shareflow run"),
)


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(parent pid, CPU jiffies: utime+stime+cutime+cstime, start time) of a process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return int(fields[1]), sum(int(x) for x in fields[11:15]), int(fields[19])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return b""


def service_cpu(roots: set[int], marker: str) -> dict[tuple[int, int], tuple[str, int]]:
    """{(pid, start time): (kind, jiffies)} of the descendants of ``roots`` and
    of processes whose command line names ``marker`` (daemons that detach,
    like dbus-daemon). The start time tells a reused pid from its predecessor."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            stats[int(entry)] = st
    out = {}
    for pid, (_ppid, jiffies, started) in stats.items():
        p, ours = pid, False
        while p > 1:
            if p in roots:
                ours = True
                break
            p = stats.get(p, (0, 0, 0))[0]
        cmd = _cmdline(pid)
        if not ours and marker.encode() not in cmd:
            continue
        kind = next((k for needle, k in KINDS if needle.encode() in cmd), "other")
        out[(pid, started)] = (kind, jiffies)
    return out


class CpuPhase:
    """CPU seconds each process kind used between ``__init__`` and ``read()``."""

    def __init__(self, svc: RunService, postgres: PrivatePostgres | None):
        self.svc, self.postgres = svc, postgres
        self.before = self._snap()
        self.client_before = os.times()
        self.t0 = time.monotonic()

    def _snap(self) -> dict[tuple[int, int], tuple[str, int]]:
        roots = {self.svc.proc.pid} if self.svc.proc is not None else set()
        if self.postgres is not None and (pid := self.postgres.pid()):
            roots.add(pid)
        return service_cpu(roots, str(self.svc.base))

    def read(self) -> dict[str, float]:
        after = self._snap()
        hz = os.sysconf("SC_CLK_TCK")
        kinds: dict[str, float] = {}
        for key, (kind, jiffies) in after.items():
            before = self.before.get(key)
            # A process started during the phase counts from zero; one that
            # ended during it is lost (only the restart phase has those).
            delta = jiffies - (before[1] if before is not None else 0)
            kinds[kind] = kinds.get(kind, 0.0) + max(0, delta) / hz
        t = os.times()
        kinds["benchmark client"] = (t.user + t.system) - (self.client_before.user + self.client_before.system)
        kinds["(wall time of the phase)"] = time.monotonic() - self.t0
        return {k: round(v, 2) for k, v in sorted(kinds.items())}


# --- profiling ------------------------------------------------------------------------


class Profiler:
    """py-spy (``record --subprocesses``) on the API's and the conductor pool's
    process trees, written as speedscope files when stopped."""

    def __init__(self, svc: RunService, out: Path, tag: str):
        self.procs: list[subprocess.Popen] = []
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(exe).exists():
            raise Aborted("--profile needs py-spy (pip install '.[bench]')")
        pids = svc.child_pids()
        for name, key in (("api", "api"), ("conductor", "conductor pool")):
            if key not in pids:
                continue
            dest = out / f"profile-{tag}-{name}.speedscope.json"
            self.procs.append(subprocess.Popen(
                [exe, "record", "--pid", str(pids[key]), "--subprocesses", "--rate", "100", "--nonblocking",
                 "--format", "speedscope", "--output", str(dest)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            log(f"py-spy on {name} (pid {pids[key]}) -> {dest}")

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# --- phases ---------------------------------------------------------------------------


def live_shares(svc: RunService) -> list[dict]:
    h = Http(svc)
    try:
        status, body = h.call("GET", "/shares")
        if status != 200:
            raise Aborted(f"GET /shares answered {status}")
        return body["shares"]
    finally:
        h.close()


def prepopulate(svc: RunService, target: int, clients: int) -> dict:
    """Create shares named ``pre-<i>``, each with a rule for 127.0.0.1,
    through the API until ``target`` exist."""
    have = {s["name"] for s in live_shares(svc) if (s.get("name") or "").startswith("pre-")}
    names = [f"pre-{i}" for i in range(target) if f"pre-{i}" not in have]
    t0 = time.monotonic()
    done = [0]
    lock = threading.Lock()

    def work(h: Http, name: str) -> None:
        status, body = h.call("POST", "/shares", {"share": {"share_proto": "NFS", "size": SHARE_GB, "name": name}})
        if status != 200:
            raise Aborted(f"POST /shares ({name}) answered {status}: {body}")
        share_id = body["share"]["id"]

        def available() -> bool:
            st, b = h.call("GET", f"/shares/{share_id}")
            if st == 200 and b["share"]["status"] == "error":
                raise Aborted(f"pre-population share {share_id} went to error")
            return st == 200 and b["share"]["status"] == "available"

        wait_for(available, 0.25, f"share {share_id} to become available")
        # A rule for this host, as real shares have: Ganesha's pseudo
        # filesystem shows a client only the exports it may mount, so the
        # restart phase can see every export from here.
        status, body = h.call("POST", f"/shares/{share_id}/action", {"allow_access": {
            "access_type": "ip", "access_to": "127.0.0.1", "access_level": "rw"}})
        if status != 200:
            raise Aborted(f"allow_access on {share_id} answered {status}: {body}")
        rule_id = body["access"]["id"]

        def active() -> bool:
            st, b = h.call("GET", f"/share-access-rules/{rule_id}")
            if st == 200 and b["access"]["state"] == "error":
                raise Aborted(f"access rule {rule_id} on {share_id} went to error")
            return st == 200 and b["access"]["state"] == "active"

        wait_for(active, 0.25, f"access rule {rule_id} to become active")
        with lock:
            done[0] += 1
            if done[0] % 500 == 0:
                log(f"  pre-populated {done[0]}/{len(names)} ({done[0] / (time.monotonic() - t0):.1f}/s)")

    if names:
        log(f"pre-populating {len(names)} shares with {clients} clients")
        run_clients(clients, names, work, lambda: Http(svc))
    seconds = time.monotonic() - t0
    return {"created": len(names), "seconds": round(seconds, 1),
            "per_s": round(len(names) / seconds, 2) if names and seconds else None}


def sequential(svc: RunService, ops: int, poll: float, tag: str) -> dict:
    client = manila(svc)
    for i in range(3):  # not counted: each API worker's first post connects to ZooKeeper
        delete_one(client, create_one(client, f"{tag}-warm-{i}", poll)[0], poll)
    creates, ids = [], []
    for i in range(ops):
        share_id, seconds = create_one(client, f"{tag}-seq-{i}", poll)
        ids.append(share_id)
        creates.append(seconds)
    deletes = [delete_one(client, share_id, poll) for share_id in ids]
    return {"create": stats_ms(creates), "delete": stats_ms(deletes)}


def throughput(svc: RunService, ops: int, clients: int, poll: float, tag: str) -> dict:
    names = [f"{tag}-tp-{i}" for i in range(ops)]
    t0 = time.monotonic()
    created = run_clients(clients, names, lambda c, n: create_one(c, n, poll), lambda: manila(svc))
    t1 = time.monotonic()
    ids = [share_id for share_id, _ in created]
    deleted = run_clients(clients, ids, lambda c, i: delete_one(c, i, poll), lambda: manila(svc))
    t2 = time.monotonic()
    return {"clients": clients, "poll": poll, "ops": ops,
            "creates_per_s": round(ops / (t1 - t0), 2), "deletes_per_s": round(ops / (t2 - t1), 2),
            "create": stats_ms([s for _, s in created]), "delete": stats_ms(deleted)}


def allow_access(svc: RunService, ops: int, tag: str) -> tuple[dict, list[str]]:
    """``ops`` rules over a few new shares, the first on each for 127.0.0.1
    (so that the restart phase can read them over NFS). Returns the shares too."""
    client = manila(svc)
    count = max(1, min(5, ops))
    shares = [create_one(client, f"{tag}-acc-{i}", 0.02)[0] for i in range(count)]
    samples = []
    for i in range(ops):
        share_id = shares[i % count]
        address = "127.0.0.1" if i < count else f"10.{(i // 250) % 250}.{i % 250}.1"
        t0 = time.monotonic()
        rule = client.shares.allow(share_id, "ip", address, "rw")
        rule_id = rule["id"] if isinstance(rule, dict) else rule.id

        def active() -> bool:
            state = client.share_access_rules.get(rule_id).state
            if state == "error":
                raise Aborted(f"access rule {rule_id} on {share_id} went to error")
            return state == "active"

        time.sleep(ACCESS_POLL)
        wait_for(active, ACCESS_POLL, f"access rule {rule_id} to become active")
        samples.append(time.monotonic() - t0)
    return stats_ms(samples), shares


def lists(svc: RunService, requests: int) -> dict:
    h = Http(svc)
    out = {}
    try:
        for path in ("/shares/detail", "/shares"):
            times = []
            for _ in range(requests + 1):
                t0 = time.monotonic()
                status, body = h.call("GET", path)
                times.append(time.monotonic() - t0)
                if status != 200:
                    raise Aborted(f"GET {path} answered {status}")
            out[path] = {**stats_ms(times[1:]), "shares": len(body["shares"])}
    finally:
        h.close()
    return out


def unserved(svc: RunService, share_ids: list[str]) -> set[str]:
    """The shares whose export this host cannot list over NFS (each has a rule
    for 127.0.0.1): a LOOKUP of ``/shares/<id>`` and a READDIR of its root,
    as ``nfs-ls nfs://127.0.0.1/shares/<id>`` does, through libnfs in this
    process on one connection (``bench/nfs_probe.py``: about 0.3 ms an
    export, where an ``nfs-ls`` process each made one sweep over 5,000
    take 7.7 s, as long as the restart it measured). libnfs 4.0 cannot list
    the pseudo directory ``/shares`` itself once its entries do not fit one
    READDIR reply (about 50 here), so each export is looked up."""
    bad = nfs_probe.unlisted("127.0.0.1", svc.nfs_port, [PREFIX + share_id for share_id in share_ids])
    return {path[len(PREFIX):] for path in bad}


def wait_all_served(svc: RunService, expected: list[str], when: str) -> None:
    """Wait until every export of ``expected`` is served: the service
    answers before its NFS server has every export (the start of thousands
    takes a while), so the first few are awaited before all are checked."""
    wait_for(lambda: svc.proc.poll() is not None or not unserved(svc, expected[:16]), 0.5,
             f"the exports {when}", timeout=900)
    missing = unserved(svc, expected)
    if missing:
        raise Aborted(f"{when}, {len(missing)} of {len(expected)} exports were not served, "
                      f"e.g. {sorted(missing)[:3]}")


def restart(svc: RunService, profile: Path | None = None) -> dict:
    """``profile``: py-spy on ``shareflow run``'s whole tree from its start
    until every export is served, written there as collapsed stacks
    (``--format raw``: one line per stack and its sample count)."""
    expected = sorted(s["id"] for s in live_shares(svc))
    wait_all_served(svc, expected, "before the restart")
    t0 = time.monotonic()
    problems = svc.stop()
    if problems:
        log(f"  stop: {problems}")
    t1 = time.monotonic()
    log_before = len(svc.output())
    svc.start_process()
    spy = None
    if profile is not None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        spy = subprocess.Popen([exe, "record", "--pid", str(svc.proc.pid), "--subprocesses", "--rate", "100",
                                "--nonblocking", "--format", "raw", "--output", str(profile)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def sweep(share_ids: list[str]) -> list[str]:
        if svc.proc.poll() is not None:
            raise Aborted(f"shareflow run exited with {svc.proc.returncode}:\n{svc.output()[-2000:]}")
        if time.monotonic() - t1 > 900:
            raise Aborted("exports still not served 900 s after the restart")
        return sorted(unserved(svc, share_ids))

    # A few first, polled closely (cheap), then all of them: a sweep over
    # thousands takes seconds of its own, so it starts once Ganesha serves.
    probe = expected[:16]
    while probe and sweep(probe):
        time.sleep(0.05)
    t_first = time.monotonic()
    pending, sweeps, last_sweep = expected, 0, 0.0
    while pending:
        ts, ts_wall = time.monotonic(), time.time()
        pending = sweep(pending)
        last_sweep, sweeps = time.monotonic() - ts, sweeps + 1
        if pending:
            time.sleep(0.05)
    t_served_wall, t2 = time.time(), time.monotonic()
    ganesha_cpu = _ganesha_cpu(svc)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=120)
        log(f"restart profile (py-spy, collapsed stacks) -> {profile}")
    svc.wait_ready()
    pool_started = svc.child_started_wall("conductor pool", after=log_before)
    # Every export was served at some instant of the last sweep: between its
    # start (a lower bound) and its end (the figure).
    return {"exports": len(expected), "sweeps": sweeps, "last_sweep_s": round(last_sweep, 2),
            "stop_s": round(t1 - t0, 2), "start_to_first_served_s": round(t_first - t1, 2),
            "start_to_last_sweep_start_s": round(ts - t1, 2),
            "start_to_served_s": round(t2 - t1, 2),
            "pool_start_to_last_sweep_start_s": round(ts_wall - pool_started, 2) if pool_started else None,
            "pool_start_to_served_s": round(t_served_wall - pool_started, 2) if pool_started else None,
            "ganesha_start_cpu_s": ganesha_cpu}


def _ganesha_cpu(svc: RunService) -> float | None:
    """CPU seconds of the running NFS-Ganesha so far (right after a start
    that is all its start: it serves nothing else yet)."""
    try:
        pid = int((svc.state_dir / "backends" / "local" / "ganesha" / "ganesha.pid").read_text())
        stat = _stat(pid)
    except (OSError, ValueError):
        return None
    return round(stat[1] / os.sysconf("SC_CLK_TCK"), 2) if stat else None


def stats_ms(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50": round(percentile(values, 50) * 1000, 1),
            "p99": round(percentile(values, 99) * 1000, 1)}


# --- one population ---------------------------------------------------------------------


def measure(svc: RunService, postgres, n: int, args, out: Path, result: dict) -> None:
    """Fill ``result`` phase by phase (what was measured survives an abort)."""
    tag = f"n{n}"
    result.update({"shares_on_pool": n, "cpu": {}})

    def phase(name: str, fn):
        log(f"[N={n}] {name}")
        cpu = CpuPhase(svc, postgres)
        value = fn()
        result["cpu"][name] = cpu.read()
        return value

    result["prepopulate"] = phase("prepopulate", lambda: prepopulate(svc, n, args.prepopulate_clients))
    live = sorted(s["id"] for s in live_shares(svc))
    result["live_shares"] = len(live)
    # A population made by an earlier run (--state) is served again by a
    # cold NFS-Ganesha start, seconds of both CPUs at thousands of exports
    # (the restart phase measures it): the phases measure the service
    # serving its population, not that start.
    t_served = time.monotonic()
    phase("every export served", lambda: wait_all_served(svc, live, "before the phases"))
    result["served_before_phases_s"] = round(time.monotonic() - t_served, 2)
    if args.restart_only:
        result["restarts"] = []
        for _ in range(args.restarts):
            profile = out / f"profile-restart-n{n}-{len(result['restarts'])}.txt" if args.profile else None
            result["restarts"].append(phase("restart", lambda: restart(svc, profile)))
            log(f"[N={n}] restart: {result['restarts'][-1]}")
        result["restart"] = min(result["restarts"], key=lambda r: r["start_to_served_s"])
        return
    result["sequential"] = phase("sequential", lambda: sequential(svc, args.ops, args.seq_poll, tag))
    result["throughput"] = []
    for index, (clients, poll) in enumerate(args.throughput):
        profiler = Profiler(svc, out, f"{tag}-{clients}c") if args.profile and index == 0 else None
        try:
            result["throughput"].append(phase(f"throughput {clients}c@{poll:g}s",
                                              lambda: throughput(svc, args.ops, clients, poll, tag)))
        finally:
            if profiler is not None:
                profiler.stop()
    result["lists"] = phase("lists", lambda: lists(svc, args.list_requests))
    access, sample = phase("allow access", lambda: allow_access(svc, args.ops, tag))
    result["allow_access"] = access
    if args.restart:
        try:
            result["restart"] = phase("restart", lambda: restart(svc))
        except Aborted as e:
            log(f"[N={n}] restart: {e}")
            result["restart"] = {"error": str(e)}
            if svc.proc is None or svc.proc.poll() is not None:
                raise
            svc.wait_ready()  # the phases of the next population need the API
    client = manila(svc)
    for share_id in sample:
        delete_one(client, share_id, 0.05)


def figures(r: dict) -> dict[str, float | None]:
    """The headline figures of one population, flat, in print order."""
    f: dict[str, float | None] = {}
    seq = r.get("sequential", {})
    for op in ("create", "delete"):
        for q in ("p50", "p99"):
            f[f"{op} {q} ms"] = seq.get(op, {}).get(q)
    for t in r.get("throughput", []):
        f[f"creates/s, {t['clients']} clients polling {t['poll']:g} s"] = t["creates_per_s"]
        f[f"deletes/s, {t['clients']} clients polling {t['poll']:g} s"] = t["deletes_per_s"]
    f["GET /shares/detail p50 ms"] = r.get("lists", {}).get("/shares/detail", {}).get("p50")
    f["GET /shares p50 ms"] = r.get("lists", {}).get("/shares", {}).get("p50")
    f["allow -> active p50 ms"] = r.get("allow_access", {}).get("p50")
    f["allow -> active p99 ms"] = r.get("allow_access", {}).get("p99")
    f["waited for every export served before the phases s"] = r.get("served_before_phases_s")
    if "restart" in r:
        f["restart: start -> first exports served s"] = r["restart"].get("start_to_first_served_s")
        f["restart: start -> every export served s"] = r["restart"].get("start_to_served_s")
        f["restart: conductor pool start -> served s"] = r["restart"].get("pool_start_to_served_s")
    for phase_name, kinds in r.get("cpu", {}).items():
        if phase_name in ("prepopulate", "every export served"):
            continue
        for kind, seconds in kinds.items():
            f[f"CPU s, {phase_name}: {kind}"] = seconds
    return f


def print_report(results: list[dict], baseline: dict | None) -> None:
    base = figures(baseline) if baseline is not None else None
    cols = [figures(r) for r in results]
    names = list(dict.fromkeys(k for c in cols for k in c))
    head = "figure".ljust(52) + "".join(f"N={r['shares_on_pool']:<6}".rjust(22) for r in results)
    print("\n" + head)
    print("-" * len(head))
    for name in names:
        row = name.ljust(52)
        for c in cols:
            v = c.get(name)
            cell = "-" if v is None else f"{v:g}"
            if base is not None and v is not None and base.get(name):
                cell += f" ({v / base[name]:.2f}x)"
            row += cell.rjust(22)
        print(row)
    for r in results:
        p = r.get("prepopulate", {})
        if p.get("created"):
            print(f"\npre-population to N={r['shares_on_pool']}: {p['created']} shares in {p['seconds']} s "
                  f"({p['per_s']}/s)")
    if base is not None:
        print(f"\n(ratios to N={baseline['shares_on_pool']}"
              f"{' of ' + baseline['from'] if baseline.get('from') else ''})")


# --- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/scale.py", description=__doc__.splitlines()[0])
    p.add_argument("--shares-on-pool", default="0,200",
                   help="comma-separated populations, measured in ascending order (default 0,200)")
    p.add_argument("--ops", type=int, default=50, help="operations per measured phase (default 50)")
    p.add_argument("--throughput", default="10:0.02,8:1.0",
                   help="CLIENTS:POLL_SECONDS,... for the throughput phases (default 10:0.02,8:1.0)")
    p.add_argument("--seq-poll", type=float, default=0.005,
                   help="poll interval of the sequential phase, seconds (default 0.005)")
    p.add_argument("--list-requests", type=int, default=10, help="requests per list measured (default 10)")
    p.add_argument("--prepopulate-clients", type=int, default=16,
                   help="concurrent clients filling the pool (default 16)")
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--no-restart", dest="restart", action="store_false", help="skip the restart phase")
    p.add_argument("--restart-only", action="store_true",
                   help="pre-populate, then measure only the restart (--restarts times): no other phase")
    p.add_argument("--restarts", type=int, default=1, help="restarts measured per population (default 1)")
    p.add_argument("--state", type=Path, default=None,
                   help="keep the service's directory (state, pool image, configuration) here and reuse "
                        "what an earlier run left there: a population made once is measured again "
                        "without its pre-population (default: a new temp dir, removed at the end)")
    p.add_argument("--profile", action="store_true",
                   help="py-spy speedscope profiles of API and conductors in the first throughput phase")
    p.add_argument("--baseline", type=Path, default=None,
                   help="ratios against the N=0 (or first) population of this earlier --json output")
    p.add_argument("--json", type=Path, default=None, help="write all results here")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for profiles and shareflow run's log (default: a new one under /tmp)")
    args = p.parse_args(argv)
    try:
        args.populations = sorted({int(x) for x in args.shares_on_pool.split(",")})
        args.throughput = [(int(k), float(v)) for k, v in (x.split(":") for x in args.throughput.split(","))]
    except ValueError:
        p.error("--shares-on-pool is N[,N...] and --throughput is CLIENTS:POLL[,...]")
    if any(n < 0 for n in args.populations) or args.ops < 1:
        p.error("populations must be >= 0 and --ops >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/scale.py needs root (shareflow run mounts a pool and runs Ganesha)", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="shareflow-scale-out-"))
    out.mkdir(parents=True, exist_ok=True)
    most = max(args.populations)
    clients = max([k for k, _ in args.throughput] + [1])
    pool_gb = (most + args.ops + clients + 10) * SHARE_GB + POOL_SPARE_GB
    if args.state is not None:
        # A kept directory keeps its pool image: its size was fixed by the
        # run that made it (the image is created only when absent).
        base = args.state.resolve()
        base.mkdir(parents=True, exist_ok=True)
        kept = base / "scale-state.json"
        if kept.exists():
            pool_gb = max(pool_gb, json.loads(kept.read_text())["pool_gb"])
        kept.write_text(json.dumps({"pool_gb": pool_gb}))
    else:
        base = Path(tempfile.mkdtemp(prefix="shareflow-scale-"))
    postgres = svc = None
    results: list[dict] = []
    rc = 0
    with signals_as_interrupt():
        try:
            db_url = None
            if args.database == "postgresql":
                postgres = PrivatePostgres(log)
                db_url = postgres.start()
            svc = RunService(base, pool_gb=pool_gb, db_url=db_url, log=log)
            t = time.monotonic()
            svc.start()
            log(f"shareflow run up in {time.monotonic() - t:.1f} s: {svc.url}, pool {pool_gb} GiB (sparse), "
                f"NFS on 127.0.0.1:{svc.nfs_port}, state in {base}")
            for n in args.populations:
                results.append({})
                measure(svc, postgres, n, args, out, results[-1])
        except (Aborted, RuntimeError) as e:
            log(f"ABORTED: {e}")
            rc = 1
        except KeyboardInterrupt:
            log("interrupted")
            rc = 130
        finally:
            with signals_ignored():
                if svc is not None:
                    with contextlib.suppress(OSError):
                        shutil.copy2(base / "run.log", out / "run.log")
                    problems = svc.stop()
                    if problems:
                        log(f"teardown: {problems}")
                if postgres is not None:
                    postgres.stop()
                left = remove_base(base) if args.state is None else None
                if left:
                    log(left)
    results = [r for r in results if r.get("shares_on_pool") is not None]
    if results:
        baseline = None
        if args.baseline is not None:
            previous = json.loads(args.baseline.read_text())["results"]
            baseline = {**next((r for r in previous if r["shares_on_pool"] == 0), previous[0]),
                        "from": str(args.baseline)}
        elif results[0]["shares_on_pool"] == 0:
            baseline = results[0]
        print_report(results, baseline)
        doc = {"command": " ".join(["bench/scale.py", *(argv if argv is not None else sys.argv[1:])]),
               "database": args.database, "pool_gb": pool_gb, "results": results,
               "figures": {r["shares_on_pool"]: figures(r) for r in results}}
        if args.json is not None:
            args.json.write_text(json.dumps(doc, indent=1))
            log(f"results written to {args.json}")
    log(f"logs{' and profiles' if args.profile else ''} in {out}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
