"""The kazoo boundary: client construction, ZooKeeper paths, error translation.

Kazoo and TaskFlow jobboard errors become :class:`CoordinationError` here and
nowhere else. Paths are prefixed with the configured chroot by hand (rather
than kazoo's chroot) so the chroot itself need not exist beforehand.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry
from taskflow import exceptions as tf_exc

from shareflow.config import RESERVED_BACKEND_NAME, ZooKeeperConfig
from shareflow.exceptions import CoordinationError

LOG = logging.getLogger(__name__)


@contextlib.contextmanager
def translate_errors(action: str) -> Iterator[None]:
    try:
        yield
    except (KazooException, KazooTimeoutError, tf_exc.JobFailure) as e:
        raise CoordinationError(
            f"{action}: ZooKeeper failed: {e}",
            user_message="the coordination service is unavailable, try again later",
        ) from e


#: The board of scheduling jobs (``schedule_share``: ``[scheduler] placement
#: = "conductor"``, or posted before the API placed shares): served by the
#: conductors of every host besides their own ``host@backend`` boards, since
#: placing a share needs only the database. Never a ``host@backend`` key (no
#: ``@``); a backend may not be named so (``shareflow.config``), so it is
#: never a legacy bare-name board either.
SCHEDULER_BOARD = RESERVED_BACKEND_NAME


def boards_root(chroot: str) -> str:
    return f"{chroot}/jobboards"


def board_path(chroot: str, key: str) -> str:
    """Jobs of one share service, ``key`` = ``host@backend``: only the
    conductors of that host serve it, so two hosts with a backend of the
    same name never run each other's jobs. (A bare backend name is the
    board of jobs posted before boards were per host, which the conductors
    of that backend drain: :mod:`shareflow.engine.worker`.) The board keeps
    its trash and entities beside the last component, so each gets a
    directory of its own."""
    if not key or "/" in key:
        raise ValueError(f"{key!r} is not a board key")
    return f"{boards_root(chroot)}/{key}/jobs"


def list_boards(client: KazooClient, chroot: str) -> list[str]:
    """The keys of every board ZooKeeper has (``host@backend``, and legacy
    bare backend names), sorted; none while no job was ever posted."""
    with translate_errors("listing the jobboards"):
        if client.exists(boards_root(chroot)) is None:
            return []
        return sorted(client.get_children(boards_root(chroot)))


def lock_path(chroot: str, kind: str, resource_id: str) -> str:
    return f"{chroot}/locks/{kind}/{resource_id}"


def make_client(cfg: ZooKeeperConfig) -> KazooClient:
    return KazooClient(
        hosts=cfg.hosts,
        timeout=cfg.session_timeout,
        # Reconnect for ever; individual commands retry briefly then fail into
        # CoordinationError so a request never hangs on a dead ensemble.
        connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=2.0),
        command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0),
    )


def start_client(cfg: ZooKeeperConfig) -> KazooClient:
    client = make_client(cfg)
    with translate_errors(f"connecting to {cfg.hosts}"):
        client.start(timeout=cfg.connect_timeout)
    return client


def stop_client(client: KazooClient) -> None:
    with contextlib.suppress(Exception):
        client.stop()
    with contextlib.suppress(Exception):
        client.close()
