"""The API in-process, over a real SQLite file and a real ZooKeeper.

One environment per test module (migrating a database and connecting to
ZooKeeper per test would dominate the run time); tests create their own
shares and types with unique names, so they do not depend on each other.
No conductor runs: posted jobs wait on the board, shares stay ``creating``
unless a test moves them with :meth:`ApiEnv.set_share_status`. The API
places a new share itself (``[scheduler] placement = "api"``, the default):
its one create job waits on its pool's board. An environment built with
``placement="conductor"`` has the two-job create instead: its first job,
placement (``schedule_share``), is run when a test asks
(:meth:`ApiEnv.schedule`, which :meth:`ApiEnv.create_share` does there): a
real conductor of the scheduler's board, in this process, dispatches the
jobs that board holds and returns. The API's configuration has no backends
at all (an API node needs none): it places shares on the pool
``testhost@b1#pool0`` that :func:`report_pool` reports as a conductor of host
``testhost`` would, and whose heartbeat each request renews (a live
conductor reports every 30 s).

Every response goes through :func:`check_response`: no 5xx, ever, and every
4xx carries Manila's fault body and our request ids.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import falcon.testing
import pytest
import sqlalchemy as sa

from shareflow.api.app import create_app
from shareflow.api.errors import FAULT_NAMES
from shareflow.auth.tokens import TokenFile
from shareflow.config import PLACEMENT_CONDUCTOR, Config, parse
from shareflow.db import pools as pools_db
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.migrate import upgrade
from shareflow.db.models import ExportLocation, Pool, Service, Share
from shareflow.services.context import Caller
from shareflow.wiring import Services, utcnow
from tests.fixtures.coordination import chroot

MAX = "2.67"
OMIT = object()
DEFAULT_TYPE_SPECS = {"driver_handles_share_servers": "False", "snapshot_support": "True"}


#: The scheduler's board (``shareflow.engine.zk.SCHEDULER_BOARD``).
SCHEDULER_KEY = "scheduler"
#: The pool the API's tests place shares on, as a conductor host reported it.
SERVICE_HOST, BACKEND, POOL = "testhost", "b1", "pool0"
POOL_HOST = f"{SERVICE_HOST}@{BACKEND}#{POOL}"
POOL_TOTAL_GB = 100_000
#: How often a conductor reports (``shareflow.engine.worker.HOUSEKEEPING_INTERVAL``).
HEARTBEAT = timedelta(seconds=30)


def report_pool(db: Database, *, total_gb: int = POOL_TOTAL_GB, free_gb: int | None = None,
                host: str = POOL_HOST, dhss: bool = False, capabilities: dict | None = None) -> None:
    """What a conductor of ``host`` reports of its pool (btrfs's capabilities)."""
    from shareflow.drivers.share import registry as share_drivers

    service_host, _, rest = host.partition("@")
    backend, _, pool = rest.partition("#")
    caps = {**share_drivers.capabilities_of("btrfs"), "driver_handles_share_servers": dhss,
            "share_backend_name": backend, "storage_protocol": "NFS", "driver_name": "BtrfsShareDriver",
            "vendor_name": "shareflow", "reserved_percentage": 0, "max_over_subscription_ratio": 1.0,
            **(capabilities or {})}
    with db.write() as s:
        pools_db.report(s, host=host, backend=backend, pool=pool, dhss=dhss, total_gb=total_gb,
                        free_gb=total_gb if free_gb is None else free_gb, now=utcnow(),
                        capabilities=caps, availability_zone="nova")


def make_config(tmp: Path, zk_hosts: str, zk_chroot: str, *, strategy: str = "tokens",
                zk_connect_timeout: float = 10.0, with_backend: bool = False,
                placement: str | None = None) -> Config:
    """The API's configuration: no backends unless ``with_backend`` (for
    tests that build a conductor's drivers from it); ``[scheduler]
    placement`` as given (None: the default, the API's)."""
    data = {
        "state_dir": str(tmp / "var"),
        "host": "testhost",
        "database": {"url": f"sqlite:///{tmp / 'shareflow.db'}"},
        "zookeeper": {"hosts": zk_hosts, "chroot": zk_chroot, "session_timeout": 4.0,
                      "connect_timeout": zk_connect_timeout},
        "api": {"bind": "127.0.0.1:8786", "max_body_bytes": 64 * 1024},
        "auth": {"strategy": strategy, "tokens_file": str(tmp / "tokens.json")},
    }
    if placement is not None:
        data["scheduler"] = {"placement": placement}
    if with_backend:
        data["backends"] = [{
            "name": BACKEND,
            "btrfs": {"mount_point": str(tmp / "pool"), "exports_dir": str(tmp / "exports")},
            "ganesha": {"state_dir": str(tmp / "ganesha"), "managed": False},
        }]
    return parse(data, tmp / "shareflow.toml")


def check_response(result: falcon.testing.Result) -> None:
    """What every answer of the API must look like, whatever the request."""
    assert result.status_code < 500, f"server error {result.status_code}: {result.text}"
    assert result.headers.get("x-openstack-request-id", "").startswith("req-")
    assert result.headers.get("x-compute-request-id") == result.headers["x-openstack-request-id"]
    if result.status_code >= 400:
        assert_fault(result, result.status_code)


def assert_fault(result: falcon.testing.Result, status: int, name: str | None = None) -> str:
    """Manila's fault body; returns its message."""
    assert result.status_code == status, result.text
    body = json.loads(result.text)
    assert isinstance(body, dict) and len(body) == 1, body
    (key, fault), = body.items()
    assert key == (name or FAULT_NAMES.get(status, "computeFault")), body
    assert fault["code"] == status
    assert isinstance(fault["message"], str) and fault["message"]
    assert "Traceback" not in fault["message"]
    return fault["message"]


@dataclass
class ApiEnv:
    config: Config
    services: Services
    client: falcon.testing.TestClient
    tokens: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    #: (kazoo client, boards, runtime) of the in-process scheduler conductor, once used.
    _scheduler: tuple | None = None

    def request(self, method: str, path: str, *, token=OMIT, version=MAX, json_body=OMIT,
                body: str | bytes | None = None, headers: dict | None = None, params=None):
        self.heartbeat()
        hdrs = dict(headers or {})
        token = self.token if token is OMIT else token
        if token is not None:
            hdrs["X-Auth-Token"] = token
        if version is not None:
            hdrs["X-OpenStack-Manila-API-Version"] = version
        kwargs = {}
        if json_body is not OMIT:
            kwargs["json"] = json_body
        elif body is not None:
            kwargs["body"] = body
            # What every client sends with a body (a test of other types says so).
            if not any(k.lower() == "content-type" for k in hdrs):
                hdrs["Content-Type"] = "application/json"
        result = self.client.simulate_request(method, path, headers=hdrs, params=params, **kwargs)
        check_response(result)
        return result

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json_body=OMIT, **kw):
        return self.request("POST", path, json_body=json_body, **kw)

    def put(self, path, json_body=OMIT, **kw):
        return self.request("PUT", path, json_body=json_body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # --- arranging state a conductor would have produced --------------------------

    def heartbeat(self) -> None:
        """The test pool's conductor is alive: its report is fresh (capacity
        as last reported)."""
        now = utcnow()
        with self.services.db.write() as s:
            s.execute(sa.update(Pool).where(Pool.host == POOL_HOST, Pool.updated_at < now - HEARTBEAT)
                      .values(updated_at=now))
            # The service heartbeat a report writes along (``GET /services``: state up).
            s.execute(sa.update(Service).where(Service.host == POOL_HOST.partition("#")[0],
                                               Service.updated_at < now - HEARTBEAT).values(updated_at=now))

    def create_share(self, *, token: str, size: int = 1, schedule: bool = True, **extra) -> dict:
        """The create's answer: the share ``creating``, placed by the API (or
        ``error``: no pool); with conductor placement not placed yet, and
        with ``schedule`` its placement then run (:meth:`schedule`)."""
        body = {"share": {"size": size, "share_proto": "NFS", "name": f"s-{uuid.uuid4().hex[:8]}", **extra}}
        result = self.post("/v2/shares", body, token=token)
        assert result.status_code == 200, result.text
        if schedule and self.config.scheduler.placement == PLACEMENT_CONDUCTOR:
            self.schedule()
        return result.json["share"]

    def schedule(self, config: Config | None = None) -> int:
        """Run every scheduling job on the scheduler's board, as a conductor
        of any host would (``shareflow.tasks.scheduling``), with the API's
        configuration or ``config`` (the conductor's own ``[scheduler]``);
        returns how many ran (none when the API placed the shares itself)."""
        from shareflow.engine.boards import every_job

        board = self._scheduler_board()
        pending = len(every_job(board))
        if not pending:
            return 0
        conductor = self._scheduler_conductor(board, config)
        finished = threading.Semaphore(0)
        for event in ("job_consumed", "job_trashed"):
            conductor.notifier.register(event, lambda *_args, **_kw: finished.release())
        runner = threading.Thread(target=conductor.run, name="api-test-scheduler", daemon=True)
        runner.start()
        try:
            for _ in range(pending):
                assert finished.acquire(timeout=60), "the scheduler's conductor did not finish its jobs"
        finally:
            conductor.stop()
            runner.join(timeout=10)
        return pending

    def _scheduler_board(self):
        if self._scheduler is None:
            from shareflow.engine.boards import Boards
            from shareflow.engine.locks import ResourceLocks
            from shareflow.engine.outcomes import OutcomeRecorder
            from shareflow.engine.runtime import Runtime
            from shareflow.engine.zk import SCHEDULER_BOARD, start_client

            client = start_client(self.config.zookeeper)
            boards = Boards(client, self.config.zookeeper.chroot, [SCHEDULER_BOARD], self.services.persistence,
                            conductor=True, request_timeout=self.config.zookeeper.request_timeout)
            boards.connect()
            runtime = Runtime(config=self.config, db=self.services.db, backends={},
                              locks=ResourceLocks(client, self.config.zookeeper.chroot, timeout=10.0),
                              recorder=OutcomeRecorder(self.services.db, utcnow), clock=utcnow,
                              poster=self.services.poster)
            self._scheduler = (client, boards, runtime)
        return self._scheduler[1].get(SCHEDULER_KEY)

    def _scheduler_conductor(self, board, config: Config | None):
        from shareflow.engine.conductor import ShareflowConductor

        client, _boards, runtime = self._scheduler
        if config is not None:
            runtime = dataclasses.replace(runtime, config=config)
        return ShareflowConductor(f"{SERVICE_HOST}.{os.getpid()}.api-test.scheduler", board,
                                  self.services.persistence, runtime, poll_interval=0.05, client=client)

    def close(self) -> None:
        if self._scheduler is not None:
            from shareflow.engine.zk import stop_client

            client, boards, _runtime = self._scheduler
            boards.close()
            stop_client(client)
            self._scheduler = None
        self.services.close()

    def set_share_status(self, share_id: str, status: str) -> None:
        with self.services.db.write() as s:
            s.execute(sa.update(Share).where(Share.id == share_id).values(status=status))

    def add_export_location(self, share_id: str, path: str, *, admin_only: bool = False) -> str:
        el_id = str(uuid.uuid4())
        with self.services.db.write() as s:
            s.add(ExportLocation(id=el_id, share_id=share_id, path=path, is_admin_only=admin_only,
                                 preferred=not admin_only, created_at=utcnow()))
        return el_id

    def share_row(self, share_id: str) -> Share | None:
        with self.services.db.read() as s:
            return shares_db.get_any(s, share_id)

    def count(self, model, **where) -> int:
        with self.services.db.read() as s:
            q = sa.select(sa.func.count()).select_from(model)
            for k, v in where.items():
                q = q.where(getattr(model, k) == v)
            return s.scalar(q)


def build_env(tmp: Path, zk_hosts: str, zk_root: str, *, strategy: str = "tokens",
              zk_connect_timeout: float = 10.0, placement: str | None = None) -> ApiEnv:
    config = make_config(tmp, zk_hosts, zk_root, strategy=strategy, zk_connect_timeout=zk_connect_timeout,
                         placement=placement)
    db = Database(config.database.url)
    try:
        upgrade(db)
    finally:
        db.dispose()
    services = Services(config)
    report_pool(services.db)
    admin = Caller(project_id="adminproj", user_id="root", is_admin=True)
    services.share_types.create(admin, name=config.default_share_type, extra_specs=DEFAULT_TYPE_SPECS)
    env = ApiEnv(config=config, services=services,
                 client=falcon.testing.TestClient(create_app(config, services)))
    if strategy == "tokens":
        tokens = TokenFile(config.auth.tokens_file)
        env.tokens = {
            "alice": tokens.issue("proj-a", "alice")[0],
            "bob": tokens.issue("proj-b", "bob")[0],
            "admin": tokens.issue("adminproj", "root", admin=True)[0],
        }
        env.token = env.tokens["alice"]
    return env


@pytest.fixture(scope="module")
def api(zookeeper_server, tmp_path_factory) -> Iterator[ApiEnv]:
    with chroot(zookeeper_server.hosts) as zk_root:
        env = build_env(tmp_path_factory.mktemp("api"), zookeeper_server.hosts, zk_root)
        try:
            yield env
        finally:
            env.close()
