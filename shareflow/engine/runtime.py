"""What tasks need at run time, handed to them by the conductor.

Tasks are rebuilt from a flow factory in whichever conductor claims the job,
so they cannot hold live objects from the API process. The conductor injects
one :class:`Runtime` into each engine as a transient (never persisted) value
named ``runtime``; tasks declare it as their first argument.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shareflow.config import Config
from shareflow.db.engine import Database
from shareflow.engine.locks import HostLocks, ResourceLocks
from shareflow.engine.outcomes import OutcomeRecorder
from shareflow.exceptions import ConfigError

if TYPE_CHECKING:
    from shareflow.drivers.registry import Backend

#: The store name tasks require it by.
RUNTIME = "runtime"


@dataclass
class Runtime:
    config: Config
    db: Database
    backends: Mapping[str, Backend]
    locks: ResourceLocks
    recorder: OutcomeRecorder
    clock: Callable[[], datetime]
    #: Posts the jobs a flow starts (a rescheduled create's next attempt):
    #: a ``JobPoster`` over the conductor's boards.
    poster: Any = None
    #: Locks between this host's processes (``shareflow.engine.locks``).
    host_locks: HostLocks | None = None

    def backend(self, name: str) -> Backend:
        """By ``host@backend`` (a job's store names its share service) - this
        host's only - or by bare name (a job posted before boards were per
        host, drained from its legacy board)."""
        host, sep, bare = name.rpartition("@")
        if sep and host != self.config.host:
            raise ConfigError(f"backend {name!r} is on another host than this conductor's "
                              f"({self.config.host})")
        try:
            return self.backends[bare if sep else name]
        except KeyError:
            raise ConfigError(f"backend {name!r} is not configured on this conductor") from None
