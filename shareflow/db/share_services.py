"""Manila's ``services`` table: share services ``host@backend`` (the
heartbeat their conductors write with each report, and an admin's disable)
and API nodes ``host`` (the heartbeat their API processes write). The key is
the host alone: a share service's always has ``@``, an API node's never
(configuration host names have none)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import Service
from shareflow.exceptions import NotFound

#: The binary of a share service row: Manila's own name, which its clients and
#: upstream tests look for in ``GET /services`` (migration 0010).
SHARE_BINARY = "manila-share"
#: An API node's row.
API_BINARY = "manila-api"


def heartbeat(session: Session, host: str, *, availability_zone: str | None, now: datetime) -> Service:
    """The service's conductors are alive now (made on its first report)."""
    row = session.get(Service, host)
    if row is None:
        row = Service(host=host, binary=SHARE_BINARY, disabled=False, created_at=now)
        session.add(row)
    if availability_zone is not None:
        row.availability_zone = availability_zone
    row.updated_at = now
    session.flush()
    return row


def api_heartbeat(session: Session, host: str, *, availability_zone: str, now: datetime) -> None:
    """An API process of node ``host`` is serving now (made on the first)."""
    row = session.get(Service, host)
    if row is None:
        session.add(Service(host=host, binary=API_BINARY, availability_zone=availability_zone, disabled=False,
                            created_at=now, updated_at=now))
    elif row.binary == API_BINARY:
        row.availability_zone = availability_zone
        row.updated_at = now
    session.flush()


def get(session: Session, host: str) -> Service | None:
    return session.get(Service, host)


def list_(session: Session, *, binary: str = SHARE_BINARY) -> list[Service]:
    """The rows of one binary (share services unless told)."""
    return list(session.scalars(sa.select(Service).where(Service.binary == binary).order_by(Service.host)))


def set_disabled(session: Session, host: str, disabled: bool, *, reason: str | None, now: datetime) -> Service:
    """An admin's ``backend disable|enable``; NotFound for a service that never reported."""
    row = session.get(Service, host, with_for_update=True)
    if row is None:
        raise NotFound(f"no share service {host!r}", user_message=f"No backend {host} has reported.")
    row.disabled = disabled
    row.disabled_reason = reason if disabled else None
    session.flush()
    return row


def disabled_hosts(session: Session) -> set[str]:
    return set(session.scalars(sa.select(Service.host).where(Service.binary == SHARE_BINARY,
                                                             Service.disabled.is_(True))))
