"""Configuration: one TOML file, loaded once, typed and validated at start-up.

The file is ``etc/shareflow.toml`` unless ``SHAREFLOW_CONFIG`` names another.
Relative paths in it are relative to the directory holding the file. Every
setting has a named default below; unknown keys are errors (a typo must not
silently fall back to a default).
"""

from __future__ import annotations

import os
import re
import socket
import sys
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shareflow.exceptions import ConfigError
from shareflow.scheduler import registry as scheduler_registry

ENV_VAR = "SHAREFLOW_CONFIG"
DEFAULT_PATH = Path("etc/shareflow.toml")

DEFAULT_STATE_DIR = "var"
DEFAULT_ZK_HOSTS = "127.0.0.1:2181"
DEFAULT_ZK_CHROOT = "/shareflow"
DEFAULT_ZK_SESSION_TIMEOUT = 10.0
DEFAULT_ZK_CONNECT_TIMEOUT = 10.0
#: Longest an API request waits for ZooKeeper to post its job before it is
#: answered 503 and its status change undone (seconds). Short, so that a lost
#: ZooKeeper never holds an API worker thread (the others serve reads); below
#: the conductors' orphan timeout, which would otherwise fail a job still
#: being posted.
DEFAULT_ZK_REQUEST_TIMEOUT = 5.0
DEFAULT_API_HOST = "127.0.0.1"
DEFAULT_API_PORT = 8786
DEFAULT_API_WORKERS = 2
DEFAULT_API_MAX_BODY = 1 << 20
DEFAULT_AUTH_STRATEGY = "tokens"
DEFAULT_CONDUCTOR_WORKERS = 2
#: Conductors wake on the board's POSTED notification; this poll only catches
#: jobs that became claimable otherwise (their owner died).
DEFAULT_CONDUCTOR_POLL = 1.0
DEFAULT_STEP_TIMEOUT = 60.0
DEFAULT_ORPHAN_TIMEOUT = 300.0
#: A posted or running job no live conductor has claimed for this long is stalled (seconds).
DEFAULT_STALL_AFTER = 60.0
#: Seconds between the tries of an engine write the database failed (TaskFlow's own).
DEFAULT_WRITE_RETRY_WAIT = 5.0
EXPORT_SERVERS_AT_EXIT = ("keep", "stop")
DEFAULT_EXPORT_SERVERS_AT_EXIT = "keep"
DEFAULT_GANESHA_PORT = 2049
#: Which mount table a managed NFS-Ganesha reads: "host" (the host's, every
#: mount; each export created costs time in proportion to them) or "own" (a
#: namespace of its own whose /etc/mtab lists only the exports being created:
#: constant work per export; needs the mounts that hold the exports to be
#: shared, as systemd makes them, so later share mounts reach it). See
#: shareflow/drivers/export/ganesha_mtab.py and docs/benchmarks.md.
DEFAULT_GANESHA_MOUNT_TABLE = "host"
GANESHA_MOUNT_TABLES = ("host", "own")
DEFAULT_POOL_NAME = "pool0"
DEFAULT_POOL_IMAGE_GB = 4
#: The image share driver's default bound on the loop devices its shares may
#: hold at once on this host (one per mounted share image; the kernel's own
#: limit may be lower: then a create is refused when it gives none).
DEFAULT_MAX_LOOP_DEVICES = 256
#: The share driver a backend uses when its table names none.
DEFAULT_SHARE_DRIVER = "btrfs"
#: Capacity a pool reports to the scheduler (Manila's per-backend options).
#: 1.0: a pool never promises more than it holds, shareflow's behaviour
#: before over-subscription existed (Manila's own default is 20.0).
DEFAULT_MAX_OVER_SUBSCRIPTION_RATIO = 1.0
DEFAULT_RESERVED_PERCENTAGE = 0
DEFAULT_SHARE_TYPE = "default"
#: Manila's ``default_share_group_type``: none unless configured.
DEFAULT_SHARE_GROUP_TYPE: str | None = None
#: Share servers (DHSS=true backends), with Manila's option names and defaults
#: (manila/share/manager.py): unused servers are deleted by the conductors'
#: housekeeping once unused this many minutes, unless automatic cleanup is off;
#: a server can also go with its last share. Manila's interval is at least 10
#: minutes; here any positive number of minutes (fractions too) is accepted.
DEFAULT_AUTOMATIC_SHARE_SERVER_CLEANUP = True
DEFAULT_UNUSED_SHARE_SERVER_CLEANUP_INTERVAL = 10
MAX_UNUSED_SHARE_SERVER_CLEANUP_INTERVAL = 720
DEFAULT_DELETE_SHARE_SERVER_WITH_LAST_SHARE = False
#: The availability zone of this service's backends (Manila's
#: ``storage_availability_zone`` default).
DEFAULT_AVAILABILITY_ZONE = "nova"
#: The scheduler (Manila's ``scheduler_default_filters``/``_weighers``,
#: ``capacity_weight_multiplier``, ``scheduler_max_attempts``): see
#: ``shareflow.scheduler.registry`` for the names and the default lists.
DEFAULT_SCHEDULER_FILTERS = scheduler_registry.DEFAULT_FILTERS
#: The key of the scheduler's job board (``shareflow.engine.zk.SCHEDULER_BOARD``):
#: no backend may have it as its name.
RESERVED_BACKEND_NAME = "scheduler"
DEFAULT_SCHEDULER_WEIGHERS = scheduler_registry.DEFAULT_WEIGHERS
DEFAULT_CAPACITY_WEIGHT_MULTIPLIER = 1.0
DEFAULT_SCHEDULER_MAX_ATTEMPTS = 3
#: Who places a new share: the API, in the create's own transaction (one job
#: per create: ``shareflow.services.shares``), or a conductor running a
#: ``schedule_share`` job first (``shareflow.tasks.scheduling``).
PLACEMENT_API = "api"
PLACEMENT_CONDUCTOR = "conductor"
PLACEMENTS = (PLACEMENT_API, PLACEMENT_CONDUCTOR)
DEFAULT_PLACEMENT = PLACEMENT_API
MAX_SCHEDULER_MAX_ATTEMPTS = 100
#: A pool its conductors have not reported for this long is not chosen
#: (seconds): three missed reports, conductors report every 30 s.
DEFAULT_POOL_STALE_AFTER = 90.0
#: Manila's default per-project quotas (manila/quota.py); -1 means unlimited.
DEFAULT_QUOTA_SHARES = 50
DEFAULT_QUOTA_GIGABYTES = 1000
DEFAULT_QUOTA_SNAPSHOTS = 50
DEFAULT_QUOTA_SNAPSHOT_GIGABYTES = 1000
UNLIMITED = -1
#: Largest quota value (Manila's quotas.hard_limit is a 32-bit integer).
MAX_QUOTA = 0x7FFFFFFF

