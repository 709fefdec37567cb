"""Queries on provider networks (with their allocation ranges and network
allocations), share networks and their subnets.

Provider networks, share networks and subnets are soft deleted (``deleted_at``),
like shares. Network allocations are deleted for real: the unique constraint
(network_id, address) is what keeps an address from being handed out twice,
so a released address must free its row.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db import listing
from shareflow.db.models import (
    AllocationRange,
    NetworkAllocation,
    ProviderNetwork,
    Share,
    ShareNetwork,
    ShareNetworkSubnet,
    ShareServer,
)
from shareflow.exceptions import Conflict, NotFound

# --- provider networks -----------------------------------------------------


def provider_not_found(ref: str) -> NotFound:
    return NotFound(f"Provider network {ref} could not be found.")


def get_provider(session: Session, network_id: str) -> ProviderNetwork:
    net = session.get(ProviderNetwork, network_id) if isinstance(network_id, str) else None
    if net is None or net.deleted_at is not None:
        raise provider_not_found(network_id)
    return net


def get_provider_any(session: Session, network_id: str) -> ProviderNetwork | None:
    """Including deleted rows (a job finishing after the fact)."""
    return session.get(ProviderNetwork, network_id)


def provider_by_name(session: Session, name: str) -> ProviderNetwork | None:
    q = sa.select(ProviderNetwork).where(ProviderNetwork.name == name, ProviderNetwork.deleted_at.is_(None))
    return session.scalars(q.order_by(ProviderNetwork.created_at)).first()


def get_provider_by_ref(session: Session, ref: str) -> ProviderNetwork:
    """By id, else by name."""
    if not isinstance(ref, str):
        raise provider_not_found(str(ref))
    net = session.get(ProviderNetwork, ref)
    if net is not None and net.deleted_at is None:
        return net
    net = provider_by_name(session, ref)
    if net is None:
        raise provider_not_found(ref)
    return net


def provider_by_subnet(session: Session, subnet_id: str) -> ProviderNetwork | None:
    q = sa.select(ProviderNetwork).where(
        ProviderNetwork.subnet_id == subnet_id, ProviderNetwork.deleted_at.is_(None)
    )
    return session.scalars(q).first()


def list_providers(session: Session) -> list[ProviderNetwork]:
    q = sa.select(ProviderNetwork).where(ProviderNetwork.deleted_at.is_(None))
    return list(session.scalars(q.order_by(ProviderNetwork.name, ProviderNetwork.created_at)))


#: pg_advisory_xact_lock key serialising provider network creates (a stable signed 64-bit value).
REGISTRY_LOCK_KEY = int.from_bytes(b"sf-provn", "big", signed=True)


def lock_registry(session: Session) -> None:
    """Serialise provider network creates until this transaction ends, so the
    unique-name and overlapping-CIDR checks cannot both pass for two at once.
    SQLite write transactions are serial already (``BEGIN IMMEDIATE``); on
    PostgreSQL (READ COMMITTED) a transaction-scoped advisory lock does it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(REGISTRY_LOCK_KEY)))


def create_provider(
    session: Session, *, now: datetime, network_id: str, subnet_id: str, name: str, bridge: str,
    cidr: str, gateway: str | None, mtu: int, ranges: list[tuple[str, str]],
) -> ProviderNetwork:
    if provider_by_name(session, name) is not None:
        raise Conflict(f"Provider network {name} already exists.")
    net = ProviderNetwork(
        id=network_id, subnet_id=subnet_id, name=name, bridge=bridge, cidr=cidr, gateway=gateway,
        mtu=mtu, created_at=now,
    )
    net.ranges = [AllocationRange(first=a, last=b) for a, b in ranges]
    session.add(net)
    session.flush()
    return net


def provider_usage(session: Session, network_id: str) -> tuple[int, int]:
    """(allocations, subnets of live share networks) on the provider network."""
    allocations = session.scalar(
        sa.select(sa.func.count()).select_from(NetworkAllocation).where(
            NetworkAllocation.network_id == network_id
        )
    )
    subnets = session.scalar(
        sa.select(sa.func.count())
        .select_from(ShareNetworkSubnet)
        .join(ShareNetwork, ShareNetwork.id == ShareNetworkSubnet.share_network_id)
        .where(
            ShareNetworkSubnet.provider_network_id == network_id,
            ShareNetworkSubnet.deleted_at.is_(None),
            ShareNetwork.deleted_at.is_(None),
        )
    )
    return int(allocations), int(subnets)


