#!/usr/bin/env python3
"""API CPU per request: ``GET /shares/detail`` with N shares, and what polling clients GET.

Run from the repository root (no root needed, nothing but loopback)::

    PYTHONPATH=$PWD .venv/bin/python bench/api_requests.py [--shares 1000] [--requests 200]
        [--no-gunicorn] [--profile cprofile|py-spy|none] [--suite all|lists|polls]
        [--database sqlite|postgresql] [--auth tokens|identity|noauth]

``--suite polls``: a share's GET, its access rules (``GET
/share-access-rules?share_id=`` at 2.45+, the ``access_list`` action at
2.44) and its export locations - what a client waiting on an operation
polls; the profiles are then of a share's GET. ``--database postgresql``
runs against a private cluster (the tests' one) and reports its backends'
CPU per request too.

What it measures is the API's own cost - authentication, the session, the
microversion, SQL, building the views, JSON - not storage: no conductor runs
and nothing is exported. The database (SQLite, WAL, a file in a fresh
temporary directory, migrated to head) is populated **through the database
layer** (``shareflow.db.shares.create`` and ``replace_export_locations`` in
write transactions of the same :class:`~shareflow.db.engine.Database` the API
uses): N shares of one project, each ``available`` with one export location,
one metadata item and the default share type - what a share that a conductor
created looks like to the API. Going through the API instead would post N
jobs to ZooKeeper for nothing this benchmark reads.

Two servers answer the same requests, one after the other:

* in-process: the falcon app built by :func:`shareflow.api.app.create_app`,
  called as a WSGI callable (no sockets, no HTTP parsing): the app's own time;
* gunicorn: ``shareflow-api`` (the very entry point ``make run`` starts, with
  its gthread workers) on a free loopback port, asked over one keep-alive HTTP
  connection (``http.client``): what a client sees, with HTTP on top.

Every request carries a real token and the microversion header 2.65 - what
manilaclient sends. ``--auth tokens`` (default): a static token of a tokens
file; ``--auth identity`` (``make run``'s strategy): a Fernet token of the
built-in identity, got with a password as keystoneauth gets one from
``clouds.yaml`` (a member of the shares' project); ``--auth noauth``: no
token check at all (``user:project``). Reported per request kind: p50/p90/p99/min of the wall clock
(nearest-rank) and the server's CPU per request - the thread's CPU time
in-process, the workers' user+system time (/proc) under gunicorn - which a
machine shared with other work disturbs far less than the wall clock. With
``--profile cprofile`` (default) the in-process cProfile of the detail list is
grouped by where the time goes (auth, SQL, ORM loading, views, JSON, falcon);
``--profile py-spy`` samples the gunicorn workers with py-spy instead (needs
ptrace rights). docs/benchmarks.md ("API requests") has results.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import http.client
import io
import os
import pstats
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shareflow.auth.tokens import TokenFile  # noqa: E402
from shareflow.db import access as access_db  # noqa: E402
from shareflow.db import shares as shares_db  # noqa: E402
from shareflow.db import share_types as types_db  # noqa: E402
from shareflow.db.engine import Database  # noqa: E402
from shareflow.db.migrate import upgrade  # noqa: E402
from shareflow.domain import states  # noqa: E402
from shareflow.services.context import Caller  # noqa: E402
from shareflow.wiring import Services, utcnow  # noqa: E402

VERSION = "2.65"
PROJECT = "benchproj"
BATCH = 500
#: Where a cProfile entry's time is attributed, first match wins (file path parts).
BUCKETS = (
    ("auth (token check)", ("shareflow/auth/",)),
    ("JSON encoding", ("json/encoder", "shareflow/api/codec.py", "orjson")),
    ("views", ("shareflow/api/views/",)),
    ("ORM loading", ("sqlalchemy/orm/",)),
    ("SQL (engine, pool, sqlite)", ("sqlalchemy/engine", "sqlalchemy/pool", "sqlalchemy/sql",
                                    "sqlite3", "sqlalchemy/dialects", "sqlalchemy/event",
                                    "sqlalchemy/util", "_sqlite3")),
    ("microversion, params", ("shareflow/api/microversions.py", "shareflow/api/params.py")),
    ("falcon, middleware", ("falcon/", "shareflow/api/middleware.py", "shareflow/api/app.py",
                            "shareflow/api/resources/")),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp: Path, port: int, database_url: str | None = None, auth: str = "tokens") -> Path:
    database_url = database_url or f"sqlite:///{tmp / 'shareflow.db'}"
    text = f"""
