"""The falcon application: Manila's v2 API over :class:`shareflow.wiring.Services`.

Every ``/v2`` route exists twice, with and without ``/{project_id}`` after
``/v2`` (Manila's ``ProjectMapper``); the segment is checked against the
caller by :class:`~shareflow.api.middleware.RequestBodyMiddleware`.
"""

from __future__ import annotations

import falcon

from shareflow import auth
from shareflow.api import errors
from shareflow.api.heartbeat import ApiHeartbeat
from shareflow.api.middleware import (
    AuthMiddleware,
    BodyLimitMiddleware,
    MicroversionMiddleware,
    RenderMiddleware,
    RequestBodyMiddleware,
    RequestIdMiddleware,
)
from shareflow.api.resources.access_rules import AccessRuleMetadata, AccessRules
from shareflow.api.resources.availability_zones import AvailabilityZones
from shareflow.api.resources.scheduler_stats import SchedulerStatsPools
from shareflow.api.resources.export_locations import ExportLocations
from shareflow.api.resources.extensions import Extensions
from shareflow.api.resources.extra_specs import ExtraSpecs
from shareflow.api.resources.instances import (
    ShareInstance,
    ShareInstanceActions,
    ShareInstanceExportLocations,
    ShareInstances,
    ShareInstancesOfShare,
    ShareReplicas,
    SnapshotInstance,
    SnapshotInstanceActions,
    SnapshotInstances,
)
from shareflow.api.resources.jobs import Job, JobActions, Jobs
from shareflow.api.resources.limits import Limits
from shareflow.api.resources.messages import Messages
from shareflow.api.resources.metadata import ShareMetadata
from shareflow.api.resources.provider_networks import ProviderNetwork, ProviderNetworks
from shareflow.api.resources.quota_sets import LegacyQuotaSets, QuotaSets
from shareflow.api.resources.services import Services as ServicesResource
from shareflow.api.resources.share_actions import ShareActions
from shareflow.api.resources.share_servers import ShareServer, ShareServerActions, ShareServers
from shareflow.api.resources.security_services import SecurityServices
from shareflow.api.resources.share_networks import (
    ShareNetwork,
    ShareNetworkActions,
    ShareNetworks,
    ShareNetworkSubnets,
)
from shareflow.api.resources.share_groups import (
    ShareGroup,
    ShareGroups,
    ShareGroupSnapshot,
    ShareGroupSnapshots,
    ShareGroupType,
    ShareGroupTypes,
    ShareGroupTypeSpecs,
)
from shareflow.api.resources.share_types import (
    ShareType,
    ShareTypeAccess,
    ShareTypeActions,
    ShareTypes,
)
from shareflow.api.resources.shares import Share, Shares
from shareflow.api.resources.snapshots import Snapshot, SnapshotActions, Snapshots
from shareflow.api.resources.versions import Versions
from shareflow.config import Config

V2 = "/v2"


