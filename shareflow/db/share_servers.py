"""Queries on share servers and on which shares use them.

A share uses a server when its ``share_server_id`` names it and the share is
live (not soft-deleted): the server helper sets that binding when it provides
the server to a share being created (under the share network's lock, as Manila
does, so that a server about to get a share cannot be deleted meanwhile), and
every "is this server still used" question counts those shares.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import NetworkAllocation, ProviderNetwork, Share, ShareNetwork, ShareServer
from shareflow.db.transitions import transition
from shareflow.domain import states
from shareflow.exceptions import NotFound

#: A server in these statuses may be deleted (Manila's share server delete).
DELETABLE = (states.ERROR, states.SERVER_ACTIVE)


def not_found(server_id: str) -> NotFound:
    """Manila's ShareServerNotFound."""
    return NotFound(f"Share server {server_id} could not be found.")


def get(session: Session, server_id: str) -> ShareServer:
    row = session.get(ShareServer, server_id) if isinstance(server_id, str) else None
    if row is None or row.deleted_at is not None:
        raise not_found(server_id)
    return row


def get_any(session: Session, server_id: str) -> ShareServer | None:
    """Including deleted rows."""
    return session.get(ShareServer, server_id) if isinstance(server_id, str) else None


def create(session: Session, *, now: datetime, **fields) -> ShareServer:
    row = ShareServer(created_at=now, status=states.CREATING, **fields)
    session.add(row)
    session.flush()
    return row


def find(session: Session, share_network_id: str, backend: str, statuses) -> ShareServer | None:
    """The oldest live server of the share network on the backend in one of ``statuses``."""
    q = (
        sa.select(ShareServer)
        .where(ShareServer.share_network_id == share_network_id, ShareServer.backend == backend,
               ShareServer.status.in_(sorted(statuses)), ShareServer.deleted_at.is_(None))
        .order_by(ShareServer.created_at, ShareServer.id)
    )
    return session.scalars(q).first()


def set_status(session: Session, server_id: str, target: str, *, now: datetime, expected=None,
               **values) -> bool:
    return transition(session, ShareServer, server_id, states.SHARE_SERVER, target, now=now,
                      expected=expected, values=values)


