"""Queries on share metadata (manila/db/sqlalchemy/api.py ``share_metadata_*``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shareflow.db.models import ShareMetadata
from shareflow.exceptions import NotFound

#: manila.exception.MetadataItemNotFound
ITEM_NOT_FOUND = "Metadata item is not found."


def get_all(session: Session, share_id: str) -> dict[str, str]:
    rows = session.scalars(
        sa.select(ShareMetadata).where(ShareMetadata.share_id == share_id).order_by(ShareMetadata.key)
    )
    return {row.key: row.value for row in rows}


def get_item(session: Session, share_id: str, key: str) -> str:
    value = session.scalar(
        sa.select(ShareMetadata.value).where(ShareMetadata.share_id == share_id, ShareMetadata.key == key)
    )
    if value is None:
        raise NotFound(f"share {share_id} has no metadata key {key!r}", user_message=ITEM_NOT_FOUND)
    return value


def upsert(session: Session, share_id: str, items: dict[str, str]) -> None:
    """Set each key to its value, creating the keys that are new."""
    existing = {
        row.key: row
        for row in session.scalars(
            sa.select(ShareMetadata).where(ShareMetadata.share_id == share_id,
                                           ShareMetadata.key.in_(sorted(items)))
        )
    }
    for key, value in items.items():
        if key in existing:
            existing[key].value = value
        else:
            session.add(ShareMetadata(share_id=share_id, key=key, value=value))
    session.flush()


def delete_keys(session: Session, share_id: str, keys: list[str] | None = None) -> int:
    """Delete these keys (None: all of them); returns how many went."""
    stmt = sa.delete(ShareMetadata).where(ShareMetadata.share_id == share_id)
    if keys is not None:
        stmt = stmt.where(ShareMetadata.key.in_(sorted(keys)))
    return session.execute(stmt.execution_options(synchronize_session=False)).rowcount
