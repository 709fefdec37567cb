"""Share group types (admin-managed, as share types are) and share groups.

A group keeps its shares on one pool: the group is placed when it is
created, on a pool that every one of its share types can use (the filter
scheduler run once per type over the pools reported now, and the pools that
pass for all of them kept, best first by the first type's ranking), and a
share created into the group goes to that pool. shareflow's storage has
nothing to make for a group itself (a group is bookkeeping over btrfs
subvolumes on one pool), so placing it is creating it: the group answers
``available`` at once, or ``error`` with a user message when no pool passes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from shareflow import policy
from shareflow.config import Config
from shareflow.db import messages as messages_db
from shareflow.db import networks as networks_db
from shareflow.db import share_groups as groups_db
from shareflow.db import share_types as types_db
from shareflow.db import snapshots as snapshots_db
from shareflow.db import type_common
from shareflow.db.engine import Database
from shareflow.db.models import ShareGroup, ShareGroupSnapshot, ShareGroupSnapshotMember, ShareGroupType, ShareType
from shareflow.engine import operations
from shareflow.engine.posting import JobPoster
from shareflow.domain import states, validation
from shareflow.exceptions import Conflict, InvalidInput, NoValidHost, NotFound
from shareflow.scheduler.scheduler import Placement, Scheduler, request_spec
from shareflow.services.availability_zones import resolve as resolve_zone
from shareflow.services.context import Caller
from shareflow.services.share_types import visible_type
from shareflow.services.type_access import TypeAccess

LOG = logging.getLogger(__name__)

#: Manila's message resource type and the "allocate host" action for groups.
MESSAGE_RESOURCE_GROUP = "SHARE_GROUP"
ACTION_ALLOCATE_HOST = "001"
GROUP_DELETABLE = frozenset({states.AVAILABLE, states.ERROR})
GROUP_RESETTABLE = frozenset({states.CREATING, states.AVAILABLE, states.ERROR, states.DELETING,
                              states.ERROR_DELETING})
#: Share group list filters Manila takes (``group_type_id`` is an alias).
GROUP_FILTERS = ("name", "description", "status", "share_group_type_id", "share_network_id",
                 "availability_zone", "host", "source_share_group_snapshot_id", "project_id")
SNAPSHOT_FILTERS = ("name", "description", "status", "share_group_id", "project_id")
SNAPSHOT_SORT_KEYS = ("created_at", "updated_at", "id", "name", "status", "project_id", "share_group_id")
SNAPSHOT_RESETTABLE = frozenset(states.TRANSITIONS[states.SHARE_GROUP_SNAPSHOT]) - {states.DELETED}
GROUP_SORT_KEYS = ("created_at", "updated_at", "id", "name", "status", "project_id", "host",
                   "share_group_type_id", "share_network_id", "availability_zone")


def _specs(value) -> dict[str, str]:
    """Manila's group specs: None or an object of strings (nested objects and
    booleans only on the specs routes, which store their string form)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("Group specs can be either of 'None' or 'dict' types.")
    for element in list(value) + list(value.values()):
        if not isinstance(element, str):
            raise InvalidInput("Group specs keys and values should be strings.")
    return validation.extra_specs(value)


def spec_values(value) -> dict[str, str]:
    """The specs routes' values: strings of 1-255 characters or booleans."""
    if not isinstance(value, dict):
        raise InvalidInput("Malformed request body: expected a 'group_specs' object.")
    for k, v in value.items():
        ok_key = isinstance(k, str) and 0 < len(k) < 256
        ok_value = isinstance(v, bool) or (isinstance(v, str) and 0 < len(v) < 256)
        if not (ok_key and ok_value):
            raise InvalidInput(f"Invalid extra_spec: {k}: {v}")
    return validation.extra_specs(value)