AUTH_STRATEGIES = ("tokens", "noauth", "keystone", "identity")
#: keystonemiddleware's ``token_cache_time``: a validated token is trusted this
#: long (seconds) before Keystone is asked again; 0 asks on every request.
DEFAULT_KEYSTONE_CACHE_SECONDS = 300.0
#: Upper bound for one request to Keystone (seconds).
DEFAULT_KEYSTONE_TIMEOUT = 5.0
DEFAULT_KEYSTONE_DOMAIN = "Default"
#: The built-in identity ([identity]): Keystone's defaults (token lifetime,
#: region, active Fernet keys). A user's password is refused without being
#: checked for ``lockout_duration`` seconds after ``lockout_failure_attempts``
#: failures in a row, twice as long after each further failure, up to
#: MAX_LOCKOUT_DURATION.
DEFAULT_TOKEN_EXPIRATION = 3600
MAX_TOKEN_EXPIRATION = 7 * 24 * 3600
DEFAULT_REGION = "RegionOne"
DEFAULT_MAX_ACTIVE_KEYS = 3
DEFAULT_LOCKOUT_FAILURE_ATTEMPTS = 5
DEFAULT_LOCKOUT_DURATION = 30.0
MAX_LOCKOUT_DURATION = 3600.0
EXPORT_DRIVERS = ("ganesha",)

_BACKEND_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_CHROOT = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_NETNS = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class DatabaseConfig:
    url: str


@dataclass(frozen=True)
class ZooKeeperConfig:
    hosts: str
    chroot: str
    session_timeout: float
    connect_timeout: float
    #: Bound on one job post (waiting for a connection included): past it the
    #: request is answered 503 (seconds).
    request_timeout: float
    #: ``shareflow run`` starts a private ZooKeeper for these hosts when true.
    embedded: bool
    data_dir: Path


@dataclass(frozen=True)
class ApiConfig:
    host: str
    port: int
    workers: int
    max_body_bytes: int
    #: URL clients reach the API at, used in links and the versions document;
    #: empty means "derive from the request".
    public_url: str


@dataclass(frozen=True)
class KeystoneConfig:
    """An existing OpenStack Keystone that validates users' tokens
    (``[auth.keystone]``, used when ``[auth] strategy = "keystone"``): the
    service user's credentials, as keystonemiddleware's ``[keystone_authtoken]``."""

    auth_url: str
    username: str
    password: str = field(repr=False)
    project_name: str
    user_domain_name: str = DEFAULT_KEYSTONE_DOMAIN
    project_domain_name: str = DEFAULT_KEYSTONE_DOMAIN
    cache_seconds: float = DEFAULT_KEYSTONE_CACHE_SECONDS
    timeout: float = DEFAULT_KEYSTONE_TIMEOUT


@dataclass(frozen=True)
class AuthConfig:
    strategy: str
    tokens_file: Path
    keystone: KeystoneConfig | None = None


@dataclass(frozen=True)
class IdentityConfig:
    """The built-in identity (``/identity``, Keystone v3 compatible)."""

    key_repository: Path = Path(DEFAULT_STATE_DIR) / "identity-keys"
    token_expiration: int = DEFAULT_TOKEN_EXPIRATION
    region: str = DEFAULT_REGION
    #: The share API's URLs in the catalog (without ``/v2``); empty means the
    #: API's own URL (``api.public_url``, else the URL the request came to).
    public_url: str = ""
    internal_url: str = ""
    admin_url: str = ""
    max_active_keys: int = DEFAULT_MAX_ACTIVE_KEYS
    lockout_failure_attempts: int = DEFAULT_LOCKOUT_FAILURE_ATTEMPTS
    lockout_duration: float = DEFAULT_LOCKOUT_DURATION


