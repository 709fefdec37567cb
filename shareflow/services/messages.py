"""User messages (Manila's ``/messages``): what went wrong with an asynchronous
request, for the project that made it.

The messages are written where failures are recorded (the flows' outcome
recorder, the scheduler's "allocate host" failure); this service only reads
and deletes them. A member sees its own project's messages; an admin sees any
one message, and lists its own project's unless it asks for all projects.
Expired messages (``expires_at`` passed, Manila's 30-day ``message_ttl``) are
no longer shown.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from shareflow.db import messages as messages_db
from shareflow.db.engine import Database
from shareflow.db.models import Message
from shareflow.exceptions import NotFound
from shareflow.services.context import Caller

#: Longer ids cannot exist (the column holds a UUID); they are simply not found.
ID_MAX = 36


class MessageService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime]):
        self._db = db
        self._clock = clock

    def list(self, caller: Caller, *, all_projects: bool = False, filters: dict | None = None,
             created_since: datetime | None = None, created_before: datetime | None = None,
             sort_key: str = "created_at", sort_dir: str = "desc", limit: int | None = None,
             offset: int = 0) -> list[Message]:
        scope = None if (caller.is_admin and all_projects) else caller.project_id
        with self._db.read() as s:
            return messages_db.search(
                s, scope, now=self._clock(), filters=filters, created_since=created_since,
                created_before=created_before, sort_key=sort_key, sort_dir=sort_dir,
                limit=limit, offset=offset,
            )

    def get(self, caller: Caller, message_id: str) -> Message:
        with self._db.read() as s:
            return self._get(s, caller, message_id)

    def delete(self, caller: Caller, message_id: str) -> None:
        with self._db.write() as s:
            messages_db.delete(s, self._get(s, caller, message_id), now=self._clock())

    def _get(self, session, caller: Caller, message_id: str) -> Message:
        if len(message_id) > ID_MAX or "\x00" in message_id:
            raise NotFound(f"Message {message_id[:ID_MAX]} could not be found.")
        msg = messages_db.get(session, message_id, caller.scope)
        if msg.expires_at is not None and msg.expires_at <= self._clock():
            raise NotFound(f"Message {message_id} could not be found.")
        return msg
