"""Access rules as manila/api/views/share_accesses.py builds them."""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.db.models import AccessRule
from shareflow.domain import states

#: Before 2.28 a rule's state was its share's rules status, "new" while syncing.
LEGACY_SYNCING_STATE = "new"


def _versioned(view: dict, rule: AccessRule, ctx: ViewContext, share_rules_status: str | None) -> dict:
    if ctx.at_least("2.21"):
        view["access_key"] = None
    if ctx.version.before("2.28") and share_rules_status is not None:
        view["state"] = (LEGACY_SYNCING_STATE if share_rules_status == states.RULES_SYNCING
                         else share_rules_status)
    if ctx.at_least("2.33"):
        view["created_at"] = timestamp(rule.created_at)
        view["updated_at"] = timestamp(rule.updated_at)
    if ctx.at_least("2.45"):
        view["metadata"] = rule.metadata_dict()
    return view


def summary(rule: AccessRule, ctx: ViewContext, share_rules_status: str | None = None) -> dict:
    """One entry of an access list (no share_id, like Manila's ``summary_view``)."""
    view = {
        "id": rule.id,
        "access_level": rule.access_level,
        "access_to": rule.access_to,
        "access_type": rule.access_type,
        "state": rule.state,
    }
    return _versioned(view, rule, ctx, share_rules_status)


def detail(rule: AccessRule, ctx: ViewContext, share_rules_status: str | None = None) -> dict:
    view = {
        "id": rule.id,
        "share_id": rule.share_id,
        "access_level": rule.access_level,
        "access_to": rule.access_to,
        "access_type": rule.access_type,
        "state": rule.state,
    }
    return {"access": _versioned(view, rule, ctx, share_rules_status)}


def list_view(rules: list[AccessRule], ctx: ViewContext, share_rules_status: str | None = None) -> dict:
    return {"access_list": [summary(r, ctx, share_rules_status) for r in rules]}