def override_status(session: Session, server_id: str, status: str, *, now: datetime, expected: str) -> bool:
    """An admin's reset_status: any status from the one the request read."""
    stmt = (
        sa.update(ShareServer)
        .where(ShareServer.id == server_id, ShareServer.status == expected, ShareServer.deleted_at.is_(None))
        .values(status=status, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def mark_deleted(session: Session, server_id: str, *, now: datetime) -> bool:
    """deleting (or creating, for a create undone) -> deleted; the row stays."""
    return set_status(session, server_id, states.DELETED, now=now, deleted_at=now)


def shares_using(session: Session, server_id: str, *, excluding: str | None = None) -> int:
    q = sa.select(sa.func.count()).select_from(Share).where(
        Share.share_server_id == server_id, Share.deleted_at.is_(None)
    )
    if excluding is not None:
        q = q.where(Share.id != excluding)
    return int(session.scalar(q))


def bind_share(session: Session, share_id: str, server_id: str, *, now: datetime) -> None:
    """The share is exported from the server from now on; the server is in use."""
    session.execute(
        sa.update(Share).where(Share.id == share_id).values(share_server_id=server_id)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        sa.update(ShareServer).where(ShareServer.id == server_id).values(unused_since=None)
        .execution_options(synchronize_session=False)
    )


def unbind_share(session: Session, share_id: str, server_ids) -> None:
    """The share no longer uses any of ``server_ids`` (whichever it names)."""
    ids = [i for i in server_ids if i]
    if ids:
        session.execute(
            sa.update(Share).where(Share.id == share_id, Share.share_server_id.in_(ids))
            .values(share_server_id=None).execution_options(synchronize_session=False)
        )


def note_unused(session: Session, server_id: str, *, now: datetime) -> None:
    """Start the server's unused clock, unless it is already running."""
    session.execute(
        sa.update(ShareServer)
        .where(ShareServer.id == server_id, ShareServer.unused_since.is_(None))
        .values(unused_since=now).execution_options(synchronize_session=False)
    )


def keep(session: Session, server_id: str) -> None:
    """The server is about to get a share: stop its unused clock."""
    session.execute(
        sa.update(ShareServer).where(ShareServer.id == server_id).values(unused_since=None)
        .execution_options(synchronize_session=False)
    )


def _unused():
    return ~sa.exists().where(Share.share_server_id == ShareServer.id, Share.deleted_at.is_(None))


def start_unused_clocks(session: Session, backend: str, *, now: datetime) -> int:
    """Servers of the backend that no share uses and whose unused clock is not
    running get it started now (a create that had reserved a server and then
    failed before using it leaves one so)."""
    stmt = (
        sa.update(ShareServer)
        .where(ShareServer.backend == backend, ShareServer.deleted_at.is_(None),
               ShareServer.unused_since.is_(None), ShareServer.status.in_(DELETABLE), _unused())
        .values(unused_since=now).execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount


def unused_deletable(session: Session, backend: str, *, unused_before: datetime) -> list[ShareServer]:
    """Manila's ``share_server_get_all_unused_deletable``: auto-deletable
    servers of the backend, no share on them, unused since before the cut-off."""
    q = (
        sa.select(ShareServer)
        .where(ShareServer.backend == backend, ShareServer.deleted_at.is_(None),
               ShareServer.is_auto_deletable.is_(True), ShareServer.status.in_(DELETABLE),
               ShareServer.unused_since.is_not(None), ShareServer.unused_since < unused_before, _unused())
        .order_by(ShareServer.unused_since)
    )
    return list(session.scalars(q))


def live_for_backend(session: Session, backend: str, statuses=None) -> list[ShareServer]:
    q = sa.select(ShareServer).where(ShareServer.backend == backend, ShareServer.deleted_at.is_(None))
    if statuses is not None:
        q = q.where(ShareServer.status.in_(sorted(statuses)))
    return list(session.scalars(q.order_by(ShareServer.created_at, ShareServer.id)))


def live_with_networks(session: Session, backend: str,
                       statuses=None) -> list[tuple[ShareServer, ProviderNetwork | None]]:
    """:func:`live_for_backend` with each server's provider network (None when
    its allocation is gone), in one query: what the conductor pool's
    supervision asks for every server at every check."""
    q = (
        sa.select(ShareServer, ProviderNetwork)
        .outerjoin(NetworkAllocation, NetworkAllocation.id == ShareServer.allocation_id)
        .outerjoin(ProviderNetwork, ProviderNetwork.id == NetworkAllocation.network_id)
        .where(ShareServer.backend == backend, ShareServer.deleted_at.is_(None))
    )
    if statuses is not None:
        q = q.where(ShareServer.status.in_(sorted(statuses)))
    return [(row, net) for row, net in session.execute(q.order_by(ShareServer.created_at, ShareServer.id))]


#: Filters of the admin list (Manila's share_server_get_all_with_filters) -> columns.
COLUMN_FILTERS = {"id", "host", "status", "is_auto_deletable", "share_network_subnet_id", "project_id",
                  "share_network_id"}


def list_(session: Session, filters: dict) -> list[ShareServer]:
    q = sa.select(ShareServer).where(ShareServer.deleted_at.is_(None))
    for key, value in filters.items():
        if key == "share_network":
            q = q.where(ShareServer.share_network_id.in_(
                sa.select(ShareNetwork.id).where(sa.or_(ShareNetwork.id == value, ShareNetwork.name == value))
            ))
        else:
            q = q.where(getattr(ShareServer, key) == value)
    return list(session.scalars(q.order_by(ShareServer.created_at.desc(), ShareServer.id)))


def share_network_name(session: Session, row: ShareServer) -> str:
    """Manila's ``share_network_name``: the network's name, else its id."""
    sn = session.get(ShareNetwork, row.share_network_id)
    if sn is None:
        return ""
    return sn.name or sn.id