def place_group(scheduler: Scheduler, session, share_types: list[ShareType], zone: str | None) -> Placement:
    """One pool every share type passes the filter scheduler on; the first
    type's best among them. NoValidHost (the first type's, or "no pool in
    common") when there is none."""
    common: dict[str, object] | None = None
    ranked_first = []
    for st in share_types:
        spec = request_spec(size_gb=1, share_proto="NFS", share_type=st, availability_zone=zone)
        decision = scheduler.decide(session, spec)
        pools = [w.pool for w in decision.ranked]
        if not pools:
            # The one message that names what removed them.
            scheduler.place(session, spec)
        if common is None:
            ranked_first = pools
            common = {p.host: p for p in pools}
        else:
            hosts = {p.host for p in pools}
            common = {h: p for h, p in common.items() if h in hosts}
    chosen = [p for p in ranked_first if common and p.host in common]
    if not chosen:
        raise NoValidHost("No pool can host every share type of the share group.",
                          user_message="No storage could be allocated for this share group request: "
                                       "no pool supports every share type of the group.")
    return Placement.of_pool(chosen[0])


def check_share_in_group(session, caller: Caller, group_id, stype: ShareType, share_network_id: str | None,
                         availability_zone: str | None) -> ShareGroup:
    """What Manila checks of a share created into a group (``share_group_id``):
    the group is the caller's and available, the share's type one of the
    group's, its share network and zone the group's (400s)."""
    try:
        group_id = validation.uuid_str(group_id, "share_group_id")
        group = groups_db.get_group(session, group_id, caller.scope)
    except (InvalidInput, NotFound):
        raise InvalidInput(f"Share group {group_id} not found.") from None
    # Held to the commit: a delete of the group waits, then sees this share.
    if group.status != states.AVAILABLE or not groups_db.hold_available_group(session, group.id):
        raise InvalidInput(f"Share group status must be {states.AVAILABLE}, but it is {group.status}.")
    if stype.id not in group.share_type_ids():
        raise InvalidInput(f"The specified share type ({stype.id}) is not supported by the specified "
                           "share group.")
    if (share_network_id or None) != (group.share_network_id or None):
        raise InvalidInput(f"The specified share network ({share_network_id}) is not supported by the "
                           "specified share group.")
    if availability_zone is not None and group.availability_zone and availability_zone != group.availability_zone:
        raise InvalidInput(f"The specified availability zone ({availability_zone}) is not supported by the "
                           "specified share group.")
    return group


def group_snapshot_members_of(session, share_id: str) -> int:
    """Live group snapshot members of a share: they keep it from being deleted (Manila)."""
    return groups_db.snapshots_of_share(session, share_id)


def place_in_group(scheduler: Scheduler, session, spec, group: ShareGroup) -> Placement:
    """A share of a group goes to the group's pool, if the filter scheduler
    lets it (room, an enabled service...); NoValidHost otherwise."""
    decision = scheduler.decide(session, spec)
    for weighed in decision.ranked:
        if weighed.pool.host == group.host:
            return Placement.of_pool(weighed.pool)
    raise NoValidHost(f"the pool {group.host} of share group {group.id} does not pass the filters",
                      user_message="No storage could be allocated for this share request: the pool of its "
                                   "share group cannot take it.")


