"""Availability zones (manila/api/v2/availability_zones.py).

The service has one availability zone: configuration's ``availability_zone``
(default ``nova``, Manila's ``storage_availability_zone`` default), where
every backend it runs lives; listed once a share service has reported. Its id is derived from its name (a UUID5, the
same in every process and across restarts). There is no table of zones to
hold a creation time, so its ``created_at`` is when the service was set up:
its first share type or its first share in the zone, whichever came first.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from shareflow.config import Config
from shareflow.db.engine import Database
from shareflow.db.models import Service, Share, ShareType
from shareflow.exceptions import NotFound

#: Namespace of zone ids: uuid5(NAMESPACE, name).
NAMESPACE = uuid.UUID("5b0d6a53-55f4-4bde-8a55-3c8d3e3a7a0f")


@dataclass(frozen=True)
class AvailabilityZone:
    id: str
    name: str
    created_at: datetime
    updated_at: datetime | None = None


def zone_id(name: str) -> str:
    return str(uuid.uuid5(NAMESPACE, name))


def resolve(config: Config, ref: str | None) -> str:
    """The zone a share asked for (by name or id; None: the service's own),
    as its name; an unknown zone is Manila's 404."""
    name = config.availability_zone
    if ref is None or ref in (name, zone_id(name)):
        return name
    raise NotFound(f"no availability zone {ref!r}", user_message=f"Availability zone {ref} could not be found.")


class AvailabilityZoneService:
    def __init__(self, config: Config, db: Database, *, clock: Callable[[], datetime]):
        self._config = config
        self._db = db
        self._clock = clock

    def list(self) -> list[AvailabilityZone]:
        # The zone exists once a share service in it has reported (an API
        # node has no backends of its own to tell).
        name = self._config.availability_zone
        with self._db.read() as s:
            if not s.scalar(sa.select(sa.func.count()).select_from(Service)):
                return []
            firsts = [
                s.scalar(sa.select(sa.func.min(ShareType.created_at))),
                s.scalar(sa.select(sa.func.min(Share.created_at)).where(Share.availability_zone == name)),
            ]
        created = min((t for t in firsts if t is not None), default=None) or self._clock()
        return [AvailabilityZone(id=zone_id(name), name=name, created_at=created)]
