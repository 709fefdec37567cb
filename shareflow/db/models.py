"""SQLAlchemy models of the domain tables.

TaskFlow's persistence tables (logbooks, flowdetails, atomdetails) live in the
same database but belong to TaskFlow and are created by its own migrations;
what shareflow adds to them is named here (:data:`ATOMDETAILS_UNIQUE_NAME`)
and made by migration 0017 and ``shareflow.db.migrate``.
Deleted rows are kept with ``deleted_at`` set (Manila's soft delete), so that a
job finishing after a delete can still find what it worked on.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UUID_LEN = 36

#: The unique index on TaskFlow's ``atomdetails (parent_uuid, name)``: one
#: atom detail per flow and atom name. TaskFlow's schema allows a second
#: (only ``uuid`` is a key), and a conductor that lost a job's claim but
#: did not know it yet could insert its own set of atom details into the
#: flow the conductor that took the job over had recorded - after which
#: which steps were done was ambiguous. With this index the later of the
#: two first writes fails as a whole (``shareflow.exceptions.FlowTakenOver``,
#: ``shareflow.engine.persistence``). TaskFlow never gives two atoms of one
#: flow the same name (its compiler refuses duplicate names).
ATOMDETAILS_UNIQUE_NAME = "uq_atomdetails_parent_uuid_name"


#: A share service ``host@backend`` where a bare backend name used to be
#: (migration 0008): 255 on PostgreSQL; SQLite does not enforce a VARCHAR's
#: length, and widening it there would rebuild ``shares``, whose drop
#: cascades to its children under foreign keys, so it keeps its old type.
SERVICE_KEY = String(64).with_variant(String(255), "postgresql")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


class ShareType(Timestamps, Base):
    __tablename__ = "share_types"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(String(255))
    is_public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    extra_specs: Mapped[list[ShareTypeExtraSpec]] = relationship(
        back_populates="share_type", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (Index("ix_share_types_name", "name"),)

    def specs(self) -> dict[str, str]:
        return {s.key: s.value for s in self.extra_specs}


class ShareTypeExtraSpec(Base):
    __tablename__ = "share_type_extra_specs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    share_type_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("share_types.id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(String(255), nullable=False)
    share_type: Mapped[ShareType] = relationship(back_populates="extra_specs")

    __table_args__ = (UniqueConstraint("share_type_id", "key", name="uq_share_type_extra_specs_key"),)


class ShareTypeProject(Base):
    """A project allowed to see and use a private share type (Manila's
    ``share_type_projects``, migration 0013). Rows are deleted outright when
    access is removed: nothing refers to them."""

    __tablename__ = "share_type_projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    share_type_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("share_types.id", ondelete="CASCADE"), nullable=False
    )
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)

    __table_args__ = (
        UniqueConstraint("share_type_id", "project_id", name="uq_share_type_projects_share_type_id"),
    )


class Share(Timestamps, Base):
    __tablename__ = "shares"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    share_proto: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    access_rules_status: Mapped[str] = mapped_column(String(32), nullable=False)
    share_type_id: Mapped[str | None] = mapped_column(String(UUID_LEN), ForeignKey("share_types.id"))
    #: ``host@backend#pool``; None until scheduled.
    host: Mapped[str | None] = mapped_column(String(255))
    #: ``host@backend``: the share service, whose board its jobs go to (0008).
    backend: Mapped[str | None] = mapped_column(SERVICE_KEY)
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    is_public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    snapshot_id: Mapped[str | None] = mapped_column(String(UUID_LEN))
    share_network_id: Mapped[str | None] = mapped_column(String(UUID_LEN))
    task_state: Mapped[str | None] = mapped_column(String(64))
    #: The share server it is exported from (DHSS=true backends only).
    share_server_id: Mapped[str | None] = mapped_column(String(UUID_LEN))
    #: The size an extend or shrink in progress asks for; counted by quotas
    #: (the larger of size and pending_size) until the job settles it.
    pending_size: Mapped[int | None] = mapped_column(Integer)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: The share group it was created in (0015); its pool is the group's.
    share_group_id: Mapped[str | None] = mapped_column(String(UUID_LEN))

    share_type: Mapped[ShareType | None] = relationship(lazy="selectin")
    export_locations: Mapped[list[ExportLocation]] = relationship(
        back_populates="share", cascade="all, delete-orphan", lazy="selectin",
        order_by="ExportLocation.created_at",
    )
    metadata_items: Mapped[list[ShareMetadata]] = relationship(
        back_populates="share", cascade="all, delete-orphan", lazy="selectin"
    )

    __table_args__ = (
        Index("ix_shares_project_id", "project_id"),
        Index("ix_shares_status", "status"),
        # List filters and orders clients use (migration 0006).
        Index("ix_shares_name", "name"),
        Index("ix_shares_project_id_deleted_at_created_at", "project_id", "deleted_at", "created_at"),
        Index("ix_shares_deleted_at_created_at", "deleted_at", "created_at"),
    )

    def metadata_dict(self) -> dict[str, str]:
        return {m.key: m.value for m in self.metadata_items}


class ShareSnapshot(Timestamps, Base):
    """A read-only point-in-time copy of a share."""

    __tablename__ = "share_snapshots"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    share_id: Mapped[str] = mapped_column(String(UUID_LEN), ForeignKey("shares.id"), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    #: The share's size when the snapshot was taken (Manila's size and share_size).
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    share_size: Mapped[int] = mapped_column(Integer, nullable=False)
    share_proto: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    #: Where the backend keeps it (admin-only in the API).
    provider_location: Mapped[str | None] = mapped_column(String(2048))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_share_snapshots_share_id", "share_id"),
        Index("ix_share_snapshots_project_id", "project_id"),
        Index("ix_share_snapshots_name", "name"),
    )


class ProviderNetwork(Timestamps, Base):
    """A flat network an operator offers to tenants: a Linux bridge on the
    storage hosts, one subnet (Manila's neutron_net_id / neutron_subnet_id
    name the network and that subnet), and the ranges share servers get
    addresses from."""

    __tablename__ = "provider_networks"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    subnet_id: Mapped[str] = mapped_column(String(UUID_LEN), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    bridge: Mapped[str] = mapped_column(String(15), nullable=False)
    cidr: Mapped[str] = mapped_column(String(64), nullable=False)
    gateway: Mapped[str | None] = mapped_column(String(64))
    mtu: Mapped[int] = mapped_column(Integer, nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    ranges: Mapped[list[AllocationRange]] = relationship(
        back_populates="network", cascade="all, delete-orphan", lazy="selectin",
        order_by="AllocationRange.id",
    )

    __table_args__ = (Index("ix_provider_networks_name", "name"),)


class AllocationRange(Base):
    """First and last address (inclusive) share servers may be given."""

    __tablename__ = "allocation_ranges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    network_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("provider_networks.id", ondelete="CASCADE"), nullable=False
    )
    first: Mapped[str] = mapped_column(String(64), nullable=False)
    last: Mapped[str] = mapped_column(String(64), nullable=False)
    network: Mapped[ProviderNetwork] = relationship(back_populates="ranges")


class NetworkAllocation(Base):
    """One address handed out on a provider network. The unique constraint is
    what makes an address impossible to hand out twice, even to concurrent
    creates in different processes."""

    __tablename__ = "network_allocations"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    network_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("provider_networks.id"), nullable=False
    )
    address: Mapped[str] = mapped_column(String(64), nullable=False)
    share_server_id: Mapped[str | None] = mapped_column(String(UUID_LEN))
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)

    __table_args__ = (UniqueConstraint("network_id", "address", name="uq_network_allocations_address"),)


class ShareNetwork(Timestamps, Base):
    """A tenant's network for its shares (Manila's share network)."""

    __tablename__ = "share_networks"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    subnets: Mapped[list[ShareNetworkSubnet]] = relationship(
        back_populates="share_network", lazy="selectin", order_by="ShareNetworkSubnet.created_at",
        primaryjoin="and_(ShareNetwork.id == ShareNetworkSubnet.share_network_id, "
                    "ShareNetworkSubnet.deleted_at.is_(None))",
    )

    __table_args__ = (Index("ix_share_networks_project_id", "project_id"),)


class ShareNetworkSubnet(Timestamps, Base):
    """Where a share network meets a provider network (Manila >= 2.51)."""

    __tablename__ = "share_network_subnets"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    share_network_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("share_networks.id"), nullable=False
    )
    provider_network_id: Mapped[str | None] = mapped_column(
        String(UUID_LEN), ForeignKey("provider_networks.id")
    )
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    #: The ids as the client gave them (migration 0011): they may name a
    #: provider network (then ``provider_network_id`` is set) or nothing known
    #: here, as Manila accepts any; None on older rows (then the provider's).
    neutron_net_id: Mapped[str | None] = mapped_column(String(255))
    neutron_subnet_id: Mapped[str | None] = mapped_column(String(255))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    share_network: Mapped[ShareNetwork] = relationship(back_populates="subnets")
    provider_network: Mapped[ProviderNetwork | None] = relationship(lazy="selectin")


class SecurityService(Timestamps, Base):
    """Manila's security service: how share servers of a share network would
    join an LDAP, Kerberos or Active Directory domain (stored and shown; no
    share server here can use one: see ShareServerManager.provide)."""

    __tablename__ = "security_services"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    dns_ip: Mapped[str | None] = mapped_column(String(64))
    ou: Mapped[str | None] = mapped_column(String(255))
    server: Mapped[str | None] = mapped_column(String(255))
    domain: Mapped[str | None] = mapped_column(String(255))
    user: Mapped[str | None] = mapped_column(String(255))
    password: Mapped[str | None] = mapped_column(String(255))
    default_ad_site: Mapped[str | None] = mapped_column(String(255))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_security_services_project_id", "project_id"),)


class ShareNetworkSecurityService(Base):
    """A security service added to a share network (at most one per type)."""

    __tablename__ = "share_network_security_services"

    # Named by hand: the convention's names pass PostgreSQL's 63 characters.
    share_network_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("share_networks.id", name="fk_sn_security_services_share_network_id"),
        primary_key=True,
    )
    security_service_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("security_services.id", name="fk_sn_security_services_security_service_id"),
        primary_key=True,
    )
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)

    __table_args__ = (
        Index("ix_sn_security_services_security_service_id", "security_service_id"),
    )


class ShareServer(Timestamps, Base):
    """An NFS server of one share network on one backend: a network namespace
    holding an allocated address and its own NFS-Ganesha."""

    __tablename__ = "share_servers"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    share_network_id: Mapped[str] = mapped_column(String(UUID_LEN), nullable=False)
    share_network_subnet_id: Mapped[str] = mapped_column(String(UUID_LEN), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    #: ``host@backend`` (migration 0008), like ``host``.
    backend: Mapped[str] = mapped_column(SERVICE_KEY, nullable=False)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    address: Mapped[str | None] = mapped_column(String(64))
    allocation_id: Mapped[str | None] = mapped_column(String(UUID_LEN))
    #: Deleted with its last share, or by the conductors once unused long enough.
    is_auto_deletable: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    #: When its last share went away (None while it serves shares).
    unused_since: Mapped[datetime | None] = mapped_column(DateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (Index("ix_share_servers_share_network_id", "share_network_id"),)


class Quota(Base):
    """A project's limit for one resource, where it differs from the default."""

    __tablename__ = "quotas"

    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    hard_limit: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)


