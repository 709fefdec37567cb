"""Shares and their access rules: validate, change status conditionally, post jobs.

A create is one job (``[scheduler] placement = "api"``, the default): in the
POST's one write transaction the share's row is made (``creating``), the
filter scheduler chooses its pool over the pools conductors report (an API
node needs no backend configuration), and the share is moved there with its
``create_share`` job recorded (``shareflow.engine.placement``, the same code
a scheduling job runs); after the commit the job is posted to the pool's
``host@backend`` board, and a post that fails removes the share again (503,
nothing changed: its pool allocation and quota usage go with its row). When
no pool passes the filters the share is ``error`` with Manila's "allocate
host" message in that transaction, no job is recorded, and the request is
still accepted (Manila's behaviour). With ``placement = "conductor"`` the
share is recorded unplaced and a ``schedule_share`` job is posted to the
scheduler's board instead (``shareflow.tasks.scheduling``): two jobs per
create.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from shareflow import policy
from shareflow.config import PLACEMENT_API, Config
from shareflow.db import access as access_db
from shareflow.db import networks as networks_db
from shareflow.db import share_types as types_db
from shareflow.db import shares as shares_db
from shareflow.db import snapshots as snapshots_db
from shareflow.db.engine import Database
from shareflow.db.models import AccessRule, Share
from shareflow.db import share_polls
from shareflow.db.share_records import ShareRecord
from shareflow.engine import operations, placement
from shareflow.domain import states, validation
from shareflow.engine.posting import JobPoster
from shareflow.engine.zk import SCHEDULER_BOARD
from shareflow.exceptions import (
    Conflict,
    Forbidden,
    InvalidInput,
    NoValidHost,
    NotFound,
    ResourceStateChanged,
)
from shareflow.flows.delete_share import share_flow_kwargs
from shareflow.scheduler.scheduler import Placement, Scheduler
from shareflow.services.availability_zones import resolve as resolve_zone
from shareflow.services.context import Caller
from shareflow.services import scheduler_hints as hints_mod
from shareflow.services import share_groups
from shareflow.services.metadata import check_properties as check_access_metadata
from shareflow.services.share_types import visible_type
from shareflow.services.snapshots import new_share_source
from shareflow.services.quotas import enforce as enforce_quota

LOG = logging.getLogger(__name__)

#: manila.exception.NotFound's default message: what Manila's deny_access
#: answers for an access id that names no rule of the share.
RULE_NOT_FOUND = "Resource could not be found."

#: The first job of a create with conductor placement: placement, run by a conductor.
SCHEDULE = "schedule_share"


def _writable(session, share_id: str, caller: Caller, action: str) -> Share:
    """The share ``caller`` may change: another project's public share is
    visible to it but refused by Manila's owner policy (``share:<action>``), 403."""
    share = shares_db.get(session, share_id, caller.scope)
    policy.enforce(caller, f"share:{action}", target=share)
    return share


#: Statuses a share may be deleted from (Manila's), and what it says otherwise.
DELETABLE = frozenset({states.AVAILABLE, states.ERROR, states.ERROR_DELETING})


