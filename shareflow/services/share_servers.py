"""Share servers for admins (manila/api/v2/share_servers.py, share/api.py
``delete_share_server``) and the conductors' cleanup of unused servers
(manila/share/manager.py ``delete_free_share_servers``).

A delete is a delete_share_server job: the request checks what Manila's API
checks (status ``active`` or ``error``, else 403; a share on it, 409), moves
the server to ``deleting`` with one conditional write and posts the job, whose
first step checks again, under the share network's lock, that no share uses it.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shareflow import policy
from shareflow.config import Config
from shareflow.db import share_servers as servers_db
from shareflow.db.engine import Database
from shareflow.db.models import NetworkAllocation, ProviderNetwork, ShareServer
from shareflow.domain import states, validation
from shareflow.drivers.registry import share_server_helper
from shareflow.engine import operations
from shareflow.engine.posting import JobPoster
from shareflow.exceptions import Conflict, Forbidden, InvalidInput, ServiceUnavailable
from shareflow.scheduler.pool_state import backend_host
from shareflow.services.context import Caller

LOG = logging.getLogger(__name__)

OPERATION = "delete_share_server"
#: What an admin's reset_status may set: the statuses a share server has here.
RESETTABLE = frozenset(t for t in states.TRANSITIONS[states.SHARE_SERVER] if t != states.DELETED)
#: Manila's list filters (share_server_get_all_with_filters) this service knows
#: -> columns; any other filter matches nothing, as in Manila.
FILTERS = {
    "id": "id", "host": "host", "status": "status", "is_auto_deletable": "is_auto_deletable",
    "share_network_subnet_id": "share_network_subnet_id", "project_id": "project_id",
    "share_network_id": "share_network_id", "share_network": "share_network",
}
#: Manila's share server task states (constants.SERVER_TASK_STATE_STATUSES),
#: all about migrations.
MIGRATION_TASK_STATES = frozenset({
    "migration_starting", "migration_in_progress", "migration_completing", "migration_success",
    "migration_error", "migration_cancel_in_progress", "migration_cancelled",
    "migration_driver_in_progress", "migration_driver_phase1_done",
})
#: Manila filters on things this service does not have (always None/False here).
ABSENT_FILTERS = frozenset({"identifier", "task_state", "source_share_server_id",
                            "security_service_update_support", "network_allocation_update_support",
                            "encryption_key_ref", "deleted"})


@dataclass(frozen=True)
class ShareServerView:
    """A server with what its views show besides its row."""

    server: ShareServer
    share_network_name: str
    backend_details: dict[str, str]


class ShareServerService:
    def __init__(self, config: Config, db: Database, poster: JobPoster, *,
                 clock: Callable[[], datetime], new_id: Callable[[], str] = lambda: str(uuid.uuid4())):
        self._config = config
        self._db = db
        self._poster = poster
        self._clock = clock
        self._new_id = new_id

    # --- reading ------------------------------------------------------------

    def _view(self, session, row: ShareServer) -> ShareServerView:
        return ShareServerView(row, servers_db.share_network_name(session, row), _backend_details(session, row))

    def list(self, caller: Caller, filters: dict[str, str]) -> list[ShareServerView]:
        policy.enforce(caller, "share_server:index")
        query: dict[str, Any] = {}
        for key, value in filters.items():
            if key in ABSENT_FILTERS:
                if key == "deleted" and validation.boolean(value, key) is False:
                    continue
                return []
            if key not in FILTERS:
                return []  # Manila: an unknown filter matches nothing
            if key == "is_auto_deletable":
                try:
                    query[key] = validation.boolean(value, key)
                except InvalidInput:
                    return []
            else:
                query[FILTERS[key]] = value
        with self._db.read() as s:
            return [self._view(s, row) for row in servers_db.list_(s, query)]

    def get(self, caller: Caller, server_id: str) -> ShareServerView:
        policy.enforce(caller, "share_server:show")
        with self._db.read() as s:
            return self._view(s, servers_db.get(s, server_id))

    def details(self, caller: Caller, server_id: str) -> dict[str, str]:
        policy.enforce(caller, "share_server:details")
        with self._db.read() as s:
            return _backend_details(s, servers_db.get(s, server_id))

    # --- changing -----------------------------------------------------------

    def delete(self, caller: Caller, server_id: str) -> None:
        policy.enforce(caller, "share_server:delete")
        now = self._clock()
        with self._db.write() as s:
            row = servers_db.get(s, server_id)
            if row.status not in servers_db.DELETABLE:
                raise Forbidden(
                    f"share server {server_id} is {row.status}",
                    user_message=f"Share server's actual status is {row.status}, allowed statuses for "
                                 f"deletion are {list(servers_db.DELETABLE)}.",
                )
            if servers_db.shares_using(s, server_id):
                raise Conflict(f"Share server {server_id} is in use.")
            job, spec, previous = self._request_delete(s, row, now=now, project_id=caller.project_id,
                                                       request_id=caller.request_id, user_id=caller.user_id)
        self._post_or_undo(job, spec, previous)

    def _request_delete(self, session, row: ShareServer, *, now: datetime, project_id: str | None,
                        request_id: str | None, user_id: str | None = None):
        previous = row.status
        if not servers_db.set_status(session, row.id, states.DELETING, now=now, expected={previous}):
            raise Conflict(f"Share server {row.id} changed status; try again.")
        spec = operations.job_spec(OPERATION, backend=row.backend, resource_id=row.id,
                                   store={"server_id": row.id}, project_id=project_id)
        spec = dataclasses.replace(spec, request_id=request_id, user_id=user_id)
        return self._poster.record(session, spec), spec, previous

    def _post_or_undo(self, job, spec, previous: str) -> None:
        self._poster.post_or_undo(job, spec, undo=operations.undo(OPERATION, spec.resource_id, previous,
                                                                  clock=self._clock))

    def reset_status(self, caller: Caller, server_id: str, body: Any) -> None:
        """Manila's ``AdminActionsMixin._reset_status`` for share servers: any
        of the statuses a server has, from whatever it is now."""
        policy.enforce(caller, "share_server:reset_status")
        try:
            status = body["status"]
        except (TypeError, KeyError, IndexError):
            raise InvalidInput("no status", user_message="Must specify 'status'") from None
        if not isinstance(status, str) or status not in RESETTABLE:
            raise InvalidInput(
                f"invalid status {status!r}",
                user_message=f"Invalid state. Valid states: {', '.join(sorted(RESETTABLE))}.",
            )
        with self._db.write() as s:
            row = servers_db.get(s, server_id)
            if not servers_db.override_status(s, server_id, status, now=self._clock(), expected=row.status):
                raise Conflict(f"Share server {server_id} changed status; try again.")
        LOG.info("share server %s: status reset from %s to %s by %s", server_id, row.status, status,
                 caller.user_id)

    def reset_task_state(self, caller: Caller, server_id: str, body: Any) -> None:
        """Manila's ``reset_task_state`` (2.57). A share server's task state is
        about migrations, which this service does not do: it is always None,
        and None is the one state it can be reset to (the ``openstack share
        server set --status`` command resets it to None every time)."""
        policy.enforce(caller, "share_server:share_server_reset_task_state")
        if not isinstance(body, dict) or "task_state" not in body:
            raise InvalidInput("no task_state", user_message="Must specify 'task_state'")
        task_state = body["task_state"]
        if task_state is not None:
            if isinstance(task_state, str) and task_state in MIGRATION_TASK_STATES:
                raise InvalidInput(
                    f"task_state {task_state!r}",
                    user_message="Share server migration is not supported by this service; "
                                 "the task state can only be reset to None.",
                )
            raise InvalidInput(f"invalid task_state {task_state!r}",
                               user_message=f"Invalid task_state. Valid states: None, "
                                            f"{', '.join(sorted(MIGRATION_TASK_STATES))}.")
        with self._db.read() as s:
            servers_db.get(s, server_id)  # 404 for a server that is not there

    # --- the conductors' cleanup ----------------------------------------------

    def delete_unused(self, backend: str) -> list[str]:
        """Post a delete job for each server of ``backend`` unused for longer
        than its ``unused_share_server_cleanup_interval`` (when
        ``automatic_share_server_cleanup`` is on). Several conductors may run
        this at once: the conditional status change lets one of them win each
        server. Returns the ids of the servers whose delete this call posted."""
        cfg = next((b for b in self._config.backends if b.name == backend), None)
        if cfg is None or not cfg.driver_handles_share_servers or cfg.share_servers is None:
            return []
        now = self._clock()
        # Rows are keyed by the share service (this host's backend of that name).
        backend = backend_host(self._config.host, backend)
        with self._db.write() as s:
            servers_db.start_unused_clocks(s, backend, now=now)
        if not cfg.share_servers.automatic_cleanup:
            return []
        cutoff = now - timedelta(minutes=cfg.share_servers.unused_cleanup_interval)
        with self._db.read() as s:
            candidates = [r.id for r in servers_db.unused_deletable(s, backend, unused_before=cutoff)]
        posted = []
        for server_id in candidates:
            try:
                with self._db.write() as s:
                    # Again in this transaction: a create may have taken it meanwhile.
                    row = servers_db.get_any(s, server_id)
                    if row is None or row.deleted_at is not None or row.status not in servers_db.DELETABLE:
                        continue
                    if servers_db.shares_using(s, server_id) or row.unused_since is None \
                            or row.unused_since >= cutoff:
                        continue
                    job, spec, previous = self._request_delete(s, row, now=now, project_id=row.project_id,
                                                               request_id=None)
            except Conflict:
                continue  # another conductor took it
            LOG.info("share server %s unused since %s: deleting it", server_id, row.unused_since)
            try:
                self._post_or_undo(job, spec, previous)
            except ServiceUnavailable:
                LOG.exception("could not post the delete of unused share server %s", server_id)
                continue
            posted.append(server_id)
        return posted


def _backend_details(session, row: ShareServer) -> dict[str, str]:
    """What the server is on the host (Manila's ``backend_details``: strings):
    what the share server helper makes for it, and its network from the records."""
    details = {"address": row.address or "", **share_server_helper().backend_details(row.id)}
    alloc = session.get(NetworkAllocation, row.allocation_id) if row.allocation_id else None
    net = session.get(ProviderNetwork, alloc.network_id) if alloc is not None else None
    if net is not None:
        details.update({"bridge": net.bridge, "provider_network_id": net.id, "cidr": net.cidr,
                        "mtu": str(net.mtu)})
    if row.allocation_id:
        details["network_allocation_id"] = row.allocation_id
    return details