state_dir = "{tmp / 'var'}"
host = "benchhost"

[database]
url = "{database_url}"

[zookeeper]
# Never contacted: nothing here posts a job.
hosts = "127.0.0.1:1"

[api]
bind = "127.0.0.1:{port}"

[auth]
strategy = "{auth}"
tokens_file = "{tmp / 'tokens.json'}"

[identity]
key_repository = "{tmp / 'identity-keys'}"

[[backends]]
name = "b1"
[backends.btrfs]
mount_point = "{tmp / 'pool'}"
exports_dir = "{tmp / 'exports'}"
[backends.ganesha]
state_dir = "{tmp / 'ganesha'}"
managed = false
"""
    path = tmp / "shareflow.toml"
    path.write_text(text)
    return path


def populate(services: Services, n: int) -> list[str]:
    """N available shares of PROJECT through the database layer (see the docstring)."""
    admin = Caller(project_id="adminproj", user_id="root", is_admin=True)
    services.share_types.create(admin, name=services.config.default_share_type,
                                extra_specs={"driver_handles_share_servers": "False",
                                             "snapshot_support": "True"})
    with services.db.read() as s:
        type_id = types_db.get_by_name(s, services.config.default_share_type).id
    ids = []
    for start in range(0, n, BATCH):
        with services.db.write() as s:
            for i in range(start, min(n, start + BATCH)):
                share_id = str(uuid.uuid4())
                now = utcnow()
                shares_db.create(
                    s, now=now, id=share_id, project_id=PROJECT, user_id="bench", name=f"share-{i:05d}",
                    description=None, size=1, share_proto="NFS", status=states.AVAILABLE,
                    share_type_id=type_id, host="benchhost@b1#b1", backend="benchhost@b1",
                    availability_zone="nova", is_public=False, share_network_id=None,
                    metadata={"index": str(i)}, snapshot_id=None,
                )
                shares_db.replace_export_locations(s, share_id, [f"127.0.0.1:/shares/{share_id}"], now=now)
                # One client allowed, as after allow_access: what the rules' poll reads.
                rule_id = str(uuid.uuid4())
                access_db.create(s, id=rule_id, share_id=share_id, access_type="ip", access_to="10.0.0.1",
                                 access_level="rw", state=states.ACTIVE, created_at=now)
                access_db.set_metadata(s, rule_id, {"by": "bench"})
                ids.append(share_id)
    return ids


def bench_token(config, services: Services, auth: str) -> str:
    """A token of a member of PROJECT (with ``identity``, PROJECT becomes
    the identity's project id, which the shares are then created in)."""
    global PROJECT
    if auth == "noauth":
        return f"bench:{PROJECT}"
    if auth == "tokens":
        return TokenFile(config.auth.tokens_file).issue(PROJECT, "bench")[0]
    from shareflow.services.identity import IdentityService

    identity = IdentityService(config.identity, services.db, clock=services.clock)
    project = identity.create_project(PROJECT)
    identity.create_user("bench", "bench-password")
    identity.add_role("bench", project.id, "member")
    PROJECT = project.id
    info = identity.authenticate({
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "bench", "domain": {"id": "default"}, "password": "bench-password"}}},
        "scope": {"project": {"id": project.id}}})
    return info.token


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))]

    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "min": ordered[0],
            "mean": sum(ordered) / len(ordered), "n": len(ordered)}


def line(label: str, stats: dict[str, float]) -> str:
    db = f"  PostgreSQL CPU {stats['db_cpu']:5.2f}" if "db_cpu" in stats else ""
    return (f"  {label:<44} p50 {stats['p50']:7.2f} ms  p90 {stats['p90']:7.2f}  p99 {stats['p99']:7.2f}"
            f"  min {stats['min']:7.2f}  server CPU {stats['cpu']:6.2f} ms/req{db}  (n={stats['n']})")


def process_cpu(pids: list[int]) -> float:
    """CPU seconds of these processes so far (those gone count 0): the sum of
    their threads' run time from ``/proc/PID/task/*/schedstat`` (nanoseconds;
    gunicorn's threads live as long as their worker), else user + system time
    from ``/proc/PID/stat`` (10 ms ticks)."""
    total_ns, found = 0, False
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                total_ns += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
                found = True
            except (OSError, ValueError, IndexError):
                continue
    if found:
        return total_ns / 1e9
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


