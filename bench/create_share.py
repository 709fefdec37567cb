#!/usr/bin/env python3
"""Create-share and delete-share latency of shareflow on the real stack.

Run from the repository root, as root (loop devices, mounts, namespaces)::

    .venv/bin/python bench/create_share.py [--shares N] [--concurrency K]

(``make bench`` runs exactly ``.venv/bin/python bench/create_share.py``.)

The script starts everything it measures by itself and privately, in a fresh
temporary directory: a ZooKeeper server on a free loopback port, a sparse
btrfs loop pool big enough for all the shares (the scheduler never
overcommits), and a :class:`tests.fixtures.stack.ServiceStack` over them
(SQLite database, btrfs pool view, a network namespace running NFS-Ganesha,
the API under gunicorn, the conductor pool). Through the unmodified
python-manilaclient it creates N shares (after a few warm-up shares that are
not counted), then deletes them, one at a time or ``--concurrency K`` at
once, and reports:

* create latency: from just before the POST /shares request until a GET of
  the share first answers ``available``;
* delete latency: from just before the DELETE request until a GET answers 404;
* p50/p90/p99/max/mean/min of both (nearest-rank percentiles);
* the environment, how busy the machine was (this benchmark's processes vs.
  everything else) and ZooKeeper requests per share;
* where the time goes, from the service's own records: the job row
  (``created_at``, ``started_at``, ``finished_at``), TaskFlow's per-step
  durations (``DurationListener``, read with ``JobService.show``), the share's
  ``updated_at`` (written by the final step) and the API's access log
  (server-side request time).

The share is polled every ``--poll-interval`` seconds (5 ms by default), so
the moment it is *seen* available lags the moment it *became* available by up
to one interval plus one GET round trip; the output says so, and also gives a
server-side latency that does not depend on the poll.

Everything is torn down at the end by its own handle - also on failure,
Ctrl-C or SIGTERM: the stack (API and conductor processes by pid, Ganesha,
namespaces, the pool view, the ZooKeeper chroot), the btrfs pool (its loop
device and image), the ZooKeeper server (by pid) and the temporary directory.
The run is bounded (``--max-seconds``) and talks only to 127.0.0.1 and the
stack's own network namespaces. docs/benchmarks.md has the results.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# ZooKeeper (500 ms ticks, sessions from 1 s, so the stack's 2 s conductor
# sessions are honoured), the pool, PostgreSQL and the stack, each torn down
# by its own handle: shared with bench/chaos.py and bench/scale.py.
from tests.fixtures.infrastructure import Infrastructure  # noqa: E402

MIN_SHARES = 50
DEFAULT_SHARES = 60
DEFAULT_POLL = 0.005
OP_TIMEOUT = 60.0
#: Spare room on the (sparse) pool image beyond the shares that live at once:
#: the scheduler never overcommits, so the pool must hold all of them.
POOL_SPARE_GB = 8


# gunicorn access log, shareflow.api.server.ACCESS_LOG_FORMAT:
#   %(h)s "%(r)s" %(s)s %(B)s %(M)sms %({x-openstack-request-id}o)s
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) \S+ (?P<ms>\d+)ms (?P<rid>\S+)')


class Aborted(Exception):
    """The run was stopped (signal, deadline) or an operation failed."""

    def __init__(self, message: str, share_id: str | None = None):
        super().__init__(message)
        self.share_id = share_id


# --- small helpers -------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values),
        "mean": statistics.fmean(values),
        "min": min(values),
    }


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:8.1f}"


def epoch(value: dt.datetime | None) -> float | None:
    """A naive-UTC database timestamp as seconds since the epoch."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC).timestamp()


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def command_output(argv: list[str]) -> str:
    """First line of what ``argv`` prints ("" if nothing), or "unknown" when it fails."""
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0] if lines else ""


def dpkg_version(package: str) -> str:
    out = command_output(["dpkg-query", "-W", "-f", "${Version}", package])
    return out or "unknown"


# --- measurements ----------------------------------------------------------


@dataclasses.dataclass
class Sample:
    share_id: str | None = None
    # wall-clock seconds (time.time(), comparable with the database's UTC timestamps)
    t_request: float = 0.0
    t_response: float = 0.0
    t_seen: float = 0.0
    # latency on the monotonic clock
    latency: float = 0.0
    polls: int = 0
    poll_rtts: list[float] = dataclasses.field(default_factory=list)
    #: requests the service answered with an error although the operation went on
    api_errors: list[str] = dataclasses.field(default_factory=list)


