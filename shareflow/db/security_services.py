"""Queries on security services and their association with share networks.

An association counts only while its share network is live: a deleted share
network no longer holds its security services (Manila's
``share_network_get_all_by_security_service`` sees live ones only).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import SecurityService, ShareNetwork, ShareNetworkSecurityService, ShareServer
from shareflow.exceptions import NotFound

A = ShareNetworkSecurityService


def not_found(security_service_id) -> NotFound:
    """Manila's SecurityServiceNotFound."""
    return NotFound(f"Security service {security_service_id} could not be found.")


def get(session: Session, security_service_id) -> SecurityService:
    """The live security service, of any project (the caller decides who may see it)."""
    row = session.get(SecurityService, security_service_id) if isinstance(security_service_id, str) else None
    if row is None or row.deleted_at is not None:
        raise not_found(security_service_id)
    return row


def list_all(session: Session, project_id: str | None) -> list[SecurityService]:
    """Live security services of ``project_id`` (None: every project), oldest first."""
    q = sa.select(SecurityService).where(SecurityService.deleted_at.is_(None))
    if project_id is not None:
        q = q.where(SecurityService.project_id == project_id)
    return list(session.scalars(q.order_by(SecurityService.created_at, SecurityService.id)))


def create(session: Session, **values) -> SecurityService:
    row = SecurityService(**values)
    session.add(row)
    session.flush()
    return row


def update(session: Session, row: SecurityService, *, now: datetime, **fields) -> SecurityService:
    for key, value in fields.items():
        setattr(row, key, value)
    row.updated_at = now
    session.flush()
    return row


def delete(session: Session, security_service_id: str, *, now: datetime) -> bool:
    stmt = (
        sa.update(SecurityService)
        .where(SecurityService.id == security_service_id, SecurityService.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def _live_network(q):
    return q.join(ShareNetwork, ShareNetwork.id == A.share_network_id).where(ShareNetwork.deleted_at.is_(None))


def of_share_network(session: Session, share_network_id: str) -> list[SecurityService]:
    """The live security services added to a share network, in the order added."""
    q = (
        sa.select(SecurityService)
        .join(A, A.security_service_id == SecurityService.id)
        .where(A.share_network_id == share_network_id, SecurityService.deleted_at.is_(None))
        .order_by(A.created_at, SecurityService.id)
    )
    return list(session.scalars(q))


def share_networks_of(session: Session, security_service_id: str) -> list[str]:
    """Ids of the live share networks the security service is added to."""
    q = _live_network(sa.select(A.share_network_id)).where(A.security_service_id == security_service_id)
    return list(session.scalars(q.order_by(A.created_at, A.share_network_id)))


def share_networks_by_service(session: Session, ids: list[str]) -> dict[str, list[str]]:
    """``share_networks_of`` for many security services in one query."""
    found: dict[str, list[str]] = {i: [] for i in ids}
    if not ids:
        return found
    q = _live_network(sa.select(A.security_service_id, A.share_network_id)).where(
        A.security_service_id.in_(ids))
    for ss_id, sn_id in session.execute(q.order_by(A.created_at, A.share_network_id)):
        found[ss_id].append(sn_id)
    return found


def has_share_servers(session: Session, security_service_id: str) -> bool:
    """Whether a live share server is on a share network the service is added to."""
    q = (
        sa.select(sa.func.count()).select_from(ShareServer)
        .join(A, A.share_network_id == ShareServer.share_network_id)
        .where(A.security_service_id == security_service_id, ShareServer.deleted_at.is_(None))
    )
    return int(session.scalar(q)) > 0


def associated(session: Session, share_network_id: str, security_service_id: str) -> bool:
    return session.get(A, (share_network_id, security_service_id)) is not None


def associate(session: Session, share_network_id: str, security_service_id: str, *, now: datetime) -> None:
    session.add(A(share_network_id=share_network_id, security_service_id=security_service_id, created_at=now))
    session.flush()


def dissociate(session: Session, share_network_id: str, security_service_id: str) -> bool:
    stmt = sa.delete(A).where(A.share_network_id == share_network_id,
                              A.security_service_id == security_service_id)
    return session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1


def replace(session: Session, share_network_id: str, current_id: str, new_id: str, *, now: datetime) -> None:
    dissociate(session, share_network_id, current_id)
    associate(session, share_network_id, new_id, now=now)


def network_has_security_services(session: Session, share_network_id: str) -> list[str]:
    """The types of the live security services added to the share network."""
    return sorted({ss.type for ss in of_share_network(session, share_network_id)})