#: With --database postgresql: the postmaster's pid; its backends' CPU is reported too.
POSTMASTER: list[int] = []


def database_cpu() -> float | None:
    return process_cpu(worker_pids(POSTMASTER[0])) if POSTMASTER else None


class InProcess:
    """The WSGI app called directly."""

    def __init__(self, app, token: str):
        self.app = app
        self.token = token

    @staticmethod
    def cpu() -> float:
        return time.thread_time()

    def get(self, path: str, query: str = "", *, method: str = "GET", body: bytes = b"",
            version: str = VERSION) -> tuple[int, bytes]:
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8786", "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:8786", "HTTP_X_AUTH_TOKEN": self.token,
            "HTTP_X_OPENSTACK_MANILA_API_VERSION": version, "HTTP_ACCEPT": "application/json",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
            "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "wsgi.version": (1, 0),
        }
        if body:
            environ["CONTENT_TYPE"] = "application/json"
            environ["CONTENT_LENGTH"] = str(len(body))
        status = []

        def start_response(s, headers, exc_info=None):
            status.append(int(s.split(" ", 1)[0]))

        body = b"".join(self.app(environ, start_response))
        return status[0], body


class OverHttp:
    """One keep-alive connection, as a polling client holds one."""

    def __init__(self, port: int, token: str, workers: list[int]):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"X-Auth-Token": token, "X-OpenStack-Manila-API-Version": VERSION,
                        "Accept": "application/json"}
        self.workers = workers

    def cpu(self) -> float:
        """User + system CPU seconds of the gunicorn workers so far."""
        return process_cpu(self.workers)

    def get(self, path: str, query: str = "", *, method: str = "GET", body: bytes = b"",
            version: str = VERSION) -> tuple[int, bytes]:
        headers = dict(self.headers, **{"X-OpenStack-Manila-API-Version": version})
        if body:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path + (f"?{query}" if query else ""), body=body or None, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def close(self) -> None:
        self.conn.close()


def timed(client, path: str, query: str, n: int, *, expect: int = 200, **request) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, body = client.get(path, query, **request)
        out.append((time.perf_counter() - t0) * 1000)
        if status != expect:
            raise SystemExit(f"GET {path}?{query}: {status} {body[:300]!r}")
    return out