class Poller:
    """Tight polling of one share through manilaclient."""

    def __init__(self, client, interval: float, deadline: float, stop: threading.Event, *,
                 find_by_name: Callable[[str], str | None] | None = None, strict: bool = False):
        self.client = client
        self.interval = interval
        self.deadline = deadline
        self.stop = stop
        self.find_by_name = find_by_name
        self.strict = strict

    def _tick(self, started: float, what: str) -> None:
        if self.stop.is_set():
            raise Aborted("stopped")
        now = time.monotonic()
        if now > self.deadline:
            raise Aborted("the run's time limit (--max-seconds) was reached")
        if now - started > OP_TIMEOUT:
            raise Aborted(f"timed out after {OP_TIMEOUT:g} s waiting for {what}")
        time.sleep(self.interval)

    def create(self, sample: Sample, size: int, name: str) -> None:
        from manilaclient import exceptions as mexc

        sample.t_request = time.time()
        t0 = time.monotonic()
        try:
            share = self.client.shares.create("NFS", size, name=name)
            share_id, status = share.id, share.status
        except mexc.ClientException as e:
            # A 500 answered after the share was recorded and its job posted
            # (the service's bug, not the benchmark's): keep measuring that
            # share, found by its unique name, and report the error.
            code = getattr(e, "http_status", None) or getattr(e, "code", None)
            if code != 500 or self.find_by_name is None or self.strict:
                raise
            share_id = self.find_by_name(name)
            if share_id is None:
                raise
            sample.api_errors.append(f"POST /shares answered {code}: {e}")
            status = "creating"
        sample.t_response = time.time()
        sample.share_id = share_id
        while status != "available":
            if status == "error":
                raise Aborted(f"share {share_id} went to error", share_id)
            self._tick(t0, f"share {share_id} to become available")
            p0 = time.monotonic()
            status = self.client.shares.get(share_id).status
            sample.poll_rtts.append(time.monotonic() - p0)
            sample.polls += 1
        sample.latency = time.monotonic() - t0
        sample.t_seen = time.time()

    def delete(self, sample: Sample, share_id: str) -> None:
        from manilaclient import exceptions as mexc

        sample.share_id = share_id
        sample.t_request = time.time()
        t0 = time.monotonic()
        self.client.shares.delete(share_id)
        sample.t_response = time.time()
        while True:
            p0 = time.monotonic()
            try:
                status = self.client.shares.get(share_id).status
            except mexc.NotFound:
                sample.poll_rtts.append(time.monotonic() - p0)
                sample.polls += 1
                break
            sample.poll_rtts.append(time.monotonic() - p0)
            sample.polls += 1
            if status == "error_deleting":
                raise Aborted(f"share {share_id} went to error_deleting", share_id)
            self._tick(t0, f"share {share_id} to be gone")
        sample.latency = time.monotonic() - t0
        sample.t_seen = time.time()


def run_phase(
    name: str, items: list, work: Callable[[Poller, object], Sample], *,
    clients: list, interval: float, deadline: float, stop: threading.Event,
    find_by_name: Callable[[str], str | None] | None = None, strict: bool = False,
    explain: Callable[[str], str] | None = None,
) -> list[Sample]:
    """Run ``work`` over ``items`` with len(clients) threads (1 = sequential),
    each with its own manilaclient. Returns the samples in item order."""
    results: list[Sample | None] = [None] * len(items)
    errors: list[BaseException] = []
    next_index = iter(range(len(items)))
    lock = threading.Lock()

    def worker(client) -> None:
        poller = Poller(client, interval, deadline, stop, find_by_name=find_by_name, strict=strict)
        while not stop.is_set():
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            try:
                results[i] = work(poller, items[i])
            except Exception as e:  # noqa: BLE001 - reported by the main thread
                errors.append(e)
                stop.set()
                return
            except BaseException:  # Ctrl-C in the sequential case: the caller cleans up
                stop.set()
                raise

    if len(clients) == 1:
        worker(clients[0])
    else:
        threads = [threading.Thread(target=worker, args=(c,), name=f"{name}-{i}", daemon=True)
                   for i, c in enumerate(clients)]
        for t in threads:
            t.start()
        # join with a timeout so that Ctrl-C reaches the main thread
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    if errors:
        detail = errors[0]
        if isinstance(detail, Aborted) and explain is not None and detail.share_id:
            with contextlib.suppress(Exception):
                detail = f"{detail} ({explain(detail.share_id)})"
        raise Aborted(f"{name} failed: {detail!r}") from errors[0]
    if stop.is_set() and any(r is None for r in results):
        raise Aborted(f"{name} stopped")
    return [r for r in results if r is not None]


