"""Queries on access rules."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import AccessRule, Share
from shareflow.db.transitions import transition
from shareflow.domain import states
from shareflow.exceptions import NotFound


def get(session: Session, rule_id: str) -> AccessRule:
    rule = session.get(AccessRule, rule_id)
    if rule is None or rule.deleted_at is not None:
        raise NotFound(f"Access rule {rule_id} could not be found.")
    return rule


def for_share(session: Session, share_id: str, states_in: frozenset[str] | None = None) -> list[AccessRule]:
    q = sa.select(AccessRule).where(AccessRule.share_id == share_id, AccessRule.deleted_at.is_(None))
    if states_in is not None:
        q = q.where(AccessRule.state.in_(sorted(states_in)))
    return list(session.scalars(q.order_by(AccessRule.created_at, AccessRule.id)))


def find(session: Session, share_id: str, access_type: str, access_to: str) -> AccessRule | None:
    q = sa.select(AccessRule).where(
        AccessRule.share_id == share_id,
        AccessRule.access_type == access_type,
        AccessRule.access_to == access_to,
        AccessRule.deleted_at.is_(None),
    )
    return session.scalars(q).first()


def create(session: Session, **fields) -> AccessRule:
    rule = AccessRule(**fields)
    session.add(rule)
    session.flush()
    return rule


def set_state(session: Session, rule_id: str, target: str, *, now, expected=None) -> bool:
    return transition(
        session, AccessRule, rule_id, states.ACCESS_RULE, target, now=now, expected=expected, column="state"
    )


def mark_deleted(session: Session, rule_id: str, *, now) -> bool:
    return transition(
        session, AccessRule, rule_id, states.ACCESS_RULE, states.DELETED, now=now, column="state",
        values={"deleted_at": now},
    )


def refresh_share_rules_status(session: Session, share_id: str, *, now) -> str:
    """A share's ``access_rules_status`` follows from its rules: error if any
    rule is in error, syncing while any is in transit, else active."""
    rule_states = set(session.scalars(
        sa.select(AccessRule.state).where(AccessRule.share_id == share_id, AccessRule.deleted_at.is_(None))
    ))
    if states.ERROR in rule_states:
        status = states.RULES_ERROR
    elif rule_states & states.RULE_TRANSITIONAL:
        status = states.RULES_SYNCING
    else:
        status = states.RULES_ACTIVE
    session.execute(
        sa.update(Share).where(Share.id == share_id).values(access_rules_status=status, updated_at=now)
    )
    return status
