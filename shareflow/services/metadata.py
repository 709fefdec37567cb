"""Share metadata: list, show a key, update (merge), replace all, set one
key, delete a key - manila/api/v2/metadata.py ``MetadataController`` and its
share overrides in manila/api/v2/shares.py, with Manila's limits and messages
(``manila.api.common.check_metadata_properties``).

Anyone who can see a share can read its metadata (public shares included);
only its own project (or an admin) can change it: another project's public
share answers 403, as Manila's ``for_modification`` policy check does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shareflow import policy
from shareflow.db import metadata as metadata_db
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import Share
from shareflow.exceptions import InvalidInput, NotFound
from shareflow.services.context import Caller

MALFORMED = "Malformed request body"
#: manila/api/v2/metadata.py ``_get_resource``: ``'%s not found.' % 'Share'``.
SHARE_NOT_FOUND = "Share not found."
KEY_MAX = 255
VALUE_MAX = 1023


def check_properties(metadata: Any) -> dict[str, str]:
    """``check_metadata_properties``: a JSON object of non-blank string keys
    (at most 255 characters) and non-blank string values (at most 1023).
    Anything that is not such an object (``null`` included, which Manila
    fails on with a 500) is Manila's "Malformed request body"."""
    if not isinstance(metadata, dict):
        raise InvalidInput("metadata is not an object", user_message=MALFORMED)
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidInput(f"metadata {key!r}: {value!r} is not text", user_message=MALFORMED)
        if not key:
            raise InvalidInput("blank metadata key", user_message="Metadata property key is blank.")
        if len(key) > KEY_MAX:
            raise InvalidInput("long metadata key",
                               user_message=f"Metadata property key is greater than {KEY_MAX} characters.")
        if not value:
            raise InvalidInput("blank metadata value", user_message="Metadata property value is blank.")
        if len(value) > VALUE_MAX:
            raise InvalidInput("long metadata value",
                               user_message=f"Metadata property value is greater than {VALUE_MAX} characters.")
        if "\x00" in key or "\x00" in value:
            raise InvalidInput("NUL in metadata", user_message=MALFORMED)
    return dict(metadata)


def body_metadata(body: Any, key: str = "metadata") -> dict[str, str]:
    if not isinstance(body, dict) or key not in body:
        raise InvalidInput(f"no {key} in the body", user_message=MALFORMED)
    return check_properties(body[key])


class ShareMetadataService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime]):
        self._db = db
        self._clock = clock

    def _share(self, session: Session, caller: Caller, share_id: str, *, modify: bool) -> Share:
        try:
            share = shares_db.get(session, share_id, caller.scope)
        except NotFound:
            raise NotFound(f"share {share_id} not found", user_message=SHARE_NOT_FOUND) from None
        if modify:
            # Another project's public share is visible but not the caller's
            # to change; Manila's metadata controller names share:get then.
            policy.enforce(caller, "share:update_share_metadata", target=share,
                           message="Policy doesn't allow share:get to be performed.")
        return share

    def get_all(self, caller: Caller, share_id: str) -> dict[str, str]:
        with self._db.read() as s:
            self._share(s, caller, share_id, modify=False)
            return metadata_db.get_all(s, share_id)

    def get_item(self, caller: Caller, share_id: str, key: str) -> dict[str, str]:
        with self._db.read() as s:
            self._share(s, caller, share_id, modify=False)
            return {key: metadata_db.get_item(s, share_id, key)}

    def update(self, caller: Caller, share_id: str, body: Any) -> dict[str, str]:
        """POST: merge into the share's metadata; returns all of it."""
        items = body_metadata(body)
        with self._db.write() as s:
            self._share(s, caller, share_id, modify=True)
            metadata_db.upsert(s, share_id, items)
            return metadata_db.get_all(s, share_id)

    def replace(self, caller: Caller, share_id: str, body: Any) -> dict[str, str]:
        """PUT: the share's metadata becomes exactly this; returns it."""
        items = body_metadata(body)
        with self._db.write() as s:
            self._share(s, caller, share_id, modify=True)
            metadata_db.delete_keys(s, share_id)
            metadata_db.upsert(s, share_id, items)
            return metadata_db.get_all(s, share_id)

    def update_item(self, caller: Caller, share_id: str, key: str, body: Any) -> dict[str, str]:
        """POST on ``/metadata/{key}``: one item, whose key must be the URI's.
        (Manila reads ``metadata``; ``meta``, what its ``is_valid_body`` asks
        for, is accepted too.)"""
        field = "meta" if isinstance(body, dict) and "meta" in body and "metadata" not in body else "metadata"
        items = body_metadata(body, field)
        if key not in items:
            raise InvalidInput("key mismatch", user_message="Request body and URI mismatch")
        if len(items) > 1:
            raise InvalidInput("several items", user_message="Request body contains too many items")
        with self._db.write() as s:
            self._share(s, caller, share_id, modify=True)
            metadata_db.upsert(s, share_id, items)
            return items

    def delete_item(self, caller: Caller, share_id: str, key: str) -> None:
        with self._db.write() as s:
            self._share(s, caller, share_id, modify=True)
            metadata_db.get_item(s, share_id, key)
            metadata_db.delete_keys(s, share_id, [key])
