"""An API node's heartbeat in Manila's ``services`` (``manila-api``, the
configuration's ``host`` and ``availability_zone``), for ``GET /services``.

Written by a process's first request (gunicorn workers build the app on
their first request: that is their start) and then by the first request
after each ``INTERVAL``, from the request's own thread (no timer thread to start and
stop with each gunicorn worker; at most one write per worker per interval,
never two at once). The consequence: an API node that no request reached
for longer than ``[scheduler] pool_stale_after`` is shown ``down``; a load
balancer's health check (``GET /``) keeps a serving node ``up``.

A failed write (the database unreachable) costs the request nothing: it is
logged and tried again after the interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from shareflow.db import share_services
from shareflow.db.engine import Database
from shareflow.exceptions import ShareflowError

LOG = logging.getLogger("shareflow.api")

#: Seconds between two writes of one process (as often as conductors report).
INTERVAL = 30.0


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class ApiHeartbeat:
    def __init__(self, db: Database | Callable[[], Database], *, host: str, availability_zone: str,
                 clock: Callable[[], datetime] = _utcnow, interval: float = INTERVAL):
        #: The database, or how to get it when first needed (the app's services
        #: are not touched while the app is built).
        self._db = db
        self._host = host
        self._zone = availability_zone
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self._last: float | None = None

    def beat(self) -> None:
        """Write the heartbeat if this process has not for ``interval``."""
        if self._last is not None and time.monotonic() - self._last < self._interval:
            return
        if not self._lock.acquire(blocking=False):
            return  # another request of this process is writing it
        try:
            # Tried once per interval even when it fails: a database that is away
            # must not cost every request a connection attempt.
            self._last = time.monotonic()
            db = self._db if isinstance(self._db, Database) else self._db()
            with db.write() as s:
                share_services.api_heartbeat(s, self._host, availability_zone=self._zone, now=self._clock())
        except ShareflowError as error:  # a Conflict: another worker made the row first; next time
            LOG.warning("API heartbeat of %s not written: %s", self._host, error)
        finally:
            self._lock.release()

    # falcon middleware: before the request is handled
    def process_request(self, req, resp) -> None:
        self.beat()
