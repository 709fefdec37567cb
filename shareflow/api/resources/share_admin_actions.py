"""Share actions for resizing and admin recovery, registered by
:class:`~shareflow.api.resources.share_actions.ShareActions`:

* ``extend`` / ``shrink`` ``{"new_size": N}`` - 202 (manila/api/v2/shares.py
  ``_extend``, ``_shrink``); ``force`` on extend from 2.64 (admins);
* ``reset_status`` ``{"status": S}`` and ``force_delete`` - admins, 202
  (manila ``AdminActionsMixin``);
* ``reset_task_state`` ``{"task_state": S or null}`` - admins, 202, from
  2.22 and only with the experimental header, as Manila (no ``os-`` name).

Each under its ``os-`` name for microversions 2.0 to 2.6, its plain name from
2.7, as Manila registers them.
"""

from __future__ import annotations


from shareflow.api.resources.base import Action, Actions, accepted, caller, version
from shareflow.domain import validation
from shareflow.exceptions import InvalidInput

LEGACY = ("2.0", "2.6")
CURRENT = ("2.7", None)
#: Extend's ``force`` exists from this microversion; before, it is ignored.
FORCE_EXTEND_VERSION = "2.64"


def _new_size(info) -> object:
    """The ``new_size`` of an action body; the service validates its value."""
    if not isinstance(info, dict) or "new_size" not in info:
        raise InvalidInput("no new_size", user_message="New share size must be specified as an integer.")
    return info["new_size"]


def extend(resource, req, resp, share_id: str, info) -> None:
    size = _new_size(info)
    force = False
    if version(req).at_least(FORCE_EXTEND_VERSION) and "force" in info:
        raw = info["force"]
        try:
            force = validation.boolean(raw, "force") if isinstance(raw, bool | str) else None
        except InvalidInput:
            force = None
        if force is None:
            raise InvalidInput(f"bad force {raw!r}", user_message=f"Invalid boolean force : {raw}")
    resource.services.resize.extend(caller(req), share_id, size, force=force)
    accepted(resp)


def shrink(resource, req, resp, share_id: str, info) -> None:
    resource.services.resize.shrink(caller(req), share_id, _new_size(info))
    accepted(resp)


def reset_status(resource, req, resp, share_id: str, info) -> None:
    resource.services.share_admin.reset_status(caller(req), share_id, info)
    accepted(resp)


def force_delete(resource, req, resp, share_id: str, info) -> None:
    resource.services.share_admin.force_delete(caller(req), share_id)
    accepted(resp)


def reset_task_state(resource, req, resp, share_id: str, info) -> None:
    """Experimental from 2.22 (``api_version('2.22', experimental=True)``):
    a 404 without Manila's experimental header (``Action.experimental``)."""
    resource.services.share_admin.reset_task_state(caller(req), share_id, info)
    accepted(resp)


def actions(resource) -> Actions:
    """action name -> :class:`Action`, as ``ShareActions.actions`` holds them."""
    table: Actions = {}
    for name, handler in (("extend", extend), ("shrink", shrink), ("reset_status", reset_status),
                          ("force_delete", force_delete)):

        def bound(req, resp, share_id, info, _handler=handler):
            _handler(resource, req, resp, share_id, info)

        table[f"os-{name}"] = Action(*LEGACY, bound, f"share:{name}")
        table[name] = Action(*CURRENT, bound, f"share:{name}")
    table["reset_task_state"] = Action("2.22", None, lambda req, resp, share_id, info: reset_task_state(
        resource, req, resp, share_id, info), "share:reset_task_state", experimental=True)
    return table