class ShareService:
    def __init__(
        self, config: Config, db: Database, poster: JobPoster, *,
        clock: Callable[[], datetime], new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ):
        self._config = config
        self._db = db
        self._poster = poster
        self._clock = clock
        self._new_id = new_id
        #: The API's placement (``[scheduler] placement = "api"``): the
        #: pools conductors report, this node's ``[scheduler]``.
        self._scheduler = Scheduler.from_config(config, clock=clock)

    # --- reading ------------------------------------------------------------

    def get(self, caller: Caller, share_id: str) -> ShareRecord:
        # What clients poll: one statement (see shareflow.db.share_polls).
        with self._db.snapshot() as conn:
            return share_polls.share(conn, share_id, caller.scope)

    def list(self, caller: Caller, *, all_projects: bool = False, with_count: bool = False,
             **query) -> tuple[list, int | None]:
        """One page of records (see :func:`shareflow.db.shares.list_`), and how
        many shares match in all when ``with_count``; one read transaction."""
        everyone = all_projects and policy.authorize(caller, "share:list_all_projects")
        scope = None if everyone else caller.project_id
        with self._db.read() as s:
            rows = shares_db.list_(s, scope, **query)
            total = (shares_db.count(s, scope, filters=query.get("filters"), public=query.get("public", False))
                     if with_count else None)
            return rows, total

    def export_locations(self, caller: Caller, share_id: str) -> list[share_polls.ExportLocationRecord]:
        with self._db.snapshot() as conn:
            return share_polls.export_locations(conn, share_id, caller.scope)

    def access_rules(self, caller: Caller, share_id: str, *, metadata=None) -> list:
        if not metadata:
            # What manilaclient polls after allow_access: one statement.
            with self._db.snapshot() as conn:
                return share_polls.access_rules(conn, share_id, caller.scope)
        with self._db.read() as s:
            shares_db.get(s, share_id, caller.scope)
            return access_db.for_share(s, share_id, metadata=metadata)

    def access_rule(self, caller: Caller, rule_id: str) -> AccessRule:
        with self._db.read() as s:
            rule = access_db.get(s, rule_id)
            try:
                shares_db.get(s, rule.share_id, caller.scope)
            except NotFound:
                raise NotFound(f"Access rule {rule_id} could not be found.") from None
            return rule

    # --- creating -------------------------------------------------------------

    def create(self, caller: Caller, *, size, share_proto, name=None, description=None,
               share_type=None, metadata=None, is_public=False, availability_zone=None,
               share_network_id=None, snapshot_id=None, share_group_id=None,
               scheduler_hints: hints_mod.Hints | None = None) -> ShareRecord:
        """``scheduler_hints``: parsed already (``scheduler_hints.parse``);
        the shares they name are checked here, before anything is written."""
        hints = scheduler_hints or hints_mod.Hints()
        # From a snapshot, no size means the snapshot's (Manila).
        size = None if snapshot_id is not None and size in (None, "", 0) else validation.share_size(size)
        proto = validation.share_protocol(share_proto)
        name = validation.share_name(name)
        description = validation.share_description(description)
        metadata = validation.metadata(metadata)
        is_public = validation.boolean(is_public, "is_public") if is_public is not None else False
        if share_network_id is not None:
            share_network_id = validation.uuid_str(share_network_id, "share network id")
        now = self._clock()
        with self._db.write() as s:
            hints_mod.check(s, caller, hints)
            source = None
            if snapshot_id is not None:
                source = new_share_source(
                    s, self._config, caller, snapshot_id, size=size, share_type=share_type,
                    share_proto=proto, availability_zone=availability_zone,
                    share_network_id=share_network_id,
                )
                size, share_type = source.size, source.share_type_id
                availability_zone, share_network_id = source.availability_zone, source.share_network_id
            if share_network_id:
                # Manila's ShareNetworkNotFound (404): missing, or another project's.
                sn = networks_db.get_share_network(s, share_network_id, caller.scope)
                # Held to the commit: a delete of the share network waits, then sees this share.
                if not networks_db.lock_share_network(s, sn.id):
                    raise networks_db.share_network_not_found(share_network_id)
            stype = self._share_type(s, share_type, caller)
            group = None
            if share_group_id is not None:
                # Manila 2.31: one of the group's types and its network; its pool.
                group = share_groups.check_share_in_group(s, caller, share_group_id, stype, share_network_id,
                                                          availability_zone)
            specs = stype.specs()
            dhss = validation.boolean(specs.get(validation.DHSS, "False"), validation.DHSS)
            if dhss and not share_network_id:
                raise InvalidInput(
                    "Share network must be set when the driver_handles_share_servers "
                    "extra spec is True."
                )
            if not dhss and share_network_id:
                raise InvalidInput(
                    "Share network must not be set when the driver_handles_share_servers "
                    "extra spec is False."
                )
            # Before anything is written: over quota is 413 and changes nothing.
            enforce_quota(s, self._config.quotas, caller.project_id, shares=1, gigabytes=size)
            zone = resolve_zone(self._config, availability_zone)
            # Unplaced (Manila: no host until the scheduler chose one), then
            # placed here or by a conductor's scheduling job (see the module's
            # docstring), a share of a group on its group's pool.
            share = shares_db.create(
                s, now=now, id=self._new_id(), project_id=caller.project_id, user_id=caller.user_id,
                name=name, description=description, size=size, share_proto=proto,
                status=states.CREATING, share_type_id=stype.id, host=None, backend=None,
                availability_zone=zone, is_public=is_public,
                share_network_id=share_network_id, metadata={**metadata, **hints_mod.own_metadata(hints)},
                snapshot_id=source.snapshot_id if source else None,
                share_group_id=group.id if group else None,
            )
            hints_mod.link(s, share.id, hints)
            # The zone the request named (None: any), not the default.
            asked_zone = zone if availability_zone is not None else None
            if self._config.scheduler.placement == PLACEMENT_API:
                job, spec = self._place(s, caller, share, now=now, availability_zone=asked_zone,
                                        only_host=hints.only_host)
                operation = placement.CREATE
            else:
                spec = operations.job_spec(
                    SCHEDULE, backend=SCHEDULER_BOARD, resource_id=share.id, caller=caller,
                    store={"share_id": share.id, "size": size, "share_network_id": share_network_id,
                           "availability_zone": asked_zone,
                           **({"only_host": hints.only_host} if hints.only_host else {}),
                           **({"snapshot_id": source.snapshot_id} if source else {})},
                )
                job = self._poster.record(s, spec)
                operation = SCHEDULE
            # The share as created (Manila answers so): placed, or failed for
            # want of a pool, here; with a scheduling job, not yet placed (a
            # conductor may place it, or fail it, before this request has
            # answered). One statement, in this transaction (its rows are
            # flushed, the placement's update executed).
            created = share_polls.share(s.connection(), share.id, caller.scope)
        if job is not None:
            self._poster.post_or_undo(job, spec, undo=self._undo_create(operation, share.id))
        return created

    def _place(self, session, caller: Caller, share: Share, *, now: datetime, availability_zone: str | None,
               only_host: str | None):
        """The API's placement (``[scheduler] placement = "api"``), in the
        create's transaction: the share moved to the pool the scheduler
        chooses and its one ``create_share`` job recorded (the job and its
        spec, to post after the commit); or, when no pool passes, the share
        ``error`` with Manila's "allocate host" message and no job (None,
        None)."""
        try:
            chosen = placement.choose(session, share, self._scheduler, availability_zone=availability_zone,
                                      only_host=only_host)
        except NoValidHost as e:
            placement.fail_unplaced(session, share.id, e, now=now, project_id=caller.project_id,
                                    request_id=caller.request_id)
            return None, None
        recorded = placement.move_and_record_spec(session, share, chosen, poster=self._poster, now=now,
                                                  from_host=None, requested_by=caller, retry_of=None)
        if recorded is None:
            # Made in this transaction, so nothing can have moved it
            # meanwhile; should that ever be wrong, the request fails whole.
            raise ResourceStateChanged(f"share {share.id} left creating unplaced in its own create",
                                       user_message="the share changed before it was placed")
        return recorded

    def _undo_create(self, operation: str, share_id: str):
        """A create whose job could not be posted: the share's row removed
        (its pool allocation and quota usage given back with it, by the
        database's triggers) and its id taken out of the lists of the shares
        its scheduler hints named, as if it had never been asked for."""
        give_back = operations.undo(operation, share_id, None, clock=self._clock)

        def run(session) -> None:
            hints_mod.unlink(session, share_id)
            give_back(session)

        return run

    def _share_type(self, session, ref, caller: Caller):
        if ref is None:
            stype = types_db.get_by_name(session, self._config.default_share_type)
            if stype is None:
                raise InvalidInput(
                    "No share type was given and the default share type "
                    f"{self._config.default_share_type!r} does not exist."
                )
            return stype
        if not isinstance(ref, str):
            raise InvalidInput("share_type must be a share type name or id.")
        # A private type the caller's project may not use is not found (Manila).
        return visible_type(session, caller, ref)

    # --- changing -------------------------------------------------------------

    def update(self, caller: Caller, share_id: str, *, fields: dict) -> ShareRecord:
        allowed = {"display_name": "name", "name": "name", "display_description": "description",
                   "description": "description", "is_public": "is_public"}
        changes = {}
        for key, value in fields.items():
            if key not in allowed:
                raise InvalidInput(f"Share attribute {key!r} cannot be updated.")
            column = allowed[key]
            if column == "name":
                changes["name"] = validation.share_name(value)
            elif column == "description":
                changes["description"] = validation.share_description(value)
            else:
                changes["is_public"] = validation.boolean(value, "is_public")
        with self._db.write() as s:
            share = _writable(s, share_id, caller, "update")
            shares_db.update_fields(s, share, now=self._clock(), **changes)
            return shares_db.record(s, share_id)

    def delete(self, caller: Caller, share_id: str) -> None:
        now = self._clock()
        with self._db.write() as s:
            share = _writable(s, share_id, caller, "delete")
            # Manila drops the share from its hints' partners when the delete
            # is accepted (a refusal below rolls this back with the rest).
            hints_mod.unlink(s, share_id)
            if share.backend is None and share.status in DELETABLE:
                # Never placed on a backend (no valid host): nothing to undo
                # there. (One still being scheduled is creating: refused below.)
                shares_db.set_status(s, share_id, states.DELETING, now=now)
                shares_db.mark_deleted(s, share_id, now=now)
                return
            if share.status not in DELETABLE or not shares_db.set_status(
                s, share_id, states.DELETING, now=now, expected=DELETABLE
            ):
                raise Forbidden(
                    f"Invalid share: Share status must be one of {sorted(DELETABLE)}, "
                    f"but it is {share.status}."
                )
            # Counted after the status change, which a concurrent snapshot
            # create waits for (it holds the share's row while available);
            # raising rolls the change back.
            dependent = snapshots_db.count_for_share(s, share_id)
            if dependent:
                raise Forbidden(
                    f"share {share_id} has {dependent} snapshots",
                    user_message=f"Invalid share: Share still has {dependent} dependent snapshots.",
                )
            members = share_groups.group_snapshot_members_of(s, share_id)
            if members:
                raise Forbidden(f"share {share_id} has {members} group snapshot members",
                                user_message=f"Invalid share: Share still has {members} dependent share group "
                                             "snapshot members.")
            previous = share.status
            spec = operations.job_spec(
                "delete_share", backend=share.backend, resource_id=share_id, caller=caller,
                factory_kwargs=share_flow_kwargs(Placement.of_share(share)),
                store={"share_id": share_id},
            )
            job = self._poster.record(s, spec)
        self._poster.post_or_undo(job, spec, undo=operations.undo("delete_share", share_id, previous,
                                                                  clock=self._clock))

    def allow_access(self, caller: Caller, share_id: str, *, access_type, access_to,
                     access_level=None, ipv6: bool = True, metadata=None) -> AccessRule:
        access_type = validation.access_type(access_type)
        # Compared and exported in its normalised spelling, stored and shown
        # as given (as Manila does).
        canonical = validation.exportable_ip_access_to(validation.ip_access_to(access_to, ipv6=ipv6))
        access_to = str(access_to)
        access_level = validation.access_level(access_level)
        metadata = check_access_metadata(metadata) if metadata is not None else {}
        now = self._clock()
        with self._db.write() as s:
            share = shares_db.owned(s, share_id, caller.scope)
            if share.status != states.AVAILABLE:
                raise InvalidInput(f"Invalid share: Share status must be available, but it is {share.status}.")
            if access_db.find_ip(s, share_id, canonical) is not None:
                raise InvalidInput(f"Share access {access_type}:{access_to} exists.")
            rule = access_db.create(
                s, id=self._new_id(), share_id=share_id, access_type=access_type,
                access_to=access_to, access_level=access_level, state=states.QUEUED_TO_APPLY,
                created_at=now,
            )
            if metadata:
                access_db.set_metadata(s, rule.id, metadata)
            access_db.refresh_share_rules_status(s, share_id, now=now)
            spec = self._access_spec("allow_access", share, rule.id, caller)
            job = self._poster.record(s, spec)
        self._poster.post_or_undo(job, spec, undo=operations.undo("allow_access", rule.id, None,
                                                                  clock=self._clock))
        return self.access_rule(caller, rule.id)

    def deny_access(self, caller: Caller, share_id: str, access_id) -> None:
        # As Manila: the rule is looked up first, and an id that names no
        # rule of this share - malformed, unknown or another share's - is 404.
        # One that is not even text is a bad body (400).
        if not isinstance(access_id, str):
            validation.uuid_str(access_id, "access id")
        try:
            access_id = validation.uuid_str(access_id, "access id")
        except InvalidInput:
            raise NotFound(f"access id {str(access_id)[:64]!r} is malformed",
                           user_message=RULE_NOT_FOUND) from None
        now = self._clock()
        with self._db.write() as s:
            try:
                rule = access_db.get(s, access_id)
                if rule.share_id != share_id:
                    raise NotFound(f"access rule {access_id} is not of share {share_id}")
            except NotFound as e:
                raise NotFound(str(e), user_message=RULE_NOT_FOUND) from None
            share = shares_db.owned(s, share_id, caller.scope)
            if share.status != states.AVAILABLE:
                raise InvalidInput(f"Invalid share: Share status must be available, but it is {share.status}.")
            previous = rule.state
            if not access_db.set_state(s, access_id, states.QUEUED_TO_DENY, now=now):
                raise Conflict(f"Access rule {access_id} is {rule.state} and cannot be denied now.")
            access_db.refresh_share_rules_status(s, share_id, now=now)
            spec = self._access_spec("deny_access", share, access_id, caller)
            job = self._poster.record(s, spec)
        self._poster.post_or_undo(job, spec, undo=operations.undo("deny_access", access_id, previous,
                                                                  clock=self._clock))

    @staticmethod
    def _access_spec(operation: str, share: Share, rule_id: str, caller: Caller):
        return operations.job_spec(operation, backend=share.backend, resource_id=rule_id, caller=caller,
                                   store={"share_id": share.id, "rule_id": rule_id})

