"""Building the services of one process from its configuration."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from shareflow.config import Config
from shareflow.db.engine import Database
from shareflow.engine.boards import PostingBoards
from shareflow.engine.persistence import make_persistence
from shareflow.engine.posting import JobPoster
from shareflow.services.admin import ShareAdminService
from shareflow.services.availability_zones import AvailabilityZoneService
from shareflow.services.backends import BackendService
from shareflow.services.instances import InstanceService
from shareflow.services.jobs import JobService
from shareflow.services.messages import MessageService
from shareflow.services.access_metadata import AccessMetadataService
from shareflow.services.metadata import ShareMetadataService
from shareflow.services.networks import ProviderNetworkService, ShareNetworkService
from shareflow.services.quotas import QuotaService
from shareflow.services.scheduler_stats import SchedulerStatsService
from shareflow.scheduler.scheduler import Scheduler, stale_after_of
from shareflow.services.resize import ResizeService
from shareflow.services.security_services import SecurityServiceService
from shareflow.services.service_list import ServiceListService
from shareflow.services.share_servers import ShareServerService
from shareflow.services.share_groups import ShareGroupService
from shareflow.services.share_types import ShareTypeService
from shareflow.services.shares import ShareService
from shareflow.services.snapshots import SnapshotService


def utcnow() -> datetime:
    """Naive UTC, as stored in the database (Manila's timestamps have no zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_uuid() -> str:
    return str(uuid.uuid4())


class Services:
    """Everything an API worker or a CLI command needs, over one database
    engine and (lazily) one ZooKeeper client."""

    def __init__(self, config: Config, *, clock: Callable[[], datetime] = utcnow,
                 new_id: Callable[[], str] = new_uuid):
        self.config = config
        self.clock = clock
        self.db = Database(config.database.url)
        self.persistence = make_persistence(self.db)
        self.boards = PostingBoards(config.zookeeper)
        self.poster = JobPoster(self.db, self.persistence, self.boards, clock=clock, new_id=new_id)
        self.shares = ShareService(config, self.db, self.poster, clock=clock, new_id=new_id)
        self.share_types = ShareTypeService(config, self.db, clock=clock, new_id=new_id)
        self.share_groups = ShareGroupService(config, self.db, self.poster, clock=clock, new_id=new_id)
        self.jobs = JobService(self.db, poster=self.poster, zookeeper=config.zookeeper,
                               stall_after=config.conductor.stall_after, clock=clock)
        self.resize = ResizeService(config, self.db, self.poster, clock=clock)
        self.share_admin = ShareAdminService(config, self.db, self.poster, clock=clock)
        self.share_metadata = ShareMetadataService(self.db, clock=clock)
        self.access_metadata = AccessMetadataService(self.db, clock=clock)
        self.availability_zones = AvailabilityZoneService(config, self.db, clock=clock)
        self.snapshots = SnapshotService(config, self.db, self.poster, clock=clock, new_id=new_id)
        self.instances = InstanceService(self.db, self.share_admin, self.snapshots)
        self.quotas = QuotaService(config.quotas, self.db, clock=clock)
        self.messages = MessageService(self.db, clock=clock)
        self.share_servers = ShareServerService(config, self.db, self.poster, clock=clock, new_id=new_id)
        self.provider_networks = ProviderNetworkService(self.db, clock=clock, new_id=new_id)
        self.share_networks = ShareNetworkService(config, self.db, clock=clock, new_id=new_id)
        self.security_services = SecurityServiceService(self.db, clock=clock, new_id=new_id)
        self.scheduler_stats = SchedulerStatsService(
            self.db, Scheduler.from_config(config, clock=clock))
        self.service_list = ServiceListService(
            self.db, BackendService(self.db, stale_after=stale_after_of(config), clock=clock),
            stale_after=stale_after_of(config), clock=clock)

    def close(self) -> None:
        self.boards.close()
        self.db.dispose()
