"""Queries on access rules."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import AccessRule, AccessRuleMetadata, Share
from shareflow.db.transitions import transition
from shareflow.domain import states, validation
from shareflow.exceptions import NotFound


def get(session: Session, rule_id: str) -> AccessRule:
    rule = session.get(AccessRule, rule_id)
    if rule is None or rule.deleted_at is not None:
        raise NotFound(f"Access rule {rule_id} could not be found.")
    return rule


#: manila.exception.ShareAccessMetadataNotFound
METADATA_NOT_FOUND = "Share access rule metadata does not exist."


def for_share(session: Session, share_id: str, states_in: frozenset[str] | None = None,
              metadata: dict[str, str] | None = None) -> list[AccessRule]:
    """The share's live rules; with ``metadata``, those that have every one
    of its key/value pairs (Manila's list filter)."""
    q = sa.select(AccessRule).where(AccessRule.share_id == share_id, AccessRule.deleted_at.is_(None))
    if states_in is not None:
        q = q.where(AccessRule.state.in_(sorted(states_in)))
    for key, value in (metadata or {}).items():
        q = q.where(sa.exists().where(AccessRuleMetadata.access_id == AccessRule.id,
                                      AccessRuleMetadata.key == key, AccessRuleMetadata.value == value))
    return list(session.scalars(q.order_by(AccessRule.created_at, AccessRule.id)))


_RULES = AccessRule.__table__
#: Built once (the create's and delete's access steps ask it of every share).
_ANY_IN_STATES = sa.select(_RULES.c.id).where(
    _RULES.c.share_id == sa.bindparam("share_id"), _RULES.c.deleted_at.is_(None),
    _RULES.c.state.in_(sa.bindparam("states", expanding=True))).limit(1)


def any_for_share(conn: Session | sa.Connection, share_id: str, states_in: frozenset[str]) -> bool:
    """Whether the share has a live rule in one of ``states_in``: one
    statement on the table, no rule loaded (``conn`` may be a Connection)."""
    return conn.execute(_ANY_IN_STATES, {"share_id": share_id, "states": sorted(states_in)}).first() is not None


def find_ip(session: Session, share_id: str, canonical: str) -> AccessRule | None:
    """The share's live ip rule for the same address or network as
    ``canonical`` (a normalised spelling), however that rule was spelled
    (``2001:0DB8::1`` and ``2001:db8::1`` are one client, as in Manila's
    ``share_access_check_for_existing_access``)."""
    for rule in session.scalars(sa.select(AccessRule).where(
            AccessRule.share_id == share_id, AccessRule.access_type == "ip", AccessRule.deleted_at.is_(None))):
        try:
            if validation.canonical_ip(rule.access_to) == canonical:
                return rule
        except ValueError:
            continue
    return None


def create(session: Session, **fields) -> AccessRule:
    rule = AccessRule(**fields)
    session.add(rule)
    session.flush()
    return rule


def set_metadata(session: Session, rule_id: str, items: dict[str, str]) -> None:
    """Set each key to its value, adding the keys that are new (the others stay)."""
    existing = {m.key: m for m in session.scalars(
        sa.select(AccessRuleMetadata).where(AccessRuleMetadata.access_id == rule_id,
                                            AccessRuleMetadata.key.in_(sorted(items))))}
    for key, value in items.items():
        if key in existing:
            existing[key].value = value
        else:
            session.add(AccessRuleMetadata(access_id=rule_id, key=key, value=value))
    session.flush()


def delete_metadata_key(session: Session, rule_id: str, key: str) -> None:
    gone = session.execute(
        sa.delete(AccessRuleMetadata)
        .where(AccessRuleMetadata.access_id == rule_id, AccessRuleMetadata.key == key)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not gone:
        raise NotFound(f"access rule {rule_id} has no metadata key {key!r}", user_message=METADATA_NOT_FOUND)


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
