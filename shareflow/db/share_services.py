"""Share services ``host@backend`` (Manila's ``services`` table): the
heartbeat their conductors write with each report, and an admin's disable."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import Service
from shareflow.exceptions import NotFound

#: Manila's ``manila-share``: the binary of a share service row.
SHARE_BINARY = "shareflow-share"


def heartbeat(session: Session, host: str, *, availability_zone: str | None, now: datetime) -> Service:
    """The service's conductors are alive now (made on its first report)."""
    row = session.get(Service, host)
    if row is None:
        row = Service(host=host, binary=SHARE_BINARY, disabled=False, created_at=now)
        session.add(row)
    row.availability_zone = availability_zone
    row.updated_at = now
    session.flush()
    return row


def get(session: Session, host: str) -> Service | None:
    return session.get(Service, host)


def list_(session: Session) -> list[Service]:
    return list(session.scalars(sa.select(Service).order_by(Service.host)))


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
    return set(session.scalars(sa.select(Service.host).where(Service.disabled.is_(True))))
