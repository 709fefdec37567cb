"""``shareflow run``: the whole service on this machine, in the foreground.

The embedded default for trying shareflow out (``make run``): migrates the
database, starts a private ZooKeeper (when configured ``embedded``; it is
restarted, with backoff, whenever it dies), mounts
each backend's loop-file pool (btrfs, or XFS for image backends), then runs the API under gunicorn and the
conductor pool (which starts NFS-Ganesha) as child processes. Ctrl-C stops
everything it started, in reverse order, and unmounts what it mounted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from shareflow import config as config_mod
from shareflow.auth import tokens as tokens_mod
from shareflow.config import Config
from shareflow.db import migrate
from shareflow.db.engine import Database
from shareflow.exceptions import ConfigError, ShareflowError
from shareflow.logs import setup_logging
from shareflow.services.context import Caller
from shareflow.drivers.share import registry as share_drivers
from shareflow.system import mounts
from shareflow.system.ports import port_in_use
from shareflow.system.zookeeper import ZooKeeperServer, ZooKeeperSupervisor, four_letter_word
from shareflow.wiring import Services

LOG = logging.getLogger("shareflow.run")

ADMIN_PROJECT = "admin"
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 90.0
#: Bound of each command that prepares a pool (mkfs, losetup, mount).
POOL_TIMEOUT = 60.0


def register(sub) -> None:
    p = sub.add_parser("run", help="run the whole service here in the foreground (Ctrl-C stops it)")
    p.set_defaults(func=run)


def _zk_endpoint(config: Config) -> tuple[str, int]:
    hosts = [h.strip() for h in config.zookeeper.hosts.split(",")]
    if len(hosts) != 1:
        raise ConfigError("zookeeper.embedded needs exactly one host:port in zookeeper.hosts")
    host, _, port = hosts[0].rpartition(":")
    return host, int(port)



# The type `shareflow run` makes when there is none: what the btrfs backend of
# etc/shareflow.toml offers, so that a share of it can be created, snapshotted,
# cloned and reverted (the scheduler's CapabilitiesFilter matches each boolean
# spec exactly, as Manila's: a type saying snapshot_support=False fits no pool
# that reports True).
DEFAULT_TYPE_SPECS = {
    "driver_handles_share_servers": "False",
    "snapshot_support": "True",
    "create_share_from_snapshot_support": "True",
    "revert_to_snapshot_support": "True",
}
# What earlier versions made instead; a stored default type with exactly these
# specs is brought up to DEFAULT_TYPE_SPECS at start (it could place nothing).
_EARLIER_DEFAULT_TYPE_SPECS = {"driver_handles_share_servers": "False", "snapshot_support": "False"}

class Launcher:
    def __init__(self, config: Config):
        self.config = config
        self._zk: ZooKeeperServer | None = None
        self._zk_supervisor: ZooKeeperSupervisor | None = None
        self._pools: list[share_drivers.PreparedPool] = []
        #: Exports directories bound on themselves to be shared (_share_exports).
        self._shared_binds: list[Path] = []
        self._children: list[tuple[str, subprocess.Popen]] = []
        self._stop = threading.Event()
        self.admin_login = None

    # --- start ----------------------------------------------------------------

    def start(self) -> str:
        cfg = self.config
        if os.geteuid() != 0:
            raise ConfigError("shareflow run needs root: it mounts storage pools and runs NFS-Ganesha")
        cfg.state_dir.mkdir(parents=True, exist_ok=True)
        self._check_ports()
        self._start_zookeeper()
        db = Database(cfg.database.url)
        try:
            migrate.upgrade(db)
        finally:
            db.dispose()
        for backend in cfg.backends:
            # Each share driver prepares its own kind of pool (a loop image,
            # formatted and mounted) when the backend's table names an image.
            pool = share_drivers.get(backend.share_driver).prepare_pool(backend.share_config, POOL_TIMEOUT)
            if pool is not None:
                LOG.info("%s pool of backend %s mounted on %s", backend.share_driver, backend.name, pool.mount_point)
                self._pools.append(pool)
            self._share_exports(backend)
        token = self._bootstrap_tenancy()
        env = {**os.environ, config_mod.ENV_VAR: str(cfg.path)}
        # It owns the host: the pools are unmounted at exit, so the export
        # servers must go with the conductors.
        self._spawn("conductor pool", [sys.executable, "-m", "shareflow.engine.pool",
                                       "--export-servers-at-exit", "stop"], env)
        self._spawn("api", [sys.executable, "-m", "shareflow.api.server"], env)
        self._wait_for_api()
        return token

    def _check_ports(self) -> None:
        cfg = self.config
        if port_in_use(cfg.api.host, cfg.api.port):
            raise ConfigError(f"port {cfg.api.host}:{cfg.api.port} (api.bind) is already in use")
        for b in cfg.backends:
            if b.ganesha.managed and not b.ganesha.netns and port_in_use(b.ganesha.address, b.ganesha.port):
                pidfile = b.ganesha.state_dir / "ganesha.pid"
                if not pidfile.exists():
                    raise ConfigError(
                        f"port {b.ganesha.address}:{b.ganesha.port} for backend {b.name}'s NFS-Ganesha "
                        "is already in use (a system NFS server?)"
                    )

    def _start_zookeeper(self) -> None:
        zk = self.config.zookeeper
        if not zk.embedded:
            return
        host, port = _zk_endpoint(self.config)
        if port_in_use(host, port):
            with contextlib.suppress(OSError):
                if four_letter_word(host, port, "ruok") == "imok":
                    LOG.info("a ZooKeeper already answers on %s:%d; using it", host, port)
                    return
            raise ConfigError(f"port {host}:{port} (zookeeper.hosts) is in use by something that is not ZooKeeper")
        LOG.info("starting ZooKeeper on %s:%d (data in %s)", host, port, zk.data_dir)
        self._zk = ZooKeeperServer(zk.data_dir, port, host=host)
        self._zk.start()
        self._zk_supervisor = ZooKeeperSupervisor(self._zk)

    def _share_exports(self, backend) -> None:
        """With ``ganesha.mount_table = "own"``, NFS-Ganesha runs in a mount
        namespace of its own, which sees a share mounted after it started
        only if the mount holding the share mounts is shared; on a host
        without systemd nothing is, so the backend's exports directory is
        made a shared mount here (and unmounted at the end)."""
        tables = {backend.ganesha.mount_table}
        if backend.share_servers is not None:
            tables.add(backend.share_servers.mount_table)
        exports = getattr(backend.share_config, "exports_dir", None)
        if "own" not in tables or exports is None:
            return
        if mounts.make_shared(exports):
            self._shared_binds.append(Path(exports))
        LOG.info("exports of backend %s (%s) made a shared mount for NFS-Ganesha's own mount table",
                 backend.name, exports)

    def _bootstrap_tenancy(self) -> str:
        """The default share type and an admin token, both made once; with the
        built-in identity, its admin user and ``clouds.yaml`` too."""
        cfg = self.config
        services = Services(cfg)
        try:
            if cfg.auth.strategy == "identity":
                from shareflow.identity import bootstrap
                from shareflow.services.identity import IdentityService

                self.admin_login = bootstrap.prepare(
                    cfg, IdentityService(cfg.identity, services.db, clock=services.clock))
            admin = Caller(project_id=ADMIN_PROJECT, user_id="admin", is_admin=True)
            try:
                default = services.share_types.default(admin)
            except ShareflowError:
                services.share_types.create(admin, name=cfg.default_share_type, extra_specs=DEFAULT_TYPE_SPECS)
                LOG.info("created share type %r (%s)", cfg.default_share_type,
                         ", ".join(f"{k}={v}" for k, v in DEFAULT_TYPE_SPECS.items()))
            else:
                if default.specs() == _EARLIER_DEFAULT_TYPE_SPECS:
                    # Not driver_handles_share_servers: unchanged, and refused on a type in use.
                    services.share_types.set_extra_specs(admin, default.id, {
                        k: v for k, v in DEFAULT_TYPE_SPECS.items() if k != "driver_handles_share_servers"})
                    LOG.warning("share type %r had the specs an earlier shareflow run gave it (%s), which no "
                                "btrfs pool matches (its pools report snapshot_support=True); now %s",
                                default.name, _EARLIER_DEFAULT_TYPE_SPECS, DEFAULT_TYPE_SPECS)
        finally:
            services.close()
        token_file = cfg.state_dir / "admin.token"
        store = tokens_mod.TokenFile(cfg.auth.tokens_file)
        if token_file.exists() and store.lookup(token_file.read_text().strip()):
            return token_file.read_text().strip()
        token, _ = store.issue(ADMIN_PROJECT, "admin", admin=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        return token

    def _spawn(self, name: str, argv: list[str], env: dict) -> None:
        # A session of its own: Ctrl-C reaches only this launcher, which then
        # stops the children in order instead of all at once.
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        LOG.info("started %s, pid %d", name, proc.pid)
        self._children.append((name, proc))

    def _wait_for_api(self) -> None:
        url = f"http://{self.config.api.host}:{self.config.api.port}/"
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            self._check_children()
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answered (the versions document is a 300)
            except (urllib.error.URLError, OSError):
                pass
            if self._stop.wait(0.2):
                return
        raise ConfigError(f"the API did not answer on {url} within {READY_TIMEOUT:.0f}s")

    def _check_children(self) -> None:
        for name, proc in self._children:
            if proc.poll() is not None:
                raise ConfigError(f"{name} (pid {proc.pid}) exited with {proc.returncode}; see its log above")

    # --- run and stop -----------------------------------------------------------

    def wait(self) -> int:
        while not self._stop.wait(0.5):
            try:
                self._check_children()
            except ConfigError as e:
                LOG.error("%s", e.message)
                return 1
            if self._zk_supervisor is not None:
                # Meanwhile writes answer 503 and reads go on; conductors and
                # API workers reconnect by themselves once it is back.
                self._zk_supervisor.check()
        return 0

    def request_stop(self, *_args) -> None:
        self._stop.set()

    def stop(self) -> None:
        for name, proc in reversed(self._children):
            if proc.poll() is None:
                LOG.info("stopping %s (pid %d)", name, proc.pid)
                proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                LOG.warning("%s (pid %d) did not stop; killing it", name, proc.pid)
                proc.kill()
                proc.wait()
        self._children.clear()
        for pool in reversed(self._pools):
            LOG.info("unmounting pool %s", pool.mount_point)
            try:
                pool.release()
            except ShareflowError as e:
                LOG.error("could not unmount %s: %s", pool.mount_point, e.message)
        self._pools.clear()
        for path in reversed(self._shared_binds):
            try:
                mounts.unmount(path, timeout=POOL_TIMEOUT)
            except ShareflowError as e:
                LOG.error("could not unmount %s: %s", path, e.message)
        self._shared_binds.clear()
        if self._zk is not None:
            LOG.info("stopping ZooKeeper")
            self._zk.stop()
            self._zk = self._zk_supervisor = None


def banner(config: Config, token: str, admin_login=None) -> str:
    url = config.api.public_url or f"http://{config.api.host}:{config.api.port}"
    token_file = config.state_dir / "admin.token"
    if admin_login is not None:
        if admin_login.password is None:
            password = (f"(not known: {admin_login.password_file} is gone; "
                        "set one with `shareflow identity user set-password admin`)")
        else:
            password = f"{admin_login.password}\n               (also in {admin_login.password_file})"
        return f"""
