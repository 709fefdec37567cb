"""Queries on user messages."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db import listing
from shareflow.db.models import Message
from shareflow.exceptions import NotFound

#: Manila keeps messages for 30 days by default.
MESSAGE_TTL = timedelta(days=30)


def create(
    session: Session, *, now: datetime, project_id: str, resource_type: str, resource_id: str,
    action_id: str, detail_id: str, user_message: str, request_id: str | None = None,
    level: str = "ERROR",
) -> Message:
    msg = Message(
        id=str(uuid.uuid4()), project_id=project_id, request_id=request_id,
        resource_type=resource_type, resource_id=resource_id, action_id=action_id,
        detail_id=detail_id, message_level=level, user_message=user_message[:1024],
        created_at=now, expires_at=now + MESSAGE_TTL,
    )
    session.add(msg)
    session.flush()
    return msg


def get(session: Session, message_id: str, project_id: str | None) -> Message:
    msg = session.get(Message, message_id)
    if msg is None or msg.deleted_at is not None or (project_id is not None and msg.project_id != project_id):
        raise NotFound(f"Message {message_id} could not be found.")
    return msg


def list_(session: Session, project_id: str | None, *, resource_id: str | None = None) -> list[Message]:
    q = sa.select(Message).where(Message.deleted_at.is_(None))
    if project_id is not None:
        q = q.where(Message.project_id == project_id)
    if resource_id is not None:
        q = q.where(Message.resource_id == resource_id)
    return list(session.scalars(q.order_by(Message.created_at.desc(), Message.id)))


def delete(session: Session, message: Message, *, now: datetime) -> None:
    message.deleted_at = now


#: Columns a message list may be filtered on exactly (Manila's legal filter keys).
EXACT_FILTERS = ("request_id", "resource_type", "resource_id", "action_id", "detail_id", "message_level")
#: Columns a message list may be sorted by (python-manilaclient's MESSAGE_SORT_KEY_VALUES).
SORT_KEYS = ("id", "project_id", "request_id", "resource_type", "action_id", "detail_id",
             "resource_id", "message_level", "expires_at", "created_at")


def search(
    session: Session, project_id: str | None, *, now: datetime, filters: dict | None = None,
    created_since: datetime | None = None, created_before: datetime | None = None,
    sort_key: str = "created_at", sort_dir: str = "desc", limit: int | None = None, offset: int = 0,
) -> list[Message]:
    """Live, unexpired messages of ``project_id`` (None: every project).
    ``filters`` maps :data:`EXACT_FILTERS` to a value or a list of values."""
    q = sa.select(Message).where(
        Message.deleted_at.is_(None),
        sa.or_(Message.expires_at.is_(None), Message.expires_at > now),
    )
    if project_id is not None:
        q = q.where(Message.project_id == project_id)
    for key, value in (filters or {}).items():
        if key not in EXACT_FILTERS:
            raise ValueError(f"not a message filter: {key}")
        col = getattr(Message, key)
        q = q.where(col.in_(value) if isinstance(value, list | tuple) else col == value)
    if created_since is not None:
        q = q.where(Message.created_at >= created_since)
    if created_before is not None:
        q = q.where(Message.created_at <= created_before)
    if sort_key not in SORT_KEYS:
        raise ValueError(f"not a message sort key: {sort_key}")
    return listing.page(session, q, Message, sort_key=sort_key, sort_dir=sort_dir, limit=limit, offset=offset)