def create_app(config: Config, services=None, *, authenticator: auth.Authenticator | None = None) -> falcon.App:
    """Build the WSGI app for one process. ``services`` defaults to a new
    :class:`shareflow.wiring.Services` (database engine; ZooKeeper on first use)."""
    if services is None:
        from shareflow.wiring import Services

        services = Services(config)
    if authenticator is None:
        authenticator = auth.from_config(config.auth)

    # This node in ``GET /services`` (manila-api), as requests come.
    heartbeat = ApiHeartbeat(lambda: services.db, host=config.host, availability_zone=config.availability_zone)
    app = falcon.App(
        middleware=[
            # First, so that its process_response runs last (see its docstring).
            RenderMiddleware(),
            RequestIdMiddleware(),
            heartbeat,
            BodyLimitMiddleware(config.api.max_body_bytes),
            AuthMiddleware(authenticator),
            MicroversionMiddleware(),
            RequestBodyMiddleware(),
        ],
    )
    app.req_options.strip_url_path_trailing_slash = True
    # ``?all_tenants`` with no value means yes (manila.utils.is_all_tenants).
    app.req_options.keep_blank_qs_values = True
    app.req_options.auto_parse_qs_csv = False
    errors.register(app)

    app.add_route("/", Versions(config, services, root=True))
    app.add_route(V2, Versions(config, services, root=False))

    def route(path: str, resource, **kwargs) -> None:
        app.add_route(V2 + path, resource, **kwargs)
        app.add_route(V2 + "/{project_id}" + path, resource, **kwargs)

    shares = Shares(config, services)
    route("/shares", shares)
    route("/shares/detail", shares, suffix="detail")
    route("/shares/{share_id}", Share(config, services))
    route("/shares/{share_id}/action", ShareActions(config, services))
    locations = ExportLocations(config, services)
    route("/shares/{share_id}/export_locations", locations)
    route("/shares/{share_id}/export_locations/{export_location_id}", locations, suffix="item")
    metadata = ShareMetadata(config, services)
    route("/shares/{share_id}/metadata", metadata)
    route("/shares/{share_id}/metadata/{key}", metadata, suffix="item")
    route("/availability-zones", AvailabilityZones(config, services, legacy=False))
    route("/os-availability-zone", AvailabilityZones(config, services, legacy=True))
    pools = SchedulerStatsPools(config, services)
    route("/scheduler-stats/pools", pools)
    route("/scheduler-stats/pools/detail", pools, suffix="detail")

    for path, legacy in (("/services", False), ("/os-services", True)):
        resource = ServicesResource(config, services, legacy=legacy)
        route(path, resource)
        route(path + "/{action}", resource, suffix="action")

    types = ShareTypes(config, services)
    route("/types", types)
    route("/types/default", types, suffix="default")
    route("/types/{type_id}", ShareType(config, services))
    route("/types/{type_id}/action", ShareTypeActions(config, services))
    type_access = ShareTypeAccess(config, services)
    route("/types/{type_id}/share_type_access", type_access)
    route("/types/{type_id}/os-share-type-access", type_access)
    specs = ExtraSpecs(config, services)
    route("/types/{type_id}/extra_specs", specs)
    route("/types/{type_id}/extra_specs/{key}", specs, suffix="item")

    snapshots = Snapshots(config, services)
    route("/snapshots", snapshots)
    route("/snapshots/detail", snapshots, suffix="detail")
    route("/snapshots/{snapshot_id}", Snapshot(config, services))
    route("/snapshots/{snapshot_id}/action", SnapshotActions(config, services))

    route("/shares/{share_id}/instances", ShareInstancesOfShare(config, services))
    share_instances = ShareInstances(config, services)
    route("/share_instances", share_instances)
    route("/share_instances/detail", share_instances, suffix="detail")
    route("/share_instances/{instance_id}", ShareInstance(config, services))
    route("/share_instances/{instance_id}/action", ShareInstanceActions(config, services))
    instance_locations = ShareInstanceExportLocations(config, services)
    route("/share_instances/{instance_id}/export_locations", instance_locations)
    route("/share_instances/{instance_id}/export_locations/{export_location_id}", instance_locations,
          suffix="item")
    snapshot_instances = SnapshotInstances(config, services)
    route("/snapshot-instances", snapshot_instances)
    route("/snapshot-instances/detail", snapshot_instances, suffix="detail")
    route("/snapshot-instances/{instance_id}", SnapshotInstance(config, services))
    route("/snapshot-instances/{instance_id}/action", SnapshotInstanceActions(config, services))
    # Nothing is replicated: the lists are empty (clients list before deleting).
    replicas = ShareReplicas(config, services)
    route("/share-replicas", replicas)
    route("/share-replicas/detail", replicas, suffix="detail")
    route("/share-replicas/{replica_id}", replicas, suffix="item")

    rules = AccessRules(config, services)
    route("/share-access-rules", rules)
    route("/share-access-rules/{access_id}", rules, suffix="item")
    rule_metadata = AccessRuleMetadata(config, services)
    route("/share-access-rules/{access_id}/metadata", rule_metadata)
    route("/share-access-rules/{access_id}/metadata/{key}", rule_metadata, suffix="item")

    # Not "{project_id}": that name is the optional path segment checked by the middleware.
    quota_sets = QuotaSets(config, services)
    route("/quota-sets/{target_id}", quota_sets)
    route("/quota-sets/{target_id}/defaults", quota_sets, suffix="defaults")
    route("/quota-sets/{target_id}/detail", quota_sets, suffix="detail")
    legacy_quota_sets = LegacyQuotaSets(config, services)
    route("/os-quota-sets/{target_id}", legacy_quota_sets)
    route("/os-quota-sets/{target_id}/defaults", legacy_quota_sets, suffix="defaults")
    route("/limits", Limits(config, services))
    messages = Messages(config, services)
    route("/messages", messages)
    route("/messages/{message_id}", messages, suffix="item")

    route("/share-servers", ShareServers(config, services))
    share_server = ShareServer(config, services)
    route("/share-servers/{server_id}", share_server)
    route("/share-servers/{server_id}/details", share_server, suffix="details")
    route("/share-servers/{server_id}/action", ShareServerActions(config, services))

    share_networks = ShareNetworks(config, services)
    route("/share-networks", share_networks)
    route("/share-networks/detail", share_networks, suffix="detail")
    route("/share-networks/{share_network_id}", ShareNetwork(config, services))
    route("/share-networks/{share_network_id}/action", ShareNetworkActions(config, services))
    subnets = ShareNetworkSubnets(config, services)
    route("/share-networks/{share_network_id}/subnets", subnets)
    route("/share-networks/{share_network_id}/subnets/{subnet_id}", subnets, suffix="item")
    security_services = SecurityServices(config, services)
    route("/security-services", security_services)
    route("/security-services/detail", security_services, suffix="detail")
    route("/security-services/{security_service_id}", security_services, suffix="item")
    # shareflow's own extension (admin only): the networks share networks name.
    provider_networks = ProviderNetworks(config, services)
    route("/provider-networks", provider_networks)
    route("/provider-networks/{network_id}", ProviderNetwork(config, services))
    extensions = Extensions(config, services)
    route("/extensions", extensions)
    route("/extensions/{alias}", extensions, suffix="item")
    # shareflow's own extension: jobs, read by their project, steered by admins.
    route("/jobs", Jobs(config, services))
    route("/jobs/{job_id}", Job(config, services))
    route("/jobs/{job_id}/action", JobActions(config, services))
    _group_routes(route, config, services)
    return app