class ShareMetadata(Base):
    __tablename__ = "share_metadata"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    share_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("shares.id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(String(1023), nullable=False)
    share: Mapped[Share] = relationship(back_populates="metadata_items")

    __table_args__ = (UniqueConstraint("share_id", "key", name="uq_share_metadata_key"),)


class ExportLocation(Base):
    __tablename__ = "export_locations"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    share_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("shares.id", ondelete="CASCADE"), nullable=False
    )
    path: Mapped[str] = mapped_column(String(2048), nullable=False)
    is_admin_only: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    preferred: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime | None] = mapped_column(DateTime)
    share: Mapped[Share] = relationship(back_populates="export_locations")

    __table_args__ = (Index("ix_export_locations_share_id", "share_id"),)


class AccessRule(Timestamps, Base):
    __tablename__ = "access_rules"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    share_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("shares.id", ondelete="CASCADE"), nullable=False
    )
    access_type: Mapped[str] = mapped_column(String(32), nullable=False)
    access_to: Mapped[str] = mapped_column(String(255), nullable=False)
    access_level: Mapped[str] = mapped_column(String(8), nullable=False)
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)

    metadata_items: Mapped[list[AccessRuleMetadata]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="AccessRuleMetadata.key"
    )

    __table_args__ = (Index("ix_access_rules_share_id", "share_id"),)

    def metadata_dict(self) -> dict[str, str]:
        return {m.key: m.value for m in self.metadata_items}