@dataclass(frozen=True)
class ConductorConfig:
    workers: int
    poll_interval: float
    #: Upper bound for one backend call inside a task (a hung step fails then).
    step_timeout: float
    #: A job recorded but not on any board after this long was orphaned by a
    #: dying API process; its resource is failed (seconds).
    orphan_timeout: float
    #: A posted or running job that no live conductor has claimed in
    #: ZooKeeper for this long is shown ``stalled`` (seconds).
    stall_after: float = DEFAULT_STALL_AFTER
    #: Seconds between the tries of a flow's write the database failed
    #: (unreachable); after the last try the engine stops and its job goes
    #: back to the board (``shareflow.engine.storage``): the tries bridge a
    #: database restart or failover without sending jobs round the board.
    write_retry_wait: float = DEFAULT_WRITE_RETRY_WAIT
    #: What the pool does with the NFS-Ganesha servers (and share servers) it
    #: runs when it stops: ``"keep"`` leaves them serving, so restarting or
    #: upgrading the conductors never interrupts NFS clients (the next pool
    #: adopts and supervises them; a Ganesha with thousands of exports takes
    #: minutes to start); ``"stop"`` takes them down with it (``shareflow run``
    #: asks for that, since it unmounts the pools at exit).
    export_servers_at_exit: str = DEFAULT_EXPORT_SERVERS_AT_EXIT


@dataclass(frozen=True)
class QuotaConfig:
    """Default per-project limits; a project's own limits (``quota-sets``) override them."""

    shares: int = DEFAULT_QUOTA_SHARES
    gigabytes: int = DEFAULT_QUOTA_GIGABYTES
    snapshots: int = DEFAULT_QUOTA_SNAPSHOTS
    snapshot_gigabytes: int = DEFAULT_QUOTA_SNAPSHOT_GIGABYTES

    def as_dict(self) -> dict[str, int]:
        return {"shares": self.shares, "gigabytes": self.gigabytes, "snapshots": self.snapshots,
                "snapshot_gigabytes": self.snapshot_gigabytes}


@dataclass(frozen=True)
class SchedulerConfig:
    """How a pool is chosen for a share (``shareflow.scheduler.filter_scheduler``)."""

    #: Filter names, run in this order (after the mandatory
    #: ServiceEnabledFilter and RetryFilter, which always run first).
    default_filters: tuple[str, ...] = DEFAULT_SCHEDULER_FILTERS
    #: Weigher names; their weights are added up.
    default_weighers: tuple[str, ...] = DEFAULT_SCHEDULER_WEIGHERS
    #: The CapacityWeigher's multiplier: positive spreads shares over pools,
    #: negative stacks them on the fullest one.
    capacity_weight_multiplier: float = DEFAULT_CAPACITY_WEIGHT_MULTIPLIER
    #: Pools a create is tried on before its share is failed (1 = no reschedule).
    max_attempts: int = DEFAULT_SCHEDULER_MAX_ATTEMPTS
    #: Seconds after its last report a pool is no longer chosen.
    pool_stale_after: float = DEFAULT_POOL_STALE_AFTER
    #: Where a create's share is placed: ``"api"`` - by the API node, in the
    #: POST's transaction, which records and posts the one ``create_share``
    #: job to the chosen pool; ``"conductor"`` - by a conductor of any host,
    #: running the ``schedule_share`` job the API posts to the scheduler's
    #: board (two jobs per create). Conductors run ``schedule_share`` jobs
    #: whatever this says (those posted before a change of it).
    placement: str = DEFAULT_PLACEMENT
    #: Tests only, like a backend's: the plan file whose ``conductor.<point>``
    #: entries hold or fail this host's conductors of the scheduler board
    #: (``shareflow.engine.checkpoints``). None in production.
    fault_plan: Path | None = None

    def weigher_specs(self) -> tuple[tuple[str, float], ...]:
        """(name, multiplier) of each configured weigher."""
        multipliers = {"CapacityWeigher": self.capacity_weight_multiplier}
        return tuple((name, multipliers.get(name, 1.0)) for name in self.default_weighers)


@dataclass(frozen=True)
class BtrfsConfig:
    #: Where the btrfs pool is mounted (the driver creates subvolumes below it).
    mount_point: Path
    #: Each share's subvolume is mounted here on its own mount point, so that
    #: Ganesha's FSAL VFS resolves it as a filesystem of its own.
    exports_dir: Path
    #: Optional loop image backing the pool (created by ``shareflow run``).
    image: Path | None
    image_size_gb: int


@dataclass(frozen=True)
class ImageConfig:
    """The image share driver (``share_driver = "image"``): one XFS image file
    per share on an XFS pool with reflink, each loop-mounted for export."""

    #: Where the XFS pool (with reflink) is mounted; share and snapshot images live below it.
    mount_point: Path
    #: Each share's image is mounted here on ``<exports_dir>/<share id>``.
    exports_dir: Path
    #: Optional loop image backing the pool (created and formatted
    #: ``mkfs.xfs -m reflink=1`` by ``shareflow run`` when missing).
    image: Path | None
    image_size_gb: int
    #: At most this many shares of the backend are mounted (hold a loop device) at once.
    max_loop_devices: int = DEFAULT_MAX_LOOP_DEVICES


