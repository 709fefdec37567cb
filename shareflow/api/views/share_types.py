"""Share types as manila/api/views/types.py builds them (``share_type`` and its
old alias ``volume_type`` side by side)."""

from __future__ import annotations

from shareflow.api.views.common import ViewContext
from shareflow.db.models import ShareType
from shareflow.domain import validation

REQUIRED_SPECS = (validation.DHSS,)
#: Manila's ExtraSpecs.TENANT_VISIBLE: what a non-admin may see of a type.
TENANT_VISIBLE_SPECS = frozenset(REQUIRED_SPECS + (
    "snapshot_support", "create_share_from_snapshot_support", "revert_to_snapshot_support",
    "replication_type", "mount_snapshot_support", "mount_point_name_support",
    "snapshot_inherit_share_access_support", "availability_zones", "encryption_support",
    "provisioning:max_share_size", "provisioning:min_share_size",
    "provisioning:max_share_extend_size", "provisioning:mount_point_prefix", "default_qos_type",
))
#: Manila's ExtraSpecs.INFERRED_OPTIONAL_MAP (>= 2.24, non-admins), without the
#: one it defers to 2.99.
INFERRED_OPTIONAL = {
    "snapshot_support": False,
    "create_share_from_snapshot_support": False,
    "revert_to_snapshot_support": False,
    "mount_snapshot_support": False,
}


def _required(specs: dict[str, str]) -> dict[str, str]:
    return {k: specs[k] for k in REQUIRED_SPECS if k in specs}


def brief(stype: ShareType, ctx: ViewContext) -> dict:
    specs = stype.specs()
    required = _required(specs)
    if not ctx.is_admin:
        specs = {k: v for k, v in specs.items() if k in TENANT_VISIBLE_SPECS}
    view = {"id": stype.id, "name": stype.name, "extra_specs": specs,
            "required_extra_specs": required}
    if ctx.at_least("2.7"):
        view["share_type_access:is_public"] = stype.is_public
    else:
        view["os-share-type-access:is_public"] = stype.is_public
    if ctx.at_least("2.24") and not ctx.is_admin:
        for key, value in INFERRED_OPTIONAL.items():
            specs.setdefault(key, value)
    if ctx.at_least("2.41"):
        view["description"] = stype.description
    if ctx.at_least("2.46"):
        view["is_default"] = stype.name == ctx.default_share_type
    return view


def detail(stype: ShareType, ctx: ViewContext) -> dict:
    view = brief(stype, ctx)
    return {"share_type": view, "volume_type": view}


def list_view(types: list[ShareType], ctx: ViewContext) -> dict:
    views = [brief(t, ctx) for t in types]
    return {"share_types": views, "volume_types": views}


def access_list(type_id: str, projects: list[str]) -> dict:
    """manila/api/views/types.py ``share_type_access``."""
    return {"share_type_access": [{"share_type_id": type_id, "project_id": p} for p in projects]}