def poll_cases(share_ids: list[str]) -> dict[str, tuple]:
    """What a client waiting on an operation polls (manilaclient every 20 ms
    in the issue's method): the share, its access rules (2.45+, and the
    ``access_list`` action below 2.45) and its export locations."""
    one = share_ids[len(share_ids) // 2]
    return {
        "GET /shares/{id}": (f"/v2/shares/{one}", ""),
        "GET /share-access-rules?share_id= (2.45+)": ("/v2/share-access-rules", f"share_id={one}"),
        "POST access_list (2.44)": (f"/v2/shares/{one}/action", "",
                                    {"method": "POST", "body": b'{"access_list": null}', "version": "2.44"}),
        "GET /shares/{id}/export_locations": (f"/v2/shares/{one}/export_locations", ""),
    }


def run_suite(client, share_ids: list[str], n: int, *, warmup: int = 5, suite: str = "all") -> dict[str, dict]:
    """Wall-clock percentiles per request kind, and the server's CPU per
    request (``cpu``: the wall clock lies on a machine shared with others;
    CPU time much less so)."""
    one = share_ids[len(share_ids) // 2]
    total = len(share_ids)
    cases = {} if suite == "polls" else {
        f"GET /shares/detail ({total})": ("/v2/shares/detail", ""),
        f"GET /shares ({total})": ("/v2/shares", ""),
        "GET /shares/detail?limit=50": ("/v2/shares/detail", "limit=50"),
        f"GET /shares/detail?limit=50&offset={max(0, total - 100)}":
            ("/v2/shares/detail", f"limit=50&offset={max(0, total - 100)}"),
        "GET /shares/detail?name=<one>": ("/v2/shares/detail", f"name=share-{total // 2:05d}"),
        "GET /shares/detail?limit=50&with_count=true": ("/v2/shares/detail", "limit=50&with_count=true"),
    }
    # Whole-list requests are the slow ones: fewer of them keep the run short.
    counts = {label: max(20, n // 5) if query == "" and "{id}" not in label else n
              for label, (_, query) in cases.items()}
    if suite != "lists":
        cases.update(poll_cases(share_ids))
    results = {}
    for label, (path, query, *extra) in cases.items():
        request = extra[0] if extra else {}
        timed(client, path, query, warmup, **request)
        count = counts.get(label, n)
        cpu0, db0 = client.cpu(), database_cpu()
        samples = timed(client, path, query, count, **request)
        stats = percentiles(samples)
        stats["cpu"] = (client.cpu() - cpu0) * 1000 / count
        if db0 is not None:
            stats["db_cpu"] = (database_cpu() - db0) * 1000 / count
        results[label] = stats
    return results


def profile_in_process(client, n: int, path: str = "/v2/shares/detail", query: str = "", **request) -> str:
    prof = cProfile.Profile()
    prof.enable()
    timed(client, path, query, n, **request)
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(tt for (_, _, tt, _, _) in stats.stats.values())
    buckets: dict[str, float] = {}
    for (filename, _, _), (_, _, tt, _, _) in stats.stats.items():
        name = "other (stdlib, builtins)"
        for bucket, parts in BUCKETS:
            if any(p in filename for p in parts):
                name = bucket
                break
        buckets[name] = buckets.get(name, 0.0) + tt
    out = [f"  cProfile of {n} x {request.get('method', 'GET')} {path}, own time by area (cProfile inflates calls):"]
    for name, tt in sorted(buckets.items(), key=lambda kv: -kv[1]):
        out.append(f"    {name:<30} {100 * tt / total:5.1f} %  ({1000 * tt / n:6.2f} ms/request)")
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
    out.append("  top entries by own time:")
    out.extend("    " + ln for ln in text.getvalue().splitlines() if ln.strip())
    return "\n".join(out)


@contextlib.contextmanager
def gunicorn(config_path: Path, port: int, tmp: Path):
    env = dict(os.environ, SHAREFLOW_CONFIG=str(config_path), PYTHONPATH=str(REPO))
    log = open(tmp / "api.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "shareflow.api.server", "--config", str(config_path)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"gunicorn did not start: {(tmp / 'api.log').read_text()[-2000:]}")
                time.sleep(0.1)
        yield proc
    finally:
        # Our own process group (start_new_session): the master and its workers.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def worker_pids(master: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def py_spy_profile(master: int, client, n: int, tmp: Path, path: str = "/v2/shares/detail", query: str = "",
                   **request) -> str:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = []
    for pid in worker_pids(master):
        raw = tmp / f"py-spy-{pid}.txt"
        spy = subprocess.Popen([py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "500",
                                "--output", str(raw), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(1.0)
        timed(client, path, query, n, **request)
        spy.send_signal(signal.SIGINT)
        _, err = spy.communicate(timeout=60)
        if not raw.exists():
            out.append(f"  py-spy on {pid}: no output ({err.decode()[-300:]})")
            continue
        out.append(f"  py-spy (worker {pid}): samples by leaf frame, top 20")
        leaves: dict[str, int] = {}
        total = 0
        for ln in raw.read_text().splitlines():
            stack, _, count = ln.rpartition(" ")
            frame = stack.split(";")[-1]
            leaves[frame] = leaves.get(frame, 0) + int(count)
            total += int(count)
        for frame, count in sorted(leaves.items(), key=lambda kv: -kv[1])[:20]:
            out.append(f"    {100 * count / max(total, 1):5.1f} %  {frame}")
    return "\n".join(out)


def pollers(port: int, token: str, share_ids: list[str], workers: list[int], *, clients: int,
            interval: float, duration: float) -> str:
    """``clients`` threads, each on its own keep-alive connection polling
    its own share's GET every ``interval`` s for ``duration`` s (the issue's
    method: manilaclient polling every 20 ms): the rate served and the
    gunicorn workers' CPU, as a fraction of one core."""
    import threading

    done = threading.Event()
    counts = [0] * clients
    errors: list[str] = []

    def poll(i: int) -> None:
        client = OverHttp(port, token, workers)
        path = f"/v2/shares/{share_ids[(i * 37) % len(share_ids)]}"
        try:
            next_at = time.monotonic()
            while not done.is_set():
                status, body = client.get(path)
                if status != 200:
                    errors.append(f"{status} {body[:200]!r}")
                    return
                counts[i] += 1
                next_at += interval
                done.wait(max(0.0, next_at - time.monotonic()))
        finally:
            client.close()

    threads = [threading.Thread(target=poll, args=(i,), daemon=True) for i in range(clients)]
    cpu0, db0, t0 = process_cpu(workers), database_cpu(), time.monotonic()
    for t in threads:
        t.start()
    done.wait(duration)
    done.set()
    for t in threads:
        t.join(timeout=30)
    elapsed = time.monotonic() - t0
    cpu, db = process_cpu(workers) - cpu0, database_cpu()
    served = sum(counts)
    text = (f"  {clients} clients polling GET /shares/{{id}} every {1000 * interval:.0f} ms for {elapsed:.1f} s: "
            f"{served / elapsed:.0f} GETs/s, API workers {cpu / elapsed:.2f} core(s) "
            f"({1000 * cpu / max(served, 1):.2f} ms CPU per GET)")
    if db is not None:
        text += f", PostgreSQL {(db - db0) / elapsed:.2f} core(s)"
    if errors:
        text += f"; errors: {errors[:3]}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shares", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200, help="per request kind (whole lists: a fifth)")
    parser.add_argument("--no-gunicorn", action="store_true")
    parser.add_argument("--profile", choices=("cprofile", "py-spy", "none"), default="cprofile")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: a private cluster (the tests' one, loopback only), started and removed here")
    parser.add_argument("--pollers", type=int, default=0,
                        help="then this many clients poll a share's GET concurrently (gunicorn): rate and cores used")
    parser.add_argument("--poll-interval", type=float, default=0.02)
    parser.add_argument("--poll-duration", type=float, default=20.0)
    parser.add_argument("--auth", choices=("tokens", "identity", "noauth"), default="tokens",
                        help="identity: make run's strategy (a Fernet token of the built-in identity)")
    parser.add_argument("--suite", choices=("all", "lists", "polls"), default="all",
                        help="lists (GET /shares[/detail] variants), polls (what waiting clients GET), or both")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="sf-bench-api-"))
    postgres = None
    try:
        port = free_port()
        database_url = None
        if args.database == "postgresql":
            from tests.fixtures.infrastructure import PrivatePostgres

            postgres = PrivatePostgres(print)
            database_url = postgres.start()
            POSTMASTER.append(postgres.pid())
        config_path = write_config(tmp, port, database_url, args.auth)
        from shareflow import config as config_module
        from shareflow.api.app import create_app

        config = config_module.load(config_path)
        db = Database(config.database.url)
        upgrade(db)
        db.dispose()
        services = Services(config)
        token = bench_token(config, services, args.auth)
        t0 = time.perf_counter()
        ids = populate(services, args.shares)
        print(f"populated {args.shares} shares through the database layer in {time.perf_counter() - t0:.1f} s")
        import sqlalchemy
        import falcon
        print(f"python {sys.version.split()[0]}, falcon {falcon.__version__}, SQLAlchemy {sqlalchemy.__version__}, "
              f"{args.database} ({sqlite3.sqlite_version if postgres is None else postgres.cluster.version}), "
              f"{os.cpu_count()} cpus, "
              f"load {os.getloadavg()[0]:.2f}")

        app = create_app(config, services)
        local = InProcess(app, token)
        print("in-process (WSGI callable, no HTTP):")
        for label, stats in run_suite(local, ids, args.requests, suite=args.suite).items():
            print(line(label, stats))
        # The profile of what the suite is about: the detail list, or a share's GET.
        target = (("/v2/shares/detail", "") if args.suite != "polls"
                  else poll_cases(ids)["GET /shares/{id}"])
        if args.profile == "cprofile":
            print(profile_in_process(local, 20 if args.suite != "polls" else 1000, *target))
        services.close()

        if not args.no_gunicorn:
            with gunicorn(config_path, port, tmp) as proc:
                deadline = time.monotonic() + 20
                while len(worker_pids(proc.pid)) < config.api.workers and time.monotonic() < deadline:
                    time.sleep(0.1)
                remote = OverHttp(port, token, worker_pids(proc.pid))
                try:
                    print(f"gunicorn (shareflow-api, {config.api.workers} workers x gthread, one keep-alive connection):")
                    for label, stats in run_suite(remote, ids, args.requests, suite=args.suite).items():
                        print(line(label, stats))
                    if args.profile == "py-spy":
                        print(py_spy_profile(proc.pid, remote, 100 if args.suite != "polls" else 3000, tmp,
                                             *target))
                    if args.pollers:
                        print(pollers(port, token, ids, remote.workers, clients=args.pollers,
                                      interval=args.poll_interval, duration=args.poll_duration))
                finally:
                    remote.close()
    finally:
        if postgres is not None:
            for problem in postgres.stop():
                print(problem)
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