@dataclass(frozen=True)
class GaneshaConfig:
    address: str
    port: int
    state_dir: Path
    #: Network namespace the server runs in ("" = the host's).
    netns: str
    #: Whether shareflow starts and supervises this server process.
    managed: bool
    #: DEFAULT_GANESHA_MOUNT_TABLE's choice for this server.
    mount_table: str = DEFAULT_GANESHA_MOUNT_TABLE


@dataclass(frozen=True)
class ShareServersConfig:
    """Share servers of a DHSS=true backend (a network namespace with its own
    NFS-Ganesha each)."""

    #: Each server keeps its Ganesha configuration, exports and logs in
    #: ``<state_dir>/<server id>/``.
    state_dir: Path
    #: Port every share server's Ganesha listens on (on its own address).
    port: int = DEFAULT_GANESHA_PORT
    #: The mount table every share server's Ganesha reads (as GaneshaConfig's).
    mount_table: str = DEFAULT_GANESHA_MOUNT_TABLE
    #: ``automatic_share_server_cleanup``: delete servers unused for ``unused_cleanup_interval``.
    automatic_cleanup: bool = DEFAULT_AUTOMATIC_SHARE_SERVER_CLEANUP
    #: ``unused_share_server_cleanup_interval``, in minutes.
    unused_cleanup_interval: float = DEFAULT_UNUSED_SHARE_SERVER_CLEANUP_INTERVAL
    #: ``delete_share_server_with_last_share``: a share delete that leaves its
    #: server without shares deletes the server too.
    delete_with_last_share: bool = DEFAULT_DELETE_SHARE_SERVER_WITH_LAST_SHARE


@dataclass(frozen=True)
class BackendConfig:
    name: str
    pool: str
    share_driver: str
    driver_handles_share_servers: bool
    #: The ``[backends.btrfs]`` table (None for a backend of another share driver).
    btrfs: BtrfsConfig | None
    ganesha: GaneshaConfig
    #: Tests only: a JSON fault plan read by the fault-injecting driver proxy
    #: and by the conductors' checkpoints (``shareflow.engine.checkpoints``).
    fault_plan: Path | None
    #: How share servers are kept (used by DHSS=true backends only).
    share_servers: ShareServersConfig | None = None
    #: The typed table of the backend's share driver (``[backends.<section>]``,
    #: see ``shareflow.drivers.share.registry``) when it is not btrfs (whose
    #: table is ``btrfs``).
    driver_config: Any = None
    #: What the pool reports for the scheduler's CapacityFilter and
    #: DriverFilter (Manila's backend options of the same names);
    #: None (not configured) keeps the driver's own answer, or the default.
    max_over_subscription_ratio: float | None = None
    reserved_percentage: int | None = None
    thin_provisioning: bool | None = None
    filter_function: str | None = None

    @property
    def share_config(self) -> Any:
        """What the backend's share driver is built from."""
        return self.driver_config if self.driver_config is not None else self.btrfs

    def host(self, service_host: str) -> str:
        """Manila's ``host@backend#pool``."""
        return f"{service_host}@{self.name}#{self.pool}"


@dataclass(frozen=True)
class Config:
    path: Path
    state_dir: Path
    host: str
    database: DatabaseConfig
    zookeeper: ZooKeeperConfig
    api: ApiConfig
    auth: AuthConfig
    conductor: ConductorConfig
    default_share_type: str = DEFAULT_SHARE_TYPE
    default_share_group_type: str | None = DEFAULT_SHARE_GROUP_TYPE
    availability_zone: str = DEFAULT_AVAILABILITY_ZONE
    backends: tuple[BackendConfig, ...] = field(default_factory=tuple)
    quotas: QuotaConfig = field(default_factory=QuotaConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)

    def backend(self, name: str) -> BackendConfig:
        for b in self.backends:
            if b.name == name:
                return b
        raise ConfigError(f"no backend named {name!r} in {self.path}")