def _group_routes(route, config: Config, services) -> None:
    """Share group types, share groups and share group snapshots (2.31+)."""
    group_types = ShareGroupTypes(config, services)
    route("/share-group-types", group_types)
    route("/share-group-types/detail", group_types, suffix="detail")
    route("/share-group-types/default", group_types, suffix="default")
    group_type = ShareGroupType(config, services)
    route("/share-group-types/{type_id}", group_type)
    route("/share-group-types/{type_id}/action", group_type, suffix="action")
    route("/share-group-types/{type_id}/access", group_type, suffix="access")
    group_specs = ShareGroupTypeSpecs(config, services)
    route("/share-group-types/{type_id}/group-specs", group_specs)
    route("/share-group-types/{type_id}/group-specs/{key}", group_specs, suffix="item")
    groups = ShareGroups(config, services)
    route("/share-groups", groups)
    route("/share-groups/detail", groups, suffix="detail")
    group = ShareGroup(config, services)
    route("/share-groups/{group_id}", group)
    route("/share-groups/{group_id}/action", group, suffix="action")
    group_snapshots = ShareGroupSnapshots(config, services)
    route("/share-group-snapshots", group_snapshots)
    route("/share-group-snapshots/detail", group_snapshots, suffix="detail")
    group_snapshot = ShareGroupSnapshot(config, services)
    route("/share-group-snapshots/{snapshot_id}", group_snapshot)
    route("/share-group-snapshots/{snapshot_id}/members", group_snapshot, suffix="members")
    route("/share-group-snapshots/{snapshot_id}/action", group_snapshot, suffix="action")
