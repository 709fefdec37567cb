"""Metadata on access rules (Manila 2.45, manila/api/v2/share_access_metadata.py):
set keys (merged into the rule's metadata) and delete one key. The rule is
looked up as ``GET /share-access-rules/{id}`` does (an unknown rule, or one
of a share the caller cannot see, is 404); changing it needs the share's own
project (or an admin), as Manila's share-level checks do. Keys and values
are checked as Manila checks share metadata (``check_metadata_properties``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa

from shareflow.db import access as access_db
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import AccessRule
from shareflow.exceptions import NotFound
from shareflow.services.context import Caller
from shareflow.services.metadata import check_properties


def rule_not_found(rule_id: str) -> NotFound:
    # manila/api/v2/share_accesses.py ``_get_share_access``
    return NotFound(f"Share access rule {rule_id} not found.")


class AccessMetadataService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime]):
        self._db = db
        self._clock = clock

    @staticmethod
    def _rule(session, caller: Caller, rule_id: str) -> AccessRule:
        try:
            rule = access_db.get(session, rule_id)
            shares_db.owned(session, rule.share_id, caller.scope)
        except NotFound:
            raise rule_not_found(rule_id) from None
        return rule

    def update(self, caller: Caller, rule_id: str, metadata) -> dict[str, str]:
        """Merge ``metadata`` into the rule's; answers the keys set (as Manila)."""
        items = check_properties(metadata)
        with self._db.write() as s:
            self._rule(s, caller, rule_id)
            access_db.set_metadata(s, rule_id, items)
            s.execute(sa.update(AccessRule).where(AccessRule.id == rule_id).values(updated_at=self._clock()))
        return items

    def delete(self, caller: Caller, rule_id: str, key: str) -> None:
        with self._db.write() as s:
            self._rule(s, caller, rule_id)
            access_db.delete_metadata_key(s, rule_id, key)
