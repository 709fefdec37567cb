"""Queries on user messages."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

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