shareflow is running (Ctrl-C stops it).
  endpoint:       {url}/v2
  identity:       {url}/identity/v3 (Keystone v3)
  admin password: {password}
  admin token:    {token} (static, for scripts; also in {token_file})
  try it, from another shell in this directory:
    export OS_CLIENT_CONFIG_FILE={admin_login.clouds_file}
    .venv/bin/openstack --os-cloud shareflow share create NFS 1 --name demo
    .venv/bin/openstack --os-cloud shareflow share list
"""
    return f"""
shareflow is running (Ctrl-C stops it).
  endpoint:    {url}/v2
  admin token: {token}
               (also in {token_file})
  try it, from another shell in this directory:
    export OS_AUTH_TYPE=admin_token OS_ENDPOINT={url}/v2 OS_TOKEN=$(cat {token_file})
    .venv/bin/openstack share create NFS 1 --name demo
    .venv/bin/openstack share list
"""


def run(args) -> int:
    setup_logging("run")
    config = config_mod.load(args.config)
    launcher = Launcher(config)
    signal.signal(signal.SIGINT, launcher.request_stop)
    signal.signal(signal.SIGTERM, launcher.request_stop)
    try:
        token = launcher.start()
        if launcher._stop.is_set():
            return 130
        print(banner(config, token, launcher.admin_login), flush=True)
        return launcher.wait()
    except ShareflowError as e:
        print(f"shareflow run: {e.message}", file=sys.stderr)
        return 1
    finally:
        launcher.stop()