# --- CPU accounting -------------------------------------------------------------


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _tree_jiffies(roots: set[int]) -> int:
    """CPU jiffies used by ``roots`` and their live descendants (and the
    children they have reaped): this benchmark's own processes."""
    parent: dict[int, int] = {}
    used: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        parent[int(entry)] = int(fields[1])
        used[int(entry)] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    total = 0
    for pid, cpu in used.items():
        p = pid
        while p > 1 and p not in roots:
            p = parent.get(p, 0)
        if p in roots:
            total += cpu
    return total


class CpuMeter:
    """How busy the machine was during a phase, and how much of that was not
    this benchmark (other users of the machine distort the figures)."""

    def __init__(self, extra_roots: tuple[int, ...] = ()):
        # daemons we started that are not our descendants (PostgreSQL's postmaster)
        self._roots = {os.getpid(), *extra_roots}
        self._t = time.monotonic()
        self._machine = _machine_jiffies()
        self._ours = _tree_jiffies(self._roots)

    def read(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._t
        busy, total = _machine_jiffies()
        ours = _tree_jiffies(self._roots)
        d_busy, d_total = busy - self._machine[0], total - self._machine[1]
        machine = d_busy / d_total if d_total else 0.0
        hz = os.sysconf("SC_CLK_TCK")
        ncpu = os.cpu_count() or 1
        ours_share = (ours - self._ours) / hz / (elapsed * ncpu) if elapsed else 0.0
        return {"machine_busy": machine, "ours": ours_share, "others": max(0.0, machine - ours_share),
                "loadavg": Path("/proc/loadavg").read_text().split()[0]}


def zk_received(zk) -> int | None:
    """Packets (requests) the ZooKeeper server has received so far ('srvr')."""
    from shareflow.system.zookeeper import four_letter_word

    try:
        m = re.search(r"^Received: (\d+)", four_letter_word(zk.host, zk.port, "srvr"), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


# --- the breakdown ------------------------------------------------------------


def access_log(text: str) -> dict[str, tuple[str, str, int, float]]:
    """request id -> (method, path, status, server-side seconds)."""
    out = {}
    for line in text.splitlines():
        m = _ACCESS.search(line)
        if m:
            out[m["rid"]] = (m["method"], m["path"], int(m["status"]), int(m["ms"]) / 1000)
    return out


def job_records(stack, samples: list[Sample], operation: str) -> list[dict]:
    """Per sample: the job's timestamps and step durations, and the share's
    ``updated_at`` (for create: when it became available)."""
    from shareflow.db.models import Share
    from shareflow.services.jobs import JobService

    jobs = JobService(stack.db)
    requests = access_log(stack.log("api"))
    records = []
    for s in samples:
        matching = [j for j in jobs.list(resource_id=s.share_id) if j.operation == operation]
        if not matching:
            records.append({})
            continue
        view = jobs.show(matching[0].id)
        job = view.job
        with stack.db.read() as session:
            share = session.get(Share, s.share_id)
            share_updated = epoch(share.updated_at) if share is not None else None
        api = requests.get(job.request_id or "")
        records.append({
            "job_id": job.id,
            "state": job.state,
            "created": epoch(job.created_at),
            "started": epoch(job.started_at),
            "finished": epoch(job.finished_at),
            "share_updated": share_updated,
            "api_server": api[3] if api else None,
            "steps": {st.name: st.duration for st in view.steps},
            "schedule": _schedule_record(jobs, view.job) if operation == "create_share" else None,
        })
    return records


def _schedule_record(jobs, create) -> dict | None:
    """The ``schedule_share`` job a create job follows (``retry_of``): its
    timestamps and steps, to split the first line of the create's path."""
    if not create.retry_of:
        return None
    view = jobs.show(create.retry_of)
    if view.job.operation != "schedule_share":
        return None
    return {"created": epoch(view.job.created_at), "started": epoch(view.job.started_at),
            "finished": epoch(view.job.finished_at), "steps": {st.name: st.duration for st in view.steps}}


def breakdown(samples: list[Sample], records: list[dict], *, final_step: str = "finish") -> dict:
    """The critical path of each operation cut at the timestamps the service
    records, in order (their means add up to the mean latency), plus the
    per-step durations and what happens after the client saw the result.

    The cuts: request sent (client) -> job row recorded (``jobs.created_at``)
    -> job claimed and running (``jobs.started_at``) -> the final step starts
    writing the status (``shares.updated_at``) -> the client sees it. The
    engine segment is split into the steps' durations (TaskFlow's
    DurationListener: from an atom's RUNNING notification to its SUCCESS
    notification, i.e. the task itself plus saving its result) and the
    rest: loading the flow, saving each atom's RUNNING state and progress,
    the other listeners. All values in seconds."""
    comps: dict[str, list[float]] = {}
    steps: dict[str, list[float]] = {}
    after: dict[str, list[float]] = {}
    #: The first line split by the schedule_share job's record (creates).
    scheduling: dict[str, list[float]] = {}
    order: list[str] = []

    def add(table: dict, key: str, value: float | None) -> None:
        if value is not None:
            table.setdefault(key, []).append(value)

    for s, r in zip(samples, records):
        if not r or r.get("started") is None or r.get("share_updated") is None:
            continue
        durations = {k: v for k, v in r["steps"].items() if v is not None}
        for name in r["steps"]:
            if name not in order:
                order.append(name)
        for name, d in durations.items():
            steps.setdefault(name, []).append(d)
        before_final = sum(d for k, d in durations.items() if k != final_step)
        # The final step writes the share's status (available / deleted) with
        # updated_at = the clock it read at the start of its execute.
        final_start = r["share_updated"]
        add(comps, "API: request sent -> job recorded (jobs.created_at)", r["created"] - s.t_request)
        sched = r.get("schedule")
        if sched and sched.get("started") is not None:
            st = {k: v for k, v in sched["steps"].items() if v is not None}
            add(scheduling, "request sent -> schedule_share job recorded", sched["created"] - s.t_request)
            add(scheduling, "its post + wake-up + claim", sched["started"] - sched["created"])
            add(scheduling, "its steps begin + place_share", st.get("begin", 0) + st.get("place_share", 0))
            add(scheduling, "its loading and bookkeeping up to the create job recorded",
                r["created"] - sched["started"] - st.get("begin", 0) - st.get("place_share", 0))
            if sched.get("finished") is not None:
                add(after, "create job recorded -> schedule_share job finished", sched["finished"] - r["created"])
        add(comps, "post + wake-up + claim (created_at -> started_at)", r["started"] - r["created"])
        add(comps, "steps before the final one (sum of their durations)", before_final)
        add(comps, "TaskFlow bookkeeping between the steps (the rest)",
            (final_start - r["started"]) - before_final)
        add(comps, f"'{final_step}' starts -> client sees it (commit + poll)", s.t_seen - final_start)
        if r.get("api_server") is not None:
            add(after, "API server-side time of the request (access log)", r["api_server"])
        add(after, "client-side round trip of the request", s.t_response - s.t_request)
        if final_step in durations:
            add(after, f"'{final_step}' step duration (status commit + result save)", durations[final_step])
        if r.get("finished") is not None:
            add(after, f"'{final_step}' starts -> job recorded finished", r["finished"] - final_start)
    return {"components": comps, "steps": steps, "step_order": order, "after": after, "scheduling": scheduling}


def _row(label: str, values: list[float], indent: int = 2) -> str:
    return (f"{' ' * indent}{label:{60 - indent}s} {ms(statistics.median(values))} "
            f"{ms(statistics.fmean(values))} {ms(percentile(values, 90))}")


def print_breakdown(title: str, total: list[float], bd: dict, final_step: str = "finish") -> None:
    print(f"\n{title}")
    print(f"  {'critical path, in order':58s} {'median':>8s} {'mean':>8s} {'p90':>8s}  (ms)")
    for key, values in bd["components"].items():
        print(_row(key, values))
        if key.startswith("API: request sent") and bd.get("scheduling"):
            for name, vals in bd["scheduling"].items():
                print(_row(name, vals, indent=6))
        if key.startswith("steps before"):
            for name in bd["step_order"]:
                vals = bd["steps"].get(name)
                if vals and name != final_step:
                    print(_row(f"step {name}", vals, indent=6))
    print(_row("= latency as measured", total))
    print("  (the means of the five lines add up to the mean latency; medians need not)")
    if bd["after"]:
        print("  for reference, not on the path above:")
        for key, values in bd["after"].items():
            print(_row(key, values, indent=4))


# --- environment ---------------------------------------------------------------


def environment(stack, zk) -> dict:
    import sqlalchemy as sa

    from shareflow.system.zookeeper import four_letter_word

    try:
        srvr = four_letter_word(zk.host, zk.port, "srvr")
        zk_version = srvr.splitlines()[0].split(":", 1)[1].strip().split(",")[0].split("-$")[0]
    except (OSError, IndexError):
        zk_version = dpkg_version("zookeeper")
    dialect = stack.db.engine.dialect.name
    if dialect == "sqlite":
        db = f"SQLite {sqlite3.sqlite_version} (WAL, synchronous=NORMAL)"
    else:
        with stack.db.read() as session:
            version = session.execute(sa.text("show server_version")).scalar()
        db = f"PostgreSQL {version} (private cluster on loopback, fsync=off, synchronous_commit=off)"
    commit = command_output(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = command_output(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"])
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "database": db,
        "zookeeper": zk_version,
        "ganesha": command_output(["ganesha.nfsd", "-v"]).replace("NFS-Ganesha Release = ", ""),
        "btrfs_progs": dpkg_version("btrfs-progs"),
        "taskflow": version_of("taskflow"),
        "sqlalchemy": version_of("SQLAlchemy"),
        "kazoo": version_of("kazoo"),
        "falcon": version_of("falcon"),
        "gunicorn": version_of("gunicorn"),
        "manilaclient": version_of("python-manilaclient"),
        "shareflow_commit": commit + (" (+ local changes)" if dirty not in ("", "unknown") else ""),
        "api_workers": stack.config.api.workers,
        "conductor_workers": stack.config.conductor.workers,
        "conductor_poll_interval": stack.config.conductor.poll_interval,
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# --- set-up and teardown ----------------------------------------------------------


def remove_base(base: Path) -> str | None:
    """Remove the temp dir unless something is still mounted below it."""
    from shareflow.system import mounts

    left = mounts.mounts_under(base)
    if left:
        return f"not removing {base}: still mounted below it: {[str(m.mount_point) for m in left]}"
    shutil.rmtree(base, ignore_errors=True)
    return None


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """SIGINT (also when inherited as ignored, as by a background job of a
    shell), SIGTERM and SIGHUP end the run like Ctrl-C, so that cleanup runs."""

    def handler(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


@contextlib.contextmanager
def signals_ignored() -> Iterator[None]:
    """While tearing down: a second Ctrl-C must not leave mounts behind."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, signal.SIG_IGN) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --- main ------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/create_share.py", description=__doc__.splitlines()[0])
    p.add_argument("--shares", type=int, default=DEFAULT_SHARES,
                   help=f"shares to create and delete (default {DEFAULT_SHARES}, at least {MIN_SHARES})")
    p.add_argument("--concurrency", type=int, default=1,
                   help="clients working at the same time, each on its own share (default 1: sequential)")
    p.add_argument("--warmup", type=int, default=3,
                   help="shares created and deleted first and not counted (default 3)")
    p.add_argument("--size", type=int, default=1, help="share size in GiB (default 1)")
    p.add_argument("--poll-interval", type=float, default=DEFAULT_POLL,
                   help=f"seconds between GETs of a share (default {DEFAULT_POLL})")
    p.add_argument("--workers", type=int, default=2, help="conductor worker processes (default 2)")
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                   help="the service's database: SQLite file (default) or a private PostgreSQL cluster")
    p.add_argument("--zk-force-sync", choices=("yes", "no"), default="yes",
                   help="ZooKeeper fsyncs its transaction log (default yes, as in production)")
    p.add_argument("--max-seconds", type=float, default=900.0,
                   help="the whole run stops (and cleans up) after this long (default 900)")
    p.add_argument("--strict", action="store_true",
                   help="abort on a 500 answer to a create (by default the share is still measured "
                        "and the error reported)")
    p.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    p.add_argument("--keep-logs", type=Path, default=None,
                   help="copy the API, conductor, Ganesha and ZooKeeper logs here before cleaning up")
    args = p.parse_args(argv)
    if args.shares < MIN_SHARES:
        p.error(f"--shares must be at least {MIN_SHARES} (percentiles of fewer mean little)")
    if args.concurrency < 1 or args.concurrency > args.shares:
        p.error("--concurrency must be between 1 and --shares")
    if args.warmup < 0:
        p.error("--warmup must not be negative")
    if not 0 < args.poll_interval <= 1:
        p.error("--poll-interval must be in (0, 1] seconds")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    return args


def keep_logs(infra: Infrastructure, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    stack = infra.stack
    candidates = []
    if stack is not None:
        candidates += [stack.base / "api.log", stack.base / "pool.log", stack.base / "shareflow.toml",
                       stack.base / "shareflow.db",
                       stack.base / "ganesha" / "ganesha.log"]
    if infra.zk is not None:
        candidates.append(infra.zk.log_path)
    for path in candidates:
        if path.exists():
            shutil.copy2(path, dest / path.name)


def report(args, env: dict, creates: list[Sample], deletes: list[Sample], create_records: list[dict],
           delete_records: list[dict], create_bd: dict, delete_bd: dict, warm: list[Sample], wall: float,
           cpu: dict) -> dict:
    c = summary([s.latency for s in creates])
    d = summary([s.latency for s in deletes])
    rtts = [r for s in creates + deletes for r in s.poll_rtts]
    mode = "sequential (one share at a time)" if args.concurrency == 1 else \
        f"concurrent: {args.concurrency} clients, each on its own share"
    print("\n=== shareflow create/delete share benchmark ===")
    print(f"date:        {env['date']}")
    print(f"machine:     {env['cpus']} CPUs ({env['cpus_usable']} usable), {env['cpu_model']}, "
          f"kernel {env['kernel']}")
    print(f"database:    {env['database']}")
    print(f"versions:    python {env['python']}, ZooKeeper {env['zookeeper']} "
          f"(forceSync={args.zk_force_sync}), NFS-Ganesha {env['ganesha']}, btrfs-progs {env['btrfs_progs']},")
    print(f"             taskflow {env['taskflow']}, SQLAlchemy {env['sqlalchemy']}, kazoo {env['kazoo']}, "
          f"falcon {env['falcon']}, gunicorn {env['gunicorn']}, python-manilaclient {env['manilaclient']}")
    print(f"shareflow:   {env['shareflow_commit']}; {env['api_workers']} API workers (gthread), "
          f"{env['conductor_workers']} conductor workers, conductor poll {env['conductor_poll_interval']} s")
    print(f"run:         {len(creates)} shares of {args.size} GiB, {mode}, "
          f"{len(warm)} warm-up shares not counted, {wall:.1f} s in all")
    print(f"resolution:  the share is polled every {args.poll_interval * 1000:g} ms; a GET takes "
          f"{statistics.median(rtts) * 1000:.1f} ms median ({percentile(rtts, 90) * 1000:.1f} ms p90), "
          f"so a latency is late by up to\n             one interval plus one GET "
          f"(in the last line of the critical path below);\n             "
          f"percentiles are nearest-rank over {len(creates)} samples")
    for phase, u in cpu.items():
        print(f"cpu ({phase:6s}): machine {u['machine_busy'] * 100:3.0f}% busy, this benchmark "
              f"{u['ours'] * 100:3.0f}%, other processes {u['others'] * 100:3.0f}% "
              f"(load average {u['loadavg']})"
              + (f"; {u['zk_requests_per_op']:.0f} ZooKeeper requests per share" if "zk_requests_per_op" in u else ""))
    if any(u["others"] > 0.10 for u in cpu.values()):
        print("WARNING:     other processes used more than 10% of the CPUs during the measurement; "
              "the figures are inflated")
    rows = [("create -> available", c), ("delete -> 404", d)]
    # Independent of the poll: request -> the moment the final step read its
    # clock to write the status (share.updated_at), from the records.
    for label, samples, recs in (("  create, server side*", creates, create_records),
                                 ("  delete, server side*", deletes, delete_records)):
        values = [r["share_updated"] - s.t_request for s, r in zip(samples, recs)
                  if r and r.get("share_updated") is not None]
        if values:
            rows.append((label, summary(values)))
    print(f"\n{'latency (ms)':22s} {'p50':>8s} {'p90':>8s} {'p99':>8s} {'max':>8s} {'mean':>8s} {'min':>8s}")
    for label, st in rows:
        print(f"{label:22s} {ms(st['p50'])} {ms(st['p90'])} {ms(st['p99'])} {ms(st['max'])} "
              f"{ms(st['mean'])} {ms(st['min'])}")
    print("* request sent -> the final step starts writing the status (the share's updated_at), from the\n"
          "  records: independent of the poll; the latency minus the status commit and the poll's lag")
    met_50, met_99 = c["p50"] < 0.100, c["p99"] < 0.300
    print(f"\ntarget (DESIGN.md): create p50 < 100 ms: {'MET' if met_50 else 'NOT MET'} "
          f"({c['p50'] * 1000:.1f} ms); p99 < 300 ms: {'MET' if met_99 else 'NOT MET'} "
          f"({c['p99'] * 1000:.1f} ms)")
    errors = [e for s in warm + creates + deletes for e in s.api_errors]
    if errors:
        print(f"\nSERVICE ERRORS: {len(errors)} of {len(warm) + len(creates)} create requests were answered "
              f"with an error although the share was created (measured anyway): {errors[0]}")
    if warm:
        print("warm-up create latencies (ms, not counted): "
              + ", ".join(f"{s.latency * 1000:.0f}" for s in warm))
    print_breakdown("where the create time goes (from the job records, per share):",
                    [s.latency for s in creates], create_bd)
    print_breakdown("where the delete time goes:", [s.latency for s in deletes], delete_bd)
    if args.concurrency > 1:
        for what, samples in (("create", creates), ("delete", deletes)):
            span = max(s.t_seen for s in samples) - min(s.t_request for s in samples)
            print(f"\n{what} throughput: {len(samples) / span:.1f} shares/s over {span:.1f} s")
    return {"env": env, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "create": c, "delete": d, "target_met": {"p50": met_50, "p99": met_99},
            "service_errors": errors, "cpu": cpu}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/create_share.py: needs root (loop devices, mounts, network namespaces)", file=sys.stderr)
        return 2
    started = time.monotonic()
    deadline = started + args.max_seconds
    stop = threading.Event()
    base = Path(tempfile.mkdtemp(prefix="shareflow-bench-"))
    pool_gb = args.shares * args.size + POOL_SPARE_GB
    infra = Infrastructure(base, workers=args.workers, pool_gb=pool_gb, database=args.database,
                           zk_force_sync=args.zk_force_sync == "yes", log=log)
    rc = 1
    try:
        with signals_as_interrupt():
            log(f"setting up in {base}")
            infra.start()
            stack = infra.stack
            token = stack.token("bench")
            # More live shares than the default quota allows (50): lift it for this project.
            stack.manila().quotas.update("bench", shares=-1, gigabytes=-1)
            clients = [stack.manila(token) for _ in range(args.concurrency)]
            common = dict(clients=clients, interval=args.poll_interval, deadline=deadline, stop=stop,
                          find_by_name=lambda name: share_by_name(stack, name), strict=args.strict,
                          explain=lambda share_id: explain_share(stack, share_id))

            def create(poller: Poller, i: int) -> Sample:
                sample = Sample()
                poller.create(sample, args.size, f"bench-{i}")
                return sample

            def delete(poller: Poller, share_id: str) -> Sample:
                sample = Sample()
                poller.delete(sample, share_id)
                return sample

            warm: list[Sample] = []
            if args.warmup:
                log(f"warm-up: {args.warmup} shares")
                warm = run_phase("warm-up", [f"w{i}" for i in range(args.warmup)], create, **common)
                run_phase("warm-up delete", [s.share_id for s in warm], delete, **common)
            log(f"creating {args.shares} shares ({args.concurrency} at a time)")
            t_phase = time.monotonic()
            meter, zk_before = CpuMeter(infra.daemon_pids()), zk_received(infra.zk)
            creates = run_phase("create", list(range(args.shares)), create, **common)
            cpu_create, zk_after = meter.read(), zk_received(infra.zk)
            if zk_before is not None and zk_after is not None:
                cpu_create["zk_requests_per_op"] = (zk_after - zk_before) / len(creates)
            log(f"created in {time.monotonic() - t_phase:.1f} s; reading the job records")
            wait_for_jobs(stack, creates, "create_share", deadline)
            create_records = job_records(stack, creates, "create_share")
            log(f"deleting {args.shares} shares")
            t_phase = time.monotonic()
            meter, zk_before = CpuMeter(infra.daemon_pids()), zk_received(infra.zk)
            deletes = run_phase("delete", [s.share_id for s in creates], delete, **common)
            cpu_delete, zk_after = meter.read(), zk_received(infra.zk)
            if zk_before is not None and zk_after is not None:
                cpu_delete["zk_requests_per_op"] = (zk_after - zk_before) / len(deletes)
            log(f"deleted in {time.monotonic() - t_phase:.1f} s; reading the job records")
            # a delete job records its finish a moment after the share is gone
            wait_for_jobs(stack, deletes, "delete_share", deadline)
            delete_records = job_records(stack, deletes, "delete_share")
            create_bd = breakdown(creates, create_records)
            delete_bd = breakdown(deletes, delete_records)
            env = environment(stack, infra.zk)
            result = report(args, env, creates, deletes, create_records, delete_records, create_bd, delete_bd, warm,
                            time.monotonic() - started, {"create": cpu_create, "delete": cpu_delete})
            if args.json is not None:
                result["samples"] = {
                    "create": [dataclasses.asdict(s) | {"record": r} for s, r in zip(creates, create_records)],
                    "delete": [dataclasses.asdict(s) | {"record": r} for s, r in zip(deletes, delete_records)],
                }
                args.json.write_text(json.dumps(result, indent=1, default=str))
                log(f"raw results written to {args.json}")
            rc = 0
    except KeyboardInterrupt as e:
        stop.set()
        log(f"interrupted ({e or 'Ctrl-C'}); cleaning up")
        rc = 130
    except Aborted as e:
        stop.set()
        log(f"benchmark aborted: {e}")
        if infra.stack is not None:
            log("last lines of the conductor log:\n" + infra.stack.log("pool")[-3000:])
    except Exception as e:  # noqa: BLE001 - report, then clean up
        stop.set()
        log(f"benchmark failed: {e!r}")
        if infra.stack is not None:
            log("last lines of the conductor log:\n" + infra.stack.log("pool")[-3000:])
    finally:
        stop.set()
        with signals_ignored():
            if args.keep_logs is not None:
                with contextlib.suppress(OSError):
                    keep_logs(infra, args.keep_logs)
            log("tearing down (stack, btrfs pool, ZooKeeper)")
            problems = infra.stop()
            problem = remove_base(base)
            if problem:
                problems.append(problem)
            for p in problems:
                log(f"cleanup problem: {p}")
            if problems and rc == 0:
                rc = 1
            log("done" if not problems else "done, with cleanup problems (see above)")
    return rc


def share_by_name(stack, name: str) -> str | None:
    """The live share called ``name`` (the benchmark's names are unique)."""
    import sqlalchemy as sa

    from shareflow.db.models import Share

    with stack.db.read() as session:
        return session.scalars(
            sa.select(Share.id).where(Share.name == name, Share.deleted_at.is_(None))
        ).first()


def explain_share(stack, share_id: str) -> str:
    """What the service recorded about a share that failed: its jobs and messages."""
    import sqlalchemy as sa

    from shareflow.db.models import Job, Message

    with stack.db.read() as session:
        jobs = session.scalars(sa.select(Job).where(Job.resource_id == share_id)).all()
        msgs = session.scalars(sa.select(Message).where(Message.resource_id == share_id)).all()
        parts = [f"job {j.operation} {j.state} step={j.failed_step} failure={j.failure!r}" for j in jobs]
        parts += [f"message: {m.user_message}" for m in msgs]
    return "; ".join(parts) or "no job or message recorded"


def wait_for_jobs(stack, samples: list[Sample], operation: str, deadline: float) -> None:
    """Until every sample's job of ``operation`` is recorded finished (bounded)."""
    from shareflow.services.jobs import JobService

    jobs = JobService(stack.db)
    limit = min(deadline, time.monotonic() + OP_TIMEOUT)
    for s in samples:
        while True:
            found = [j for j in jobs.list(resource_id=s.share_id) if j.operation == operation]
            if found and found[0].finished_at is not None:
                break
            if time.monotonic() > limit:
                raise Aborted(f"the {operation} job of {s.share_id} was not recorded finished")
            time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
