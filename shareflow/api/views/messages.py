"""User messages as manila/api/views/messages.py builds them.

``user_message`` is the stored text: Manila composes it from the action and
detail ids ("create: An unknown error occurred."); ours is written when the
failure is recorded and also names the failed step and the reason
("create: step 'create_volume' failed: ..."), always starting with the action.
"""

from __future__ import annotations

from shareflow.api.views.common import ViewContext, timestamp
from shareflow.db.models import Message

COLLECTION = "messages"


def detail(msg: Message, ctx: ViewContext) -> dict:
    return {
        "id": msg.id,
        "project_id": msg.project_id,
        "action_id": msg.action_id,
        "detail_id": msg.detail_id,
        "message_level": msg.message_level,
        "created_at": timestamp(msg.created_at),
        "expires_at": timestamp(msg.expires_at),
        "request_id": msg.request_id,
        "links": ctx.links(COLLECTION, msg.id),
        "resource_type": msg.resource_type,
        "resource_id": msg.resource_id,
        "user_message": msg.user_message,
    }


def list_view(messages: list[Message], ctx: ViewContext) -> dict:
    return {"messages": [detail(m, ctx) for m in messages]}