class Section:
    """Reads typed keys out of one TOML table and complains about leftovers
    (share drivers read their own table with it: see ``parse_btrfs``)."""

    def __init__(self, data: Any, where: str, base: Path):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a table")
        self._data = dict(data)
        self._where = where
        self._base = base

    def _get(self, key: str, types: tuple[type, ...], default: Any, what: str) -> Any:
        if key not in self._data:
            if default is _REQUIRED:
                raise ConfigError(f"{self._where}.{key}: required setting is missing")
            return default
        value = self._data.pop(key)
        if isinstance(value, bool) and bool not in types:
            raise ConfigError(f"{self._where}.{key}: expected {what}, got {value!r}")
        if not isinstance(value, types):
            raise ConfigError(f"{self._where}.{key}: expected {what}, got {value!r}")
        return value

    def str(self, key: str, default: Any = None) -> str:
        return self._get(key, (str,), default, "a string")

    def int(self, key: str, default: Any, minimum: int | None = None, maximum: int | None = None) -> int:
        v = self._get(key, (int,), default, "an integer")
        if minimum is not None and v < minimum or maximum is not None and v > maximum:
            raise ConfigError(f"{self._where}.{key}: {v} is outside {minimum}..{maximum}")
        return v

    def float(self, key: str, default: Any, minimum: float = 0.0) -> float:
        v = float(self._get(key, (int, float), default, "a number"))
        if v <= minimum:
            raise ConfigError(f"{self._where}.{key}: must be greater than {minimum}")
        return v

    def number(self, key: str, default: Any) -> float:
        """Any finite number, negative and zero included."""
        v = float(self._get(key, (int, float), default, "a number"))
        if v != v or v in (float("inf"), float("-inf")):
            raise ConfigError(f"{self._where}.{key}: must be a finite number")
        return v

    def strings(self, key: str, default: Any) -> tuple[str, ...]:
        v = self._get(key, (list, tuple), default, "a list of strings")
        if not all(isinstance(x, str) for x in v):
            raise ConfigError(f"{self._where}.{key}: expected a list of strings, got {v!r}")
        return tuple(v)

    def bool(self, key: str, default: Any) -> bool:
        return self._get(key, (bool,), default, "true or false")

    def path(self, key: str, default: Any) -> Path | None:
        v = self.str(key, default)
        if v is None:
            return None
        p = Path(v)
        return p if p.is_absolute() else (self._base / p).resolve()

    def has(self, key: str) -> bool:
        return key in self._data

    def table(self, key: str) -> Any:
        return self._data.pop(key, None)

    def done(self) -> None:
        if self._data:
            keys = ", ".join(sorted(self._data))
            raise ConfigError(f"{self._where}: unknown setting(s): {keys}")


_REQUIRED = object()


def parse_btrfs(section: Section, backend_dir: Path) -> BtrfsConfig:
    """``[backends.btrfs]`` (defaults below the backend's state directory)."""
    return BtrfsConfig(
        mount_point=section.path("mount_point", str(backend_dir / "pool")),
        exports_dir=section.path("exports_dir", str(backend_dir / "exports")),
        image=section.path("image", None),
        image_size_gb=section.int("image_size_gb", DEFAULT_POOL_IMAGE_GB, minimum=1, maximum=1 << 16),
    )


def parse_image(section: Section, backend_dir: Path) -> ImageConfig:
    """``[backends.image]`` (defaults below the backend's state directory)."""
    return ImageConfig(
        mount_point=section.path("mount_point", str(backend_dir / "pool")),
        exports_dir=section.path("exports_dir", str(backend_dir / "exports")),
        image=section.path("image", None),
        image_size_gb=section.int("image_size_gb", DEFAULT_POOL_IMAGE_GB, minimum=1, maximum=1 << 16),
        max_loop_devices=section.int("max_loop_devices", DEFAULT_MAX_LOOP_DEVICES, minimum=1, maximum=1 << 20),
    )


