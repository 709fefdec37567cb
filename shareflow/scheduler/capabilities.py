"""A share type's extra specs against a pool's capabilities (Manila's
``capabilities_satisfied`` and the spec preparation of its filter scheduler).

Which keys are compared:

- an unscoped key (``snapshot_support``) or one in the ``capabilities:`` scope
  (``capabilities:snapshot_support``) names a capability; a pool that does not
  report it fails, as in Manila (that is how a type asks for a capability only
  one driver has);
- a key in any other scope (``share_type_access:...``, ``provisioning:...``,
  ``vendor:option``) is for the driver or the API, not the scheduler: ignored;
- ``availability_zones`` is the AvailabilityZoneFilter's, and
  ``default_qos_type`` asks only for ``qos_type_support``: not compared here.

A list capability (a pool that can do either: ``thin_provisioning = [True,
False]``) matches when any of its values does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shareflow.scheduler import extra_specs_ops
from shareflow.scheduler.pool_state import RequestSpec

SCOPE_CAPABILITIES = "capabilities"
DHSS = "driver_handles_share_servers"
STORAGE_PROTOCOL = "storage_protocol"
SHARE_BACKEND_NAME = "share_backend_name"
AVAILABILITY_ZONES = "availability_zones"
DEFAULT_QOS_TYPE = "default_qos_type"

#: Keys that are extra specs but not capabilities (Manila's list).
IGNORED_EXTRA_SPECS = frozenset({AVAILABILITY_ZONES, f"{SCOPE_CAPABILITIES}:{AVAILABILITY_ZONES}", DEFAULT_QOS_TYPE})

#: Manila's boolean extra specs: a bare ``True`` is matched as ``<is> True``.
BOOLEAN_EXTRA_SPECS = (
    DHSS,
    "snapshot_support",
    "create_share_from_snapshot_support",
    "revert_to_snapshot_support",
    "mount_snapshot_support",
    "snapshot_inherit_share_access_support",
)

#: Capabilities Manila's driver base class always reports, false unless the
#: driver says otherwise: a pool that leaves one out cannot do it.
IMPLIED_FALSE_CAPABILITIES = frozenset(BOOLEAN_EXTRA_SPECS) - {DHSS}


def scheduler_extra_specs(spec: RequestSpec) -> dict[str, str]:
    """The extra specs as the CapabilitiesFilter compares them (Manila's
    ``_format_filter_properties``): boolean specs get ``<is>``; a type that
    names no ``storage_protocol`` asks for the share's protocol among the
    pool's; a share made from a snapshot drops ``share_backend_name`` (where
    it goes is its snapshot's business, see CreateFromSnapshotFilter)."""
    specs = dict(spec.extra_specs)
    for key in BOOLEAN_EXTRA_SPECS:
        value = specs.get(key)
        if value is not None and extra_specs_ops.operator_of(value) is None:
            specs[key] = f"<is> {value}"
    if STORAGE_PROTOCOL not in specs and f"{SCOPE_CAPABILITIES}:{STORAGE_PROTOCOL}" not in specs \
            and spec.share_proto:
        specs[STORAGE_PROTOCOL] = f"<in> {spec.share_proto}"
    if spec.snapshot_host:
        specs.pop(SHARE_BACKEND_NAME, None)
        specs.pop(f"{SCOPE_CAPABILITIES}:{SHARE_BACKEND_NAME}", None)
    return specs


def capability_path(key: str) -> list[str] | None:
    """The capability an extra spec key names (a path into nested
    capabilities), or None when the scheduler ignores the key."""
    if key in IGNORED_EXTRA_SPECS:
        return None
    scope = key.split(":")
    if len(scope) > 1 and scope[0] != SCOPE_CAPABILITIES:
        return None
    if scope[0] == SCOPE_CAPABILITIES:
        scope = scope[1:]
    return scope or None


def lookup(capabilities: Mapping[str, Any], path: list[str]) -> Any:
    """The reported value at ``path``; None when not reported."""
    value: Any = capabilities
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
        if value is None:
            if len(path) == 1 and part in IMPLIED_FALSE_CAPABILITIES:
                return False
            return None
    return value


def unmet(capabilities: Mapping[str, Any], extra_specs: Mapping[str, str]) -> tuple[str, str] | None:
    """The first extra spec (key, value) the capabilities do not satisfy, or
    None when they satisfy all of them."""
    if extra_specs.get(DEFAULT_QOS_TYPE) and not capabilities.get("qos_type_support", False):
        return DEFAULT_QOS_TYPE, extra_specs[DEFAULT_QOS_TYPE]
    for key, req in extra_specs.items():
        path = capability_path(key)
        if path is None:
            continue
        cap = lookup(capabilities, path)
        if cap is None:
            return key, req
        if extra_specs_ops.operator_of(req) == extra_specs_ops.ALL_IN:
            if not extra_specs_ops.match_all_in(cap, req):
                return key, req
            continue
        values = cap if isinstance(cap, list) else [cap]
        if not any(extra_specs_ops.match(v, req) for v in values):
            return key, req
    return None


def satisfied(capabilities: Mapping[str, Any], extra_specs: Mapping[str, str]) -> bool:
    return unmet(capabilities, extra_specs) is None