class ShareGroupService:
    def __init__(self, config: Config, db: Database, poster: JobPoster, *, clock: Callable[[], datetime],
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())):
        self._config = config
        self._db = db
        self._poster = poster
        self._clock = clock
        self._new_id = new_id
        self._scheduler = Scheduler.from_config(config, clock=clock)
        #: The project access lists of private group types.
        self.type_access = TypeAccess(db, groups_db.TYPE_TABLES, get=groups_db.get_type, rules="share_group_type",
                                      clock=clock)

    # --- group types -----------------------------------------------------------------

    def list_types(self, caller: Caller, *, is_public: str | None = None,
                   group_specs: dict | None = None) -> list[ShareGroupType]:
        if not caller.is_admin:
            public, project = True, caller.project_id
        elif is_public is None:
            public, project = True, caller.project_id
        elif is_public.lower() == "all":
            public, project = None, None
        else:
            public, project = validation.boolean(is_public, "is_public"), caller.project_id
        with self._db.read() as s:
            types = type_common.list_types(s, groups_db.TYPE_TABLES, public=public, project_id=project)
        if group_specs:
            types = [t for t in types if all(t.specs().get(k) == v for k, v in group_specs.items())]
        return types

    def get_type(self, caller: Caller, type_id: str) -> ShareGroupType:
        with self._db.read() as s:
            return self._visible_type(s, caller, type_id)

    @staticmethod
    def _visible_type(session, caller: Caller, type_id: str) -> ShareGroupType:
        gt = groups_db.get_type(session, type_id)
        if not type_common.visible_to(session, groups_db.TYPE_TABLES, gt, caller.scope):
            raise NotFound(f"share group type {type_id} not visible to {caller.project_id}",
                           user_message=f"Share group type with id {type_id} not found.")
        return gt

    def default_type(self, caller: Caller) -> ShareGroupType:
        name = self._config.default_share_group_type
        with self._db.read() as s:
            gt = groups_db.type_by_name(s, name) if name else None
        if gt is None:
            raise NotFound("Default share group type not found.")
        return gt

    def create_type(self, caller: Caller, *, name, share_types, group_specs=None, is_public=True) -> ShareGroupType:
        policy.enforce(caller, "share_group_type:create")
        if not share_types:
            raise InvalidInput("Supported share types must be provided.")
        if not isinstance(name, str) or not name or len(name) > 255:
            raise InvalidInput("Share group type name is not valid.")
        specs = _specs(group_specs)
        is_public = validation.boolean(is_public, "is_public")
        if not isinstance(share_types, list) or not all(isinstance(t, str) for t in share_types):
            raise InvalidInput("share_types must be a list of share type names or ids.")
        with self._db.write() as s:
            ids = []
            for ref in share_types:
                try:
                    st = types_db.get_by_name_or_id(s, ref)
                except NotFound:
                    raise NotFound(f"Share type {ref} does not exist.",
                                   user_message=f"Share type with name {ref} could not be found.") from None
                if st.id not in ids:
                    ids.append(st.id)
            return groups_db.create_type(s, now=self._clock(), type_id=self._new_id(), name=name,
                                         share_type_ids=ids, specs=specs, is_public=is_public)

    def delete_type(self, caller: Caller, type_id: str) -> None:
        policy.enforce(caller, "share_group_type:delete")
        with self._db.write() as s:
            gt = groups_db.get_type(s, type_id)
            if groups_db.type_in_use(s, gt.id):
                raise InvalidInput(f"Target share group type with id {type_id} is still in use.")
            gt.deleted_at = self._clock()
            s.flush()

    def type_specs(self, caller: Caller, type_id: str) -> dict[str, str]:
        policy.enforce(caller, "share_group_types_spec:index")
        return self.get_type(caller, type_id).specs()

    def set_type_specs(self, caller: Caller, type_id: str, specs: dict[str, str]) -> None:
        policy.enforce(caller, "share_group_types_spec:update")
        with self._db.write() as s:
            type_common.set_specs(s, groups_db.TYPE_TABLES, groups_db.get_type(s, type_id), specs, now=self._clock())

    def unset_type_spec(self, caller: Caller, type_id: str, key: str) -> None:
        policy.enforce(caller, "share_group_types_spec:delete")
        with self._db.write() as s:
            gt = groups_db.get_type(s, type_id)
            if not type_common.unset_spec(s, groups_db.TYPE_TABLES, gt, key, now=self._clock()):
                raise NotFound(f"Share group type spec {key} could not be found.",
                               user_message=f"Share group type {gt.id} has no group specs with key {key}.")

    # --- groups ------------------------------------------------------------------------

    def get(self, caller: Caller, group_id: str) -> ShareGroup:
        with self._db.read() as s:
            return groups_db.get_group(s, group_id, caller.scope)

    def list(self, caller: Caller, *, all_projects: bool, filters: dict, sort_key: str,
             sort_dir: str) -> list[ShareGroup]:
        scope = None if (caller.is_admin and all_projects) else caller.project_id
        with self._db.read() as s:
            return groups_db.list_groups(s, scope, filters, sort_key=sort_key, sort_dir=sort_dir)

    def create(self, caller: Caller, *, name=None, description=None, share_types=None,
               share_group_type_id=None, share_network_id=None, availability_zone=None) -> ShareGroup:
        name = validation.optional_text(name, "Share group name", 255)
        description = validation.optional_text(description, "Share group description", 255)
        # Manila's controller looks the zone up first (404).
        zone = resolve_zone(self._config, availability_zone)
        now = self._clock()
        with self._db.write() as s:
            if share_group_type_id is None:
                default = self._config.default_share_group_type
                gt = groups_db.type_by_name(s, default) if default else None
                if gt is None:
                    raise InvalidInput("Must specify a share group type as a default share group type has "
                                       "not been configured.")
            else:
                try:
                    gt = self._visible_type(s, caller, share_group_type_id)
                except NotFound:
                    raise InvalidInput(f"The specified share group type {share_group_type_id} does not "
                                       "exist.") from None
            if not share_types:
                default = types_db.get_by_name(s, self._config.default_share_type)
                if default is None:
                    raise InvalidInput("Must specify at least one share type as a default share type has "
                                       "not been configured.")
                share_types = [default.id]
            stypes = []
            for ref in share_types:
                try:
                    stypes.append(visible_type(s, caller, ref))
                except NotFound:
                    raise InvalidInput(f"Share type with id {ref} could not be found.") from None
            if not {t.id for t in stypes} <= set(gt.share_type_ids()):
                raise InvalidInput("The specified share types must be a subset of the share types supported "
                                   "by the share group type.")
            dhss = {validation.boolean(t.specs().get(validation.DHSS, "False"), validation.DHSS) for t in stypes}
            if len(dhss) > 1:
                raise InvalidInput("The specified share_types cannot have conflicting values for the "
                                   "driver_handles_share_servers extra spec.")
            if dhss == {False} and share_network_id:
                raise InvalidInput("When using a share types with the driver_handles_share_servers extra "
                                   "spec as False, a share_network_id must not be provided.")
            if share_network_id:
                try:
                    networks_db.get_share_network(s, share_network_id, caller.scope)
                except NotFound:
                    raise InvalidInput("The specified share network does not exist.") from None
            if dhss == {True} and not share_network_id:
                raise InvalidInput("When using a share type with the driver_handles_share_servers extra spec "
                                   "as True, a share_network_id must be provided.")
            unsupported = [t for t in stypes
                           if validation.zones_of(t.specs()) and zone not in validation.zones_of(t.specs())]
            if availability_zone is not None and unsupported:
                listed = ", ".join(f"{t.name} (ID: {t.id})" for t in unsupported)
                raise InvalidInput(f"Share group cannot be created since the following share types are not "
                                   f"supported within the availability zone '{availability_zone}': ({listed})")
            try:
                placement = place_group(self._scheduler, s, stypes,
                                        zone if availability_zone is not None else None)
            except NoValidHost as e:
                LOG.info("share group of types %s: %s", [t.name for t in stypes], e)
                placement, failure = None, e
            group = groups_db.create_group(
                s, now=now, share_type_ids=[t.id for t in stypes], id=self._new_id(),
                project_id=caller.project_id, user_id=caller.user_id, name=name, description=description,
                status=states.AVAILABLE if placement else states.ERROR, share_group_type_id=gt.id,
                share_network_id=share_network_id, availability_zone=zone,
                host=placement.host if placement else None,
                backend=placement.backend_host if placement else None,
            )
            if placement is None:
                messages_db.create(
                    s, now=now, project_id=caller.project_id, request_id=caller.request_id,
                    resource_type=MESSAGE_RESOURCE_GROUP, resource_id=group.id,
                    action_id=ACTION_ALLOCATE_HOST, detail_id=failure.detail_id,
                    user_message=f"allocate host: {failure.user_message}",
                )
            return group

    def update(self, caller: Caller, group_id: str, fields: dict) -> ShareGroup:
        invalid = set(fields) - {"name", "description"}
        if invalid:
            raise InvalidInput(f"The fields {invalid} are invalid or not allowed to be updated.")
        with self._db.write() as s:
            group = groups_db.get_group(s, group_id, caller.scope)
            if "name" in fields:
                group.name = validation.optional_text(fields["name"], "Share group name", 255)
            if "description" in fields:
                group.description = validation.optional_text(fields["description"], "Share group description",
                                                             255)
            group.updated_at = self._clock()
            s.flush()
            return group

    def delete(self, caller: Caller, group_id: str) -> None:
        """Manila's checks, in its order (409s); nothing on the backend to
        remove, so the group is deleted when the 202 answers."""
        now = self._clock()
        with self._db.write() as s:
            group = groups_db.get_group(s, group_id, caller.scope)
            expected = GROUP_DELETABLE if group.host is not None else {group.status}
            if group.status not in expected:
                raise Conflict(f"Share group status must be one of {tuple(sorted(GROUP_DELETABLE))}")
            # The row first, then what it holds: a share or group snapshot
            # added concurrently either waited for this and is refused, or
            # committed first and is counted (raising rolls this back).
            if not groups_db.set_group_status(s, group.id, states.DELETED, now=now, expected=expected,
                                              deleted_at=now):
                raise Conflict(f"Share group {group.id} changed status meanwhile")
            if groups_db.snapshot_count(s, group.id):
                raise Conflict("Cannot delete a share group with snapshots")
            if groups_db.member_count(s, group.id):
                raise Conflict("Cannot delete a share group with shares")

    def reset_status(self, caller: Caller, group_id: str, status) -> None:
        policy.enforce(caller, "share_group:reset_status")
        if status not in GROUP_RESETTABLE:
            raise InvalidInput(f"Invalid status: {status}")
        with self._db.write() as s:
            group = groups_db.get_group(s, group_id, None)
            group.status, group.updated_at = status, self._clock()
            s.flush()

    def force_delete(self, caller: Caller, group_id: str) -> None:
        """Manila's admin force_delete of a group: its records go (its
        snapshots, and the group from its member shares), not its shares'
        storage, which stays theirs to delete."""
        policy.enforce(caller, "share_group:force_delete")
        now = self._clock()
        with self._db.write() as s:
            group = groups_db.get_group(s, group_id, None)
            if groups_db.member_count(s, group.id):
                raise Conflict("Cannot delete a share group with shares")
            for snap in groups_db.list_snapshots(s, None, {"share_group_id": group.id}):
                groups_db.mark_snapshot_deleted(s, snap.id, now=now)
            group.status, group.deleted_at, group.updated_at = states.DELETED, now, now
            s.flush()

    # --- group snapshots ----------------------------------------------------------------

    def get_snapshot(self, caller: Caller, snapshot_id: str) -> ShareGroupSnapshot:
        with self._db.read() as s:
            return groups_db.get_snapshot(s, snapshot_id, caller.scope)

    def list_snapshots(self, caller: Caller, *, all_projects: bool, filters: dict, sort_key: str,
                       sort_dir: str) -> list[ShareGroupSnapshot]:
        scope = None if (caller.is_admin and all_projects) else caller.project_id
        with self._db.read() as s:
            return groups_db.list_snapshots(s, scope, filters, sort_key=sort_key, sort_dir=sort_dir)

    def create_snapshot(self, caller: Caller, *, share_group_id: str, name=None,
                        description=None) -> ShareGroupSnapshot:
        """One snapshot per member share, taken by one job on the group's
        backend (Manila's checks: the group and every member available)."""
        name = validation.optional_text(name, "Share group snapshot name", 255)
        description = validation.optional_text(description, "Share group snapshot description", 255)
        now = self._clock()
        with self._db.write() as s:
            try:
                group = groups_db.get_group(s, share_group_id, caller.scope)
            except NotFound as e:
                raise InvalidInput(str(e), user_message=f"Share group {share_group_id} could not be found.") from None
            if (group.status != states.AVAILABLE or group.backend is None
                    or not groups_db.hold_available_group(s, group.id)):
                raise Conflict(f"Share group status must be {states.AVAILABLE}")
            shares = groups_db.members(s, group.id)
            for share in shares:
                # Each member's row held while available: its delete waits, then sees the member.
                if share.status != states.AVAILABLE or not snapshots_db.hold_available_share(s, share.id):
                    raise Conflict(f"Share {share.id} in share group must have status of {states.AVAILABLE} in "
                                   "order to create a group snapshot")
            snap = ShareGroupSnapshot(id=self._new_id(), project_id=caller.project_id, user_id=caller.user_id,
                                      share_group_id=group.id, name=name, description=description,
                                      status=states.CREATING, created_at=now)
            snap.members = [ShareGroupSnapshotMember(
                id=self._new_id(), share_id=share.id, project_id=caller.project_id, size=share.size,
                share_proto=share.share_proto, status=states.CREATING, created_at=now) for share in shares]
            s.add(snap)
            s.flush()
            spec = self._snapshot_spec("create_share_group_snapshot", group, snap, caller)
            job = self._poster.record(s, spec)
            snap_id = snap.id
        self._poster.post_or_undo(job, spec, undo=operations.undo("create_share_group_snapshot", snap_id, None,
                                                                  clock=self._clock))
        return self.get_snapshot(caller, snap_id)

    @staticmethod
    def _snapshot_spec(operation: str, group: ShareGroup, snap: ShareGroupSnapshot, caller: Caller,
                       force: bool = False):
        members = [[m.id, m.share_id] for m in snap.members]
        return operations.job_spec(
            operation, backend=group.backend, resource_id=snap.id, caller=caller, project_id=snap.project_id,
            factory_kwargs={"members": members, **({"force": True} if force else {})},
            store={"group_snapshot_id": snap.id})

    def update_snapshot(self, caller: Caller, snapshot_id: str, fields: dict) -> ShareGroupSnapshot:
        invalid = set(fields) - {"name", "description"}
        if invalid:
            raise InvalidInput(f"The fields {invalid} are invalid or not allowed to be updated.")
        with self._db.write() as s:
            snap = groups_db.get_snapshot(s, snapshot_id, caller.scope)
            if "name" in fields:
                snap.name = validation.optional_text(fields["name"], "Share group snapshot name", 255)
            if "description" in fields:
                snap.description = validation.optional_text(fields["description"],
                                                            "Share group snapshot description", 255)
            snap.updated_at = self._clock()
            s.flush()
            return snap

    def delete_snapshot(self, caller: Caller, snapshot_id: str, *, force: bool = False) -> None:
        """Every member's snapshot deleted by one job. ``force`` (admin):
        from any status, and the records go even if the backend fails."""
        if force:
            policy.enforce(caller, "share_group_snapshot:force_delete")
        now = self._clock()
        with self._db.write() as s:
            snap = groups_db.get_snapshot(s, snapshot_id, None if force else caller.scope)
            previous = snap.status
            deletable = GROUP_DELETABLE | ({states.CREATING, states.DELETING, states.ERROR_DELETING} if force
                                           else frozenset())
            if previous not in deletable:
                raise Conflict(f"Share group snapshot status must be one of {tuple(sorted(GROUP_DELETABLE))}")
            if previous != states.DELETING and not groups_db.set_snapshot_status(
                    s, snap.id, states.DELETING, now=now, expected={previous}):
                raise Conflict(f"Share group snapshot {snap.id} changed status meanwhile")
            group = groups_db.get_group(s, snap.share_group_id, None)
            spec = self._snapshot_spec("delete_share_group_snapshot", group, snap, caller, force=force)
            job = self._poster.record(s, spec)
        self._poster.post_or_undo(job, spec, undo=operations.undo("delete_share_group_snapshot", snapshot_id,
                                                                  previous, clock=self._clock))

    def reset_snapshot_status(self, caller: Caller, snapshot_id: str, status) -> None:
        policy.enforce(caller, "share_group_snapshot:reset_status")
        if status not in SNAPSHOT_RESETTABLE:
            raise InvalidInput(f"Invalid status: {status}")
        with self._db.write() as s:
            snap = groups_db.get_snapshot(s, snapshot_id, None)
            groups_db.set_snapshot_status(s, snap.id, status, now=self._clock())