def _split_bind(value: str, where: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not (0 < int(port) < 65536):
        raise ConfigError(f"{where}: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _backend(data: Any, index: int, base: Path, state_dir: Path) -> BackendConfig:
    s = Section(data, f"backends[{index}]", base)
    name = s.str("name", _REQUIRED)
    if not _BACKEND_NAME.match(name):
        raise ConfigError(
            f"backends[{index}].name: {name!r} must be lowercase letters, digits, '-' or '_' "
            "(it becomes a ZooKeeper path and a directory name)"
        )
    where = f"backends[{index}] ({name})"
    pool = s.str("pool", DEFAULT_POOL_NAME)
    if not _BACKEND_NAME.match(pool):
        raise ConfigError(f"{where}.pool: {pool!r} must be lowercase letters, digits, '-' or '_'")
    # Late: the share drivers' modules import this one.
    from shareflow.drivers.share import registry as share_drivers

    share_driver = s.str("share_driver", DEFAULT_SHARE_DRIVER)
    kind = share_drivers.find(share_driver)
    if kind is None:
        raise ConfigError(f"{where}.share_driver: {share_driver!r} is not one of {share_drivers.names()}")
    dhss = s.bool("driver_handles_share_servers", False)
    fault_plan = s.path("fault_plan", None)
    ratio = s.float("max_over_subscription_ratio", None, minimum=0.0) if s.has("max_over_subscription_ratio") else None
    if ratio is not None and ratio < 1.0:
        # Manila refuses a ratio below 1 too: a pool would promise less than it holds.
        raise ConfigError(f"{where}.max_over_subscription_ratio: {ratio:g} is less than 1.0")
    reserved = s.int("reserved_percentage", None, minimum=0, maximum=100) if s.has("reserved_percentage") else None
    thin = s.bool("thin_provisioning", None)
    filter_function = s.str("filter_function", None)
    if filter_function is not None:
        from shareflow.scheduler import evaluator

        try:
            evaluator.parse(filter_function)
        except evaluator.EvaluatorError as e:
            raise ConfigError(f"{where}.filter_function: {e}") from None
    interval = s.float("unused_share_server_cleanup_interval", DEFAULT_UNUSED_SHARE_SERVER_CLEANUP_INTERVAL)
    if interval > MAX_UNUSED_SHARE_SERVER_CLEANUP_INTERVAL:
        raise ConfigError(f"{where}.unused_share_server_cleanup_interval: {interval:g} minutes is more "
                          f"than {MAX_UNUSED_SHARE_SERVER_CLEANUP_INTERVAL}")
    automatic_cleanup = s.bool("automatic_share_server_cleanup", DEFAULT_AUTOMATIC_SHARE_SERVER_CLEANUP)
    with_last_share = s.bool("delete_share_server_with_last_share", DEFAULT_DELETE_SHARE_SERVER_WITH_LAST_SHARE)
    servers_dir = s.path("share_servers_dir", str(state_dir / "backends" / name / "share-servers"))

    backend_dir = state_dir / "backends" / name
    for other in share_drivers.sections():
        if other != kind.section and s.has(other):
            raise ConfigError(f"{where}.{other}: applies only to backends with share_driver = "
                              f"{share_drivers.by_section(other).name!r}, not {share_driver!r}")
    ds = Section(s.table(kind.section), f"{where}.{kind.section}", base)
    driver_config = kind.parse(ds, backend_dir)
    ds.done()

    raw_ganesha = s.table("ganesha")
    if dhss and isinstance(raw_ganesha, dict):
        # A DHSS=true backend has no server of its own: each share server
        # runs its Ganesha on its own address, in its own namespace.
        static_only = sorted(set(raw_ganesha) & {"address", "netns", "state_dir", "managed"})
        if static_only:
            raise ConfigError(f"{where}.ganesha: {', '.join(static_only)} apply only to backends with "
                              "driver_handles_share_servers = false (share servers have their own)")
    gs = Section(raw_ganesha, f"{where}.ganesha", base)
    address = gs.str("address", "127.0.0.1")
    try:
        import ipaddress

        address = str(ipaddress.ip_address(address))
    except ValueError:
        raise ConfigError(f"{where}.ganesha.address: {address!r} is not an IP address") from None
    netns = gs.str("netns", "")
    if netns and not _NETNS.match(netns):
        raise ConfigError(f"{where}.ganesha.netns: {netns!r} is not a valid namespace name")
    ganesha = GaneshaConfig(
        address=address,
        port=gs.int("port", DEFAULT_GANESHA_PORT, minimum=1, maximum=65535),
        state_dir=gs.path("state_dir", str(backend_dir / "ganesha")),
        netns=netns,
        # A DHSS=true backend has no server of its own to manage.
        managed=False if dhss else gs.bool("managed", True),
        mount_table=gs.str("mount_table", DEFAULT_GANESHA_MOUNT_TABLE),
    )
    if ganesha.mount_table not in GANESHA_MOUNT_TABLES:
        raise ConfigError(f"{where}.ganesha.mount_table: {ganesha.mount_table!r} is not one of "
                          + ", ".join(repr(t) for t in GANESHA_MOUNT_TABLES))
    gs.done()
    s.done()
    return BackendConfig(
        name=name,
        pool=pool,
        share_driver=share_driver,
        driver_handles_share_servers=dhss,
        # btrfs keeps its own field (every existing BackendConfig has it).
        btrfs=driver_config if isinstance(driver_config, BtrfsConfig) else None,
        ganesha=ganesha,
        fault_plan=fault_plan,
        driver_config=None if isinstance(driver_config, BtrfsConfig) else driver_config,
        max_over_subscription_ratio=ratio,
        reserved_percentage=reserved,
        thin_provisioning=thin,
        filter_function=filter_function,
        share_servers=ShareServersConfig(
            state_dir=servers_dir, port=ganesha.port, mount_table=ganesha.mount_table,
            automatic_cleanup=automatic_cleanup,
            unused_cleanup_interval=interval, delete_with_last_share=with_last_share,
        ),
    )


def parse(data: dict, path: Path) -> Config:
    """Build a :class:`Config` from already-decoded TOML (``path`` anchors relative paths)."""
    base = path.parent.resolve()
    top = Section(data, "config", base)
    state_dir = top.path("state_dir", DEFAULT_STATE_DIR)
    host = top.str("host", socket.gethostname().split(".")[0] or "localhost")
    default_share_type = top.str("default_share_type", DEFAULT_SHARE_TYPE)
    default_share_group_type = top.str("default_share_group_type", DEFAULT_SHARE_GROUP_TYPE) or None
    availability_zone = top.str("availability_zone", DEFAULT_AVAILABILITY_ZONE)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,254}$", availability_zone):
        raise ConfigError(f"config.availability_zone: {availability_zone!r} must be 1 to 255 letters, "
                          "digits, '_', '.', ':' or '-'")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$", host):
        raise ConfigError(f"config.host: {host!r} is not a valid host name")

    db = Section(top.table("database"), "database", base)
    url = db.str("url", f"sqlite:///{state_dir / 'shareflow.db'}")
    if not url.startswith(("sqlite:", "postgresql")):
        raise ConfigError(f"database.url: {url!r}: only sqlite and postgresql URLs are supported")
    db.done()

    zk = Section(top.table("zookeeper"), "zookeeper", base)
    chroot = zk.str("chroot", DEFAULT_ZK_CHROOT)
    if not _CHROOT.match(chroot):
        raise ConfigError(f"zookeeper.chroot: {chroot!r} must be an absolute path like /shareflow")
    zookeeper = ZooKeeperConfig(
        hosts=zk.str("hosts", DEFAULT_ZK_HOSTS),
        chroot=chroot,
        session_timeout=zk.float("session_timeout", DEFAULT_ZK_SESSION_TIMEOUT),
        connect_timeout=zk.float("connect_timeout", DEFAULT_ZK_CONNECT_TIMEOUT),
        request_timeout=zk.float("request_timeout", DEFAULT_ZK_REQUEST_TIMEOUT),
        embedded=zk.bool("embedded", False),
        data_dir=zk.path("data_dir", str(state_dir / "zookeeper")),
    )
    for hp in zookeeper.hosts.split(","):
        _split_bind(hp.strip(), "zookeeper.hosts")
    zk.done()

    a = Section(top.table("api"), "api", base)
    api_host, api_port = _split_bind(a.str("bind", f"{DEFAULT_API_HOST}:{DEFAULT_API_PORT}"), "api.bind")
    api = ApiConfig(
        host=api_host,
        port=api_port,
        workers=a.int("workers", DEFAULT_API_WORKERS, minimum=1, maximum=64),
        max_body_bytes=a.int("max_body_bytes", DEFAULT_API_MAX_BODY, minimum=1024),
        public_url=a.str("public_url", "").rstrip("/"),
    )
    a.done()

    au = Section(top.table("auth"), "auth", base)
    strategy = au.str("strategy", DEFAULT_AUTH_STRATEGY)
    if strategy not in AUTH_STRATEGIES:
        raise ConfigError(f"auth.strategy: {strategy!r} is not one of {AUTH_STRATEGIES}")
    tokens_file = au.path("tokens_file", str(state_dir / "tokens.json"))
    keystone = _keystone(Section(au.table("keystone"), "auth.keystone", base), strategy)
    auth = AuthConfig(strategy=strategy, tokens_file=tokens_file, keystone=keystone)
    au.done()

    identity = _identity(Section(top.table("identity"), "identity", base), state_dir)

    c = Section(top.table("conductor"), "conductor", base)
    conductor = ConductorConfig(
        workers=c.int("workers", DEFAULT_CONDUCTOR_WORKERS, minimum=1, maximum=64),
        poll_interval=c.float("poll_interval", DEFAULT_CONDUCTOR_POLL),
        step_timeout=c.float("step_timeout", DEFAULT_STEP_TIMEOUT),
        orphan_timeout=c.float("orphan_timeout", DEFAULT_ORPHAN_TIMEOUT),
        stall_after=c.float("stall_after", DEFAULT_STALL_AFTER),
        write_retry_wait=c.float("write_retry_wait", DEFAULT_WRITE_RETRY_WAIT),
        export_servers_at_exit=_export_servers_at_exit(c),
    )
    c.done()
    if zookeeper.request_timeout >= conductor.orphan_timeout:
        raise ConfigError(
            f"zookeeper.request_timeout ({zookeeper.request_timeout:g}) must be below "
            f"conductor.orphan_timeout ({conductor.orphan_timeout:g}): a job still being posted "
            "would be failed as orphaned"
        )

    qs = Section(top.table("quotas"), "quotas", base)
    quotas = QuotaConfig(**{
        name: qs.int(name, default, minimum=UNLIMITED, maximum=MAX_QUOTA)
        for name, default in QuotaConfig().as_dict().items()
    })
    qs.done()

    scheduler = _scheduler(Section(top.table("scheduler"), "scheduler", base))

    raw_backends = top.table("backends") or []
    if not isinstance(raw_backends, list):
        raise ConfigError("backends: expected an array of tables ([[backends]])")
    backends = tuple(_backend(b, i, base, state_dir) for i, b in enumerate(raw_backends))
    names = [b.name for b in backends]
    if len(set(names)) != len(names):
        raise ConfigError(f"backends: names must be unique, got {names}")
    if RESERVED_BACKEND_NAME in names:
        # Its legacy bare-name board would be the scheduler's board.
        raise ConfigError(f"backends: {RESERVED_BACKEND_NAME!r} is reserved (the scheduler's job board)")
    top.done()
    return Config(
        path=path,
        state_dir=state_dir,
        host=host,
        database=DatabaseConfig(url=url),
        zookeeper=zookeeper,
        api=api,
        auth=auth,
        conductor=conductor,
        default_share_type=default_share_type,
        default_share_group_type=default_share_group_type,
        availability_zone=availability_zone,
        backends=backends,
        quotas=quotas,
        scheduler=scheduler,
        identity=identity,
    )


def _identity_url(s: "Section", key: str) -> str:
    url = s.str(key, "").rstrip("/")
    if url and not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
        raise ConfigError(f"identity.{key}: {url!r} is not an http(s) URL")
    return url


def _identity(s: "Section", state_dir: Path) -> IdentityConfig:
    region = s.str("region", DEFAULT_REGION)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$", region):
        raise ConfigError(f"identity.region: {region!r} must be 1 to 255 letters, digits, '_', '.' or '-'")
    config = IdentityConfig(
        key_repository=s.path("key_repository", str(state_dir / "identity-keys")),
        token_expiration=s.int("token_expiration", DEFAULT_TOKEN_EXPIRATION, minimum=60,
                               maximum=MAX_TOKEN_EXPIRATION),
        region=region,
        public_url=_identity_url(s, "public_url"),
        internal_url=_identity_url(s, "internal_url"),
        admin_url=_identity_url(s, "admin_url"),
        max_active_keys=s.int("max_active_keys", DEFAULT_MAX_ACTIVE_KEYS, minimum=2, maximum=100),
        lockout_failure_attempts=s.int("lockout_failure_attempts", DEFAULT_LOCKOUT_FAILURE_ATTEMPTS,
                                       minimum=1, maximum=1000),
        lockout_duration=min(s.float("lockout_duration", DEFAULT_LOCKOUT_DURATION), MAX_LOCKOUT_DURATION),
    )
    s.done()
    return config


def _keystone(s: Section, strategy: str) -> KeystoneConfig | None:
    if strategy != "keystone":
        if s.has("auth_url"):
            raise ConfigError(f"auth.keystone: applies only with auth.strategy = \"keystone\", not {strategy!r}")
        s.done()
        return None
    auth_url = s.str("auth_url", _REQUIRED).rstrip("/")
    parsed = urllib.parse.urlsplit(auth_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigError(f"auth.keystone.auth_url: {auth_url!r} is not an http(s) URL")
    if not parsed.path.endswith("/v3"):
        # Tokens are validated with Keystone's v3 API; a bare host would make
        # every request fail later with a confusing 404.
        raise ConfigError(f"auth.keystone.auth_url: {auth_url!r} must be Keystone's v3 endpoint (ending in /v3)")
    password = s.str("password", None)
    password_file = s.path("password_file", None)
    if (password is None) == (password_file is None):
        raise ConfigError("auth.keystone: set exactly one of password and password_file")
    if password_file is not None:
        try:
            password = password_file.read_text().strip()
        except OSError as e:
            raise ConfigError(f"auth.keystone.password_file: cannot read {password_file}: {e.strerror}") from None
    cache = float(s._get("cache_seconds", (int, float), DEFAULT_KEYSTONE_CACHE_SECONDS, "a number"))
    if cache < 0:
        raise ConfigError("auth.keystone.cache_seconds: must not be negative")
    config = KeystoneConfig(
        auth_url=auth_url,
        username=s.str("username", _REQUIRED),
        password=password,
        project_name=s.str("project_name", _REQUIRED),
        user_domain_name=s.str("user_domain_name", DEFAULT_KEYSTONE_DOMAIN),
        project_domain_name=s.str("project_domain_name", DEFAULT_KEYSTONE_DOMAIN),
        cache_seconds=cache,
        timeout=s.float("timeout", DEFAULT_KEYSTONE_TIMEOUT),
    )
    s.done()
    return config


def _scheduler(s: Section) -> SchedulerConfig:
    try:
        filters = scheduler_registry.check_filters(s.strings("default_filters", DEFAULT_SCHEDULER_FILTERS))
        weighers = scheduler_registry.check_weighers(s.strings("default_weighers", DEFAULT_SCHEDULER_WEIGHERS))
    except ConfigError as e:
        raise ConfigError(f"scheduler: {e.message}") from None
    config = SchedulerConfig(
        default_filters=filters,
        default_weighers=weighers,
        capacity_weight_multiplier=s.number("capacity_weight_multiplier", DEFAULT_CAPACITY_WEIGHT_MULTIPLIER),
        max_attempts=s.int("max_attempts", DEFAULT_SCHEDULER_MAX_ATTEMPTS, minimum=1,
                           maximum=MAX_SCHEDULER_MAX_ATTEMPTS),
        pool_stale_after=s.float("pool_stale_after", DEFAULT_POOL_STALE_AFTER),
        placement=s.str("placement", DEFAULT_PLACEMENT),
        fault_plan=s.path("fault_plan", None),
    )
    if config.placement not in PLACEMENTS:
        raise ConfigError(f"scheduler.placement: {config.placement!r} is not one of {PLACEMENTS}")
    s.done()
    return config


def config_path(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_PATH


def _export_servers_at_exit(section: "Section") -> str:
    value = section.str("export_servers_at_exit", DEFAULT_EXPORT_SERVERS_AT_EXIT)
    if value not in EXPORT_SERVERS_AT_EXIT:
        raise ConfigError(f"conductor.export_servers_at_exit: {value!r} is not one of {EXPORT_SERVERS_AT_EXIT}")
    return value


def load(explicit: str | os.PathLike | None = None) -> Config:
    """Load and validate the configuration file; raise :class:`ConfigError` with
    a message naming the file and the setting when anything is wrong."""
    path = config_path(explicit).resolve()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist (set {ENV_VAR})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    try:
        return parse(data, path)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e.message}") from None


def load_or_exit(program: str, explicit: str | os.PathLike | None = None) -> Config:
    """For the entry points: the configuration, or a one-line message and exit
    status 2 - never a traceback - when it is missing or wrong."""
    try:
        return load(explicit)
    except ConfigError as e:
        print(f"{program}: {e.message}", file=sys.stderr)
        raise SystemExit(2) from None