class AccessRuleMetadata(Base):
    __tablename__ = "access_rule_metadata"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    access_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("access_rules.id", ondelete="CASCADE"), nullable=False
    )
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(String(1023), nullable=False)

    __table_args__ = (UniqueConstraint("access_id", "key", name="uq_access_rule_metadata_key"),)


class Job(Timestamps, Base):
    """Our record of one jobboard job: what it works on and how it ended.

    The jobboard holds the job only while it is pending or running; this row
    stays, so that operators can inspect and resume work afterwards.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    board_job_id: Mapped[str | None] = mapped_column(String(UUID_LEN))
    #: The board it goes to: ``host@backend`` (a bare backend name: a job
    #: posted before migration 0008, on the legacy board of that name).
    backend: Mapped[str] = mapped_column(SERVICE_KEY, nullable=False)
    operation: Mapped[str] = mapped_column(String(64), nullable=False)
    resource_type: Mapped[str] = mapped_column(String(32), nullable=False)
    resource_id: Mapped[str] = mapped_column(String(UUID_LEN), nullable=False)
    project_id: Mapped[str | None] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(32), nullable=False)
    owner: Mapped[str | None] = mapped_column(String(255))
    logbook_id: Mapped[str] = mapped_column(String(UUID_LEN), nullable=False)
    flow_detail_id: Mapped[str] = mapped_column(String(UUID_LEN), nullable=False)
    failed_step: Mapped[str | None] = mapped_column(String(255))
    failure: Mapped[str | None] = mapped_column(Text)
    #: Set at each claim by a conductor (the last one's).
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    #: Who asked (with project_id and request_id).
    user_id: Mapped[str | None] = mapped_column(String(255))
    #: The job this one runs again (``jobs retry``).
    retry_of: Mapped[str | None] = mapped_column(String(UUID_LEN))
    #: 1 when first posted, one more at each ``jobs resume``; a conditional
    #: steering write checks it, so two operators cannot both win.
    attempt: Mapped[int] = mapped_column(Integer, nullable=False, default=1, server_default="1")
    #: The flow factory (import path) and its keyword arguments (JSON), and
    #: the store (JSON): enough to post the job again from this record.
    factory: Mapped[str | None] = mapped_column(String(255))
    factory_kwargs: Mapped[str | None] = mapped_column(Text)
    store: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_jobs_resource_id", "resource_id"),
        Index("ix_jobs_state", "state"),
        Index("ix_jobs_created_at", "created_at"),
        Index("ix_jobs_retry_of", "retry_of"),
    )


class JobAction(Base):
    """One steering action on a job (resume, retry, cancel): who, when, what."""

    __tablename__ = "job_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(UUID_LEN), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    user_id: Mapped[str | None] = mapped_column(String(255))
    project_id: Mapped[str | None] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)

    __table_args__ = (Index("ix_job_actions_job_id", "job_id"),)


class Message(Base):
    """A user message: what went wrong with an asynchronous request (Manila's /messages)."""

    __tablename__ = "messages"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    request_id: Mapped[str | None] = mapped_column(String(64))
    resource_type: Mapped[str] = mapped_column(String(32), nullable=False)
    resource_id: Mapped[str] = mapped_column(String(UUID_LEN), nullable=False)
    action_id: Mapped[str] = mapped_column(String(8), nullable=False)
    detail_id: Mapped[str] = mapped_column(String(8), nullable=False)
    message_level: Mapped[str] = mapped_column(String(16), nullable=False)
    user_message: Mapped[str] = mapped_column(String(1024), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)

    __table_args__ = (
        Index("ix_messages_project_id", "project_id"),
        Index("ix_messages_resource_id", "resource_id"),
    )


class Pool(Base):
    """One backend pool as its conductors last reported it: capacity and
    capabilities (migration 0008), the scheduler's only source."""

    __tablename__ = "pools"

    #: ``host@backend#pool``
    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    backend: Mapped[str] = mapped_column(String(64), nullable=False)
    pool: Mapped[str] = mapped_column(String(64), nullable=False)
    driver_handles_share_servers: Mapped[bool] = mapped_column(Boolean, nullable=False)
    total_capacity_gb: Mapped[int] = mapped_column(Integer, nullable=False)
    free_capacity_gb: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    #: What the driver reported it can do (JSON object, Manila's names).
    capabilities: Mapped[str | None] = mapped_column(Text)
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    #: The backend's position in its host's configuration (``first_fit``).
    config_order: Mapped[int] = mapped_column(Integer, nullable=False, default=0, server_default="0")
    #: The conductor pool's start-up ensure on this host (``shareflow backend
    #: show``): begun, finished (None while it runs), wall seconds, volumes
    #: in place, and what could not be brought back.
    ensure_started_at: Mapped[datetime | None] = mapped_column(DateTime)
    ensure_finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    ensure_seconds: Mapped[float | None] = mapped_column(Float)
    ensure_volumes: Mapped[int | None] = mapped_column(Integer)
    ensure_failures: Mapped[int | None] = mapped_column(Integer)


class QuotaUsage(Base):
    """What a project uses of one quota resource (Manila's ``quota_usages``).

    Kept by database triggers (migration 0005) on ``shares`` and
    ``share_snapshots``: every insert, update or delete of those rows changes
    the counter in the same statement's transaction, whichever code path wrote
    the row, so a quota check reads one row instead of counting the project's
    shares. ``reserved`` is Manila's column; nothing is ever merely reserved
    here (a request's usage is in use at once)."""

    __tablename__ = "quota_usages"

    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    resource: Mapped[str] = mapped_column(String(64), primary_key=True)
    in_use: Mapped[int] = mapped_column(Integer, nullable=False)
    reserved: Mapped[int] = mapped_column(Integer, nullable=False)


class PoolAllocation(Base):
    """Space promised to the live shares of one pool (Manila's
    ``allocated_capacity_gb``), kept by triggers on ``shares`` like
    :class:`QuotaUsage` (migrations 0005, 0008) so the scheduler never sums
    over the shares of a pool. Keyed by the shares' ``host``
    (``host@backend#pool``), so equally named backends of two hosts never
    share a counter."""

    __tablename__ = "pool_allocations"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    allocated_capacity_gb: Mapped[int] = mapped_column(Integer, nullable=False)


class Service(Base):
    """One share service ``host@backend`` (Manila's ``services``): whether an
    admin disabled it, and ``updated_at``, the heartbeat its conductors write
    with every report of its pools (migration 0008)."""

    __tablename__ = "services"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    binary: Mapped[str] = mapped_column(String(64), nullable=False)
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


# --- share groups (Manila's share group types, groups and group snapshots; 0015) ---

class ShareGroupType(Timestamps, Base):
    """A named set of share types a share group may hold, with group specs
    and Manila's public/private access (``share_group_types``)."""

    __tablename__ = "share_group_types"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    is_public: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    group_specs: Mapped[list[ShareGroupTypeSpec]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ShareGroupTypeSpec.id")
    share_types: Mapped[list[ShareGroupTypeShareType]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ShareGroupTypeShareType.id")

    __table_args__ = (Index("ix_share_group_types_name", "name"),)

    def specs(self) -> dict[str, str]:
        return {s.key: s.value for s in self.group_specs}

    def share_type_ids(self) -> list[str]:
        return [t.share_type_id for t in self.share_types]


class ShareGroupTypeSpec(Base):
    __tablename__ = "share_group_type_specs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    share_group_type_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("share_group_types.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(String(255), nullable=False)

    __table_args__ = (UniqueConstraint("share_group_type_id", "key", name="uq_share_group_type_specs_key"),)


class ShareGroupTypeShareType(Base):
    """A share type a group type admits (Manila's ``share_group_type_share_type_mappings``)."""

    __tablename__ = "share_group_type_share_types"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    share_group_type_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("share_group_types.id", ondelete="CASCADE"), nullable=False)
    share_type_id: Mapped[str] = mapped_column(String(UUID_LEN), ForeignKey("share_types.id"), nullable=False)


class ShareGroupTypeProject(Base):
    """A project allowed to see and use a private share group type."""

    __tablename__ = "share_group_type_projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    share_group_type_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("share_group_types.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)

    __table_args__ = (UniqueConstraint("share_group_type_id", "project_id",
                                       name="uq_share_group_type_projects_share_group_type_id"),)


class ShareGroup(Timestamps, Base):
    """Shares kept together on one pool (``host``), of the group's share types."""

    __tablename__ = "share_groups"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    share_group_type_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("share_group_types.id"), nullable=False)
    share_network_id: Mapped[str | None] = mapped_column(String(UUID_LEN))
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    #: ``host@backend#pool``: where every member share goes.
    host: Mapped[str | None] = mapped_column(String(255))
    #: ``host@backend``: the share service of that pool.
    backend: Mapped[str | None] = mapped_column(String(255))
    source_share_group_snapshot_id: Mapped[str | None] = mapped_column(String(UUID_LEN))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    share_types: Mapped[list[ShareGroupShareType]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ShareGroupShareType.id")

    __table_args__ = (Index("ix_share_groups_project_id", "project_id"),)

    def share_type_ids(self) -> list[str]:
        return [t.share_type_id for t in self.share_types]


class ShareGroupShareType(Base):
    __tablename__ = "share_group_share_types"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    share_group_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("share_groups.id", ondelete="CASCADE"), nullable=False)
    share_type_id: Mapped[str] = mapped_column(String(UUID_LEN), ForeignKey("share_types.id"), nullable=False)