def provider_in_use(session: Session, network_id: str) -> bool:
    return any(provider_usage(session, network_id))


def lock_provider(session: Session, network_id: str) -> bool:
    """Take the provider network row's write lock for the rest of the
    transaction (a no-op update); whether it is still live. A delete and a
    new subnet on it are serialised by this lock."""
    stmt = (
        sa.update(ProviderNetwork)
        .where(ProviderNetwork.id == network_id, ProviderNetwork.deleted_at.is_(None))
        .values(mtu=ProviderNetwork.mtu)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def delete_provider(session: Session, network_id: str, *, now: datetime) -> bool:
    stmt = (
        sa.update(ProviderNetwork)
        .where(ProviderNetwork.id == network_id, ProviderNetwork.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


# --- network allocations ---------------------------------------------------


def used_addresses(session: Session, network_id: str) -> list[str]:
    q = sa.select(NetworkAllocation.address).where(NetworkAllocation.network_id == network_id)
    return list(session.scalars(q))


def get_allocation(session: Session, allocation_id: str) -> NetworkAllocation | None:
    return session.get(NetworkAllocation, allocation_id)


def insert_allocation(session: Session, *, now: datetime, allocation_id: str, network_id: str,
                      address: str, share_server_id: str | None = None) -> NetworkAllocation:
    """Raises Conflict (at flush) when the address is already taken."""
    row = NetworkAllocation(id=allocation_id, network_id=network_id, address=address,
                            share_server_id=share_server_id, created_at=now)
    session.add(row)
    session.flush()
    return row


def bind_allocation(session: Session, allocation_id: str, server_id: str) -> bool:
    """Record the share server that holds the allocation; whether it exists."""
    stmt = (
        sa.update(NetworkAllocation)
        .where(NetworkAllocation.id == allocation_id)
        .values(share_server_id=server_id)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def delete_allocation(session: Session, allocation_id: str) -> bool:
    stmt = sa.delete(NetworkAllocation).where(NetworkAllocation.id == allocation_id)
    return session.execute(stmt.execution_options(synchronize_session=False)).rowcount == 1


def allocations_for_server(session: Session, server_id: str) -> list[NetworkAllocation]:
    q = sa.select(NetworkAllocation).where(NetworkAllocation.share_server_id == server_id)
    return list(session.scalars(q.order_by(NetworkAllocation.created_at)))


def list_allocations(session: Session, network_id: str) -> list[NetworkAllocation]:
    q = sa.select(NetworkAllocation).where(NetworkAllocation.network_id == network_id)
    return list(session.scalars(q.order_by(NetworkAllocation.created_at, NetworkAllocation.id)))


# --- share networks and subnets --------------------------------------------


def share_network_not_found(share_network_id: str) -> NotFound:
    """Manila's ShareNetworkNotFound."""
    return NotFound(f"Share network {share_network_id} could not be found.")


def get_share_network(session: Session, share_network_id: str,
                      project_id: str | None = None) -> ShareNetwork:
    """The live share network, seen by ``project_id`` (None = admin: any project)."""
    sn = session.get(ShareNetwork, share_network_id) if isinstance(share_network_id, str) else None
    if sn is None or sn.deleted_at is not None or (
        project_id is not None and sn.project_id != project_id
    ):
        raise share_network_not_found(share_network_id)
    return sn


def get_share_network_any(session: Session, share_network_id: str) -> ShareNetwork | None:
    return session.get(ShareNetwork, share_network_id)


def list_share_networks(
    session: Session, project_id: str | None, *, filters: dict | None = None,
    sort_key: str = "created_at", sort_dir: str = "desc", limit: int | None = None, offset: int = 0,
) -> list[ShareNetwork]:
    q = sa.select(ShareNetwork).where(ShareNetwork.deleted_at.is_(None))
    if project_id is not None:
        q = q.where(ShareNetwork.project_id == project_id)
    for key, value in (filters or {}).items():
        if key == "created_since":
            q = q.where(ShareNetwork.created_at > value)
        elif key == "created_before":
            q = q.where(ShareNetwork.created_at < value)
        elif key in ("neutron_net_id", "neutron_subnet_id", "network_type", "segmentation_id",
                     "cidr", "ip_version"):
            q = q.where(ShareNetwork.subnets.any(_subnet_filter(key, value)))
        else:
            q = q.where(listing.where(ShareNetwork, key, value))
    return listing.page(session, q, ShareNetwork, sort_key=sort_key, sort_dir=sort_dir, limit=limit, offset=offset)


def _subnet_filter(key: str, value):
    live = ShareNetworkSubnet.deleted_at.is_(None)
    pn = ShareNetworkSubnet.provider_network
    if key == "neutron_net_id":
        return sa.and_(live, sa.or_(ShareNetworkSubnet.neutron_net_id == value, sa.and_(
            ShareNetworkSubnet.neutron_net_id.is_(None), ShareNetworkSubnet.provider_network_id == value)))
    if key == "neutron_subnet_id":
        return sa.and_(live, sa.or_(ShareNetworkSubnet.neutron_subnet_id == value, sa.and_(
            ShareNetworkSubnet.neutron_net_id.is_(None), pn.has(ProviderNetwork.subnet_id == value))))
    if key == "cidr":
        return sa.and_(live, pn.has(ProviderNetwork.cidr == value))
    if key == "network_type":
        return sa.and_(live, sa.literal(value == "flat"), ShareNetworkSubnet.provider_network_id.is_not(None))
    if key == "ip_version":
        return sa.and_(live, sa.literal(str(value) == "4"), ShareNetworkSubnet.provider_network_id.is_not(None))
    # segmentation_id: flat networks have none.
    return sa.false()


def create_share_network(session: Session, *, now: datetime, share_network_id: str, subnet_id: str,
                         project_id: str, user_id: str | None, name: str | None,
                         description: str | None, provider_network_id: str | None,
                         availability_zone: str | None = None, neutron_net_id: str | None = None,
                         neutron_subnet_id: str | None = None) -> ShareNetwork:
    sn = ShareNetwork(id=share_network_id, project_id=project_id, user_id=user_id, name=name,
                      description=description, created_at=now)
    session.add(sn)
    session.flush()
    session.add(ShareNetworkSubnet(id=subnet_id, share_network_id=sn.id,
                                   provider_network_id=provider_network_id,
                                   neutron_net_id=neutron_net_id, neutron_subnet_id=neutron_subnet_id,
                                   availability_zone=availability_zone, created_at=now))
    session.flush()
    session.refresh(sn)
    return sn


def default_subnet(sn: ShareNetwork) -> ShareNetworkSubnet | None:
    """The subnet the share network's share servers are on.

    A deployment has one availability zone, so a subnet made for a zone is
    made for that one, and wins over the default subnet (the one without a
    zone), as Manila picks a share's subnet by its zone and falls back to the
    default (``share_network_subnets_get_all_by_availability_zone_id``).
    None when the share network has no subnet.
    """
    zoned = [sub for sub in sn.subnets if sub.availability_zone is not None]
    if zoned:
        return zoned[0]
    return sn.subnets[0] if sn.subnets else None


def subnet_in_zone(sn: ShareNetwork, zone: str | None) -> ShareNetworkSubnet | None:
    """The live subnet for exactly this zone (None: the default subnet), if any."""
    for sub in sn.subnets:
        if sub.availability_zone == zone:
            return sub
    return None


def neutron_ids(sub: ShareNetworkSubnet | None) -> tuple[str | None, str | None]:
    """The subnet's ``neutron_net_id`` and ``neutron_subnet_id`` as the client
    gave them; for a row older than migration 0011, its provider network's."""
    if sub is None:
        return None, None
    if sub.neutron_net_id is not None:
        return sub.neutron_net_id, sub.neutron_subnet_id
    net = sub.provider_network
    return (net.id, net.subnet_id) if net is not None else (None, None)


def create_subnet(session: Session, *, now: datetime, subnet_id: str, share_network_id: str,
                  provider_network_id: str | None, availability_zone: str | None,
                  neutron_net_id: str | None = None, neutron_subnet_id: str | None = None) -> ShareNetworkSubnet:
    sub = ShareNetworkSubnet(id=subnet_id, share_network_id=share_network_id,
                             provider_network_id=provider_network_id,
                             neutron_net_id=neutron_net_id, neutron_subnet_id=neutron_subnet_id,
                             availability_zone=availability_zone, created_at=now)
    session.add(sub)
    session.flush()
    session.refresh(sub)
    return sub


def subnet_usage(session: Session, subnet_id: str) -> tuple[int, int]:
    """(live shares on its servers, live share servers) of a subnet."""
    servers = sa.select(ShareServer.id).where(
        ShareServer.share_network_subnet_id == subnet_id, ShareServer.deleted_at.is_(None)
    )
    n_servers = session.scalar(sa.select(sa.func.count()).select_from(servers.subquery()))
    n_shares = session.scalar(
        sa.select(sa.func.count()).select_from(Share).where(
            Share.share_server_id.in_(servers), Share.deleted_at.is_(None)
        )
    )
    return int(n_shares), int(n_servers)


def delete_subnet(session: Session, subnet_id: str, *, now: datetime) -> bool:
    stmt = (
        sa.update(ShareNetworkSubnet)
        .where(ShareNetworkSubnet.id == subnet_id, ShareNetworkSubnet.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def get_subnet(session: Session, share_network_id: str, subnet_id: str) -> ShareNetworkSubnet:
    sub = session.get(ShareNetworkSubnet, subnet_id) if isinstance(subnet_id, str) else None
    if sub is None or sub.deleted_at is not None or sub.share_network_id != share_network_id:
        raise NotFound(f"Share network subnet {subnet_id} could not be found.")
    return sub


def get_subnet_any(session: Session, subnet_id: str) -> ShareNetworkSubnet | None:
    return session.get(ShareNetworkSubnet, subnet_id)


def share_network_usage(session: Session, share_network_id: str) -> tuple[int, int]:
    """(live shares, live share servers) on the share network."""
    shares = session.scalar(
        sa.select(sa.func.count()).select_from(Share).where(
            Share.share_network_id == share_network_id, Share.deleted_at.is_(None)
        )
    )
    servers = session.scalar(
        sa.select(sa.func.count()).select_from(ShareServer).where(
            ShareServer.share_network_id == share_network_id, ShareServer.deleted_at.is_(None)
        )
    )
    return int(shares), int(servers)


def share_network_in_use(session: Session, share_network_id: str) -> bool:
    return any(share_network_usage(session, share_network_id))


def subnet_in_use(session: Session, subnet_id: str) -> bool:
    """Live share servers on the subnet (Manila: a subnet with servers cannot be deleted)."""
    n = session.scalar(
        sa.select(sa.func.count()).select_from(ShareServer).where(
            ShareServer.share_network_subnet_id == subnet_id, ShareServer.deleted_at.is_(None)
        )
    )
    return int(n) > 0


def lock_share_network(session: Session, share_network_id: str) -> bool:
    """Take the share network row's write lock for the rest of the transaction
    (a no-op update); whether it is still live. A delete of the share network
    and a share or server created on it are serialised by this lock."""
    stmt = (
        sa.update(ShareNetwork)
        .where(ShareNetwork.id == share_network_id, ShareNetwork.deleted_at.is_(None))
        .values(project_id=ShareNetwork.project_id)
        .execution_options(synchronize_session=False)
    )
    return session.execute(stmt).rowcount == 1


def update_share_network(session: Session, sn: ShareNetwork, *, now: datetime, **fields) -> ShareNetwork:
    for k, v in fields.items():
        setattr(sn, k, v)
    sn.updated_at = now
    session.flush()
    return sn


def set_subnet_provider(session: Session, sub: ShareNetworkSubnet, provider_network_id: str | None,
                        *, now: datetime, neutron_net_id: str | None = None,
                        neutron_subnet_id: str | None = None) -> None:
    sub.provider_network_id = provider_network_id
    sub.neutron_net_id = neutron_net_id
    sub.neutron_subnet_id = neutron_subnet_id
    sub.updated_at = now
    session.flush()
    session.refresh(sub)


def delete_share_network(session: Session, share_network_id: str, *, now: datetime) -> bool:
    """Soft delete the share network and its subnets."""
    stmt = (
        sa.update(ShareNetwork)
        .where(ShareNetwork.id == share_network_id, ShareNetwork.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if session.execute(stmt).rowcount != 1:
        return False
    session.execute(
        sa.update(ShareNetworkSubnet)
        .where(ShareNetworkSubnet.share_network_id == share_network_id,
               ShareNetworkSubnet.deleted_at.is_(None))
        .values(deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return True
