"""Share migration actions, registered by
:class:`~shareflow.api.resources.share_actions.ShareActions`.

This service does not migrate shares, but a Manila client probing these
actions must get Manila's answers rather than a generic refusal: in Manila
(manila/api/v2/shares.py) ``migration_start`` exists from 2.29 and
``migration_complete`` / ``migration_cancel`` / ``migration_get_progress``
from 2.22, all experimental until 2.96 (beyond this service's maximum), so

* below its microversion, or without the experimental header, the action is
  Manila's bare 404;
* a member is refused by policy (``share:migration_*`` is admin-only), 403;
* ``migration_start`` without its required body keys is Manila's schema 400;
* a share that does not exist is 404 "Share <id> not found.";
* for an existing share the operation cannot be done: 400 ``Invalid share``
  with the message Manila gives when no migration is running (for
  complete, cancel and progress, true here as no share ever migrates) or,
  for start, saying that this service does not migrate shares.

The ``os-migrate_share`` / ``migrate_share`` actions were removed from Manila
(Newton); they stay unknown actions here as there (400 "There is no such action").
"""

from __future__ import annotations

from shareflow.api.resources.base import Action, Actions, caller
from shareflow.domain import validation
from shareflow.exceptions import InvalidInput, NotFound

#: Manila's first microversion of each action (``api_version``).
START_VERSION = "2.29"
OTHERS_VERSION = "2.22"
#: migration_start's schema (manila/api/schemas/shares.py): required keys.
START_REQUIRED = ("host", "nondisruptive", "preserve_metadata", "preserve_snapshots", "writable")
START_BOOLEANS = ("force_host_assisted_migration", *START_REQUIRED[1:])


def _check_start_body(info) -> None:
    if not isinstance(info, dict):
        raise InvalidInput("Invalid input for field/attribute migration_start: "
                           f"{info!r} is not of type 'object'.")
    for key in START_REQUIRED:
        if key not in info:
            raise InvalidInput(f"Invalid input for field/attribute migration_start: "
                               f"'{key}' is a required property.")
    if not isinstance(info["host"], str):
        raise InvalidInput("Invalid input for field/attribute host: "
                           f"{info['host']!r} is not of type 'string'.")
    for key in START_BOOLEANS:
        if key in info and not _is_boolean(info[key]):
            raise InvalidInput(f"Invalid input for field/attribute {key}: "
                               f"{info[key]!r} is not a valid boolean.")


def _is_boolean(value) -> bool:
    if isinstance(value, bool):
        return True
    if not isinstance(value, str):
        return False
    try:
        validation.boolean(value, "value")
    except InvalidInput:
        return False
    return True


def _handler(resource, action: str):
    def handle(req, resp, share_id: str, info) -> None:
        who = caller(req)
        if action == "migration_start":
            _check_start_body(info)
        try:
            share = resource.services.shares.get(who, share_id)
        except NotFound:
            raise NotFound(f"Share {share_id} not found.") from None
        if action == "migration_start":
            raise InvalidInput(f"Invalid share: Share {share.id} cannot be migrated: "
                               "this service does not migrate shares.")
        raise InvalidInput(f"Invalid share: There is no migration being performed for share "
                           f"{share.id} at this moment.")
    return handle


def actions(resource) -> Actions:
    """action name -> :class:`Action` (experimental: a 404 without the header, before policy)."""
    return {
        name: Action(START_VERSION if name == "migration_start" else OTHERS_VERSION, None,
                     _handler(resource, name), f"share:{name}", experimental=True)
        for name in ("migration_start", "migration_complete", "migration_cancel", "migration_get_progress")
    }