class ShareGroupSnapshot(Timestamps, Base):
    """A snapshot of every share of a group, taken together by one job."""

    __tablename__ = "share_group_snapshots"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str | None] = mapped_column(String(255))
    share_group_id: Mapped[str] = mapped_column(String(UUID_LEN), ForeignKey("share_groups.id"), nullable=False)
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime)
    members: Mapped[list[ShareGroupSnapshotMember]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="ShareGroupSnapshotMember.created_at")


class ShareGroupSnapshotMember(Timestamps, Base):
    """One member share's snapshot in a group snapshot (not a share snapshot:
    Manila lists these only under their group snapshot)."""

    __tablename__ = "share_group_snapshot_members"

    id: Mapped[str] = mapped_column(String(UUID_LEN), primary_key=True)
    share_group_snapshot_id: Mapped[str] = mapped_column(
        String(UUID_LEN), ForeignKey("share_group_snapshots.id", ondelete="CASCADE"), nullable=False)
    share_id: Mapped[str] = mapped_column(String(UUID_LEN), ForeignKey("shares.id"), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    size: Mapped[int] = mapped_column(Integer, nullable=False)
    share_proto: Mapped[str] = mapped_column(String(16), nullable=False)
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    provider_location: Mapped[str | None] = mapped_column(String(255))


# --- built-in identity (Keystone v3 compatible; migration 0014) ------------------
# Keystone's ids are 32 hex digits; one domain, ``default``, exists.

IDENTITY_ID_LEN = 64


class IdentityProject(Base):
    __tablename__ = "identity_projects"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_identity_projects_domain_id_name"),)

    id: Mapped[str] = mapped_column(String(IDENTITY_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    domain_id: Mapped[str] = mapped_column(String(64), nullable=False)
    description: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class IdentityUser(Base):
    """A user and its password's argon2 hash; ``failed_attempts`` and
    ``locked_until`` are the brute-force back-off."""

    __tablename__ = "identity_users"
    __table_args__ = (UniqueConstraint("domain_id", "name", name="uq_identity_users_domain_id_name"),)

    id: Mapped[str] = mapped_column(String(IDENTITY_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    domain_id: Mapped[str] = mapped_column(String(64), nullable=False)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class IdentityRole(Base):
    __tablename__ = "identity_roles"

    id: Mapped[str] = mapped_column(String(IDENTITY_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class IdentityRoleAssignment(Base):
    """A user's role on a project."""

    __tablename__ = "identity_role_assignments"
    __table_args__ = (UniqueConstraint("user_id", "project_id", "role_id",
                                       name="uq_identity_role_assignments_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(
        String(IDENTITY_ID_LEN), ForeignKey("identity_users.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[str] = mapped_column(
        String(IDENTITY_ID_LEN), ForeignKey("identity_projects.id", ondelete="CASCADE"), nullable=False)
    role_id: Mapped[str] = mapped_column(
        String(IDENTITY_ID_LEN), ForeignKey("identity_roles.id", ondelete="CASCADE"), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class IdentityAppCredential(Base):
    """An application credential: a user's delegation of some of its roles
    on one project to a secret (kept as an argon2 hash)."""

    __tablename__ = "identity_app_credentials"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_identity_app_credentials_user_id"),)

    id: Mapped[str] = mapped_column(String(IDENTITY_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(String(255))
    user_id: Mapped[str] = mapped_column(
        String(IDENTITY_ID_LEN), ForeignKey("identity_users.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[str] = mapped_column(
        String(IDENTITY_ID_LEN), ForeignKey("identity_projects.id", ondelete="CASCADE"), nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    #: The role names delegated, comma-separated (a subset of the user's).
    roles: Mapped[str] = mapped_column(String(255), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)


class IdentityRevocation(Base):
    """A revoked token, by its audit id; kept until the token would have expired."""

    __tablename__ = "identity_revocations"

    audit_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
