"""A share create's ``scheduler_hints`` (Manila 2.65 ``same_host`` /
``different_host``, 2.67 ``only_host``): checked before anything is written,
kept where Manila keeps them, and resolved for the scheduler.

Manila keeps the affinity hints as share metadata, shown to clients: the new
share's ``__affinity_same_host`` / ``__affinity_different_host`` list the
shares it named (comma-separated ids), and each named share lists the new
one under the same key; deleting a share takes its id out of the others'
lists again. The scheduler (the API's in the create, or a conductor's
scheduling job: ``shareflow.engine.placement.choose``) reads them back from
the new share's metadata (Manila's
``populate_filter_properties_scheduler_hints``). ``only_host`` is not
metadata in Manila either: the API passes it to its scheduler, or in the
``schedule_share`` job's store.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from shareflow.db import metadata as metadata_db
from shareflow.db import shares as shares_db
from shareflow.exceptions import InvalidInput
from shareflow.services.context import Caller

SAME_HOST, DIFFERENT_HOST, ONLY_HOST = "same_host", "different_host", "only_host"
#: manila.common.constants.AdminOnlyMetadata
AFFINITY_KEY = "__affinity_same_host"
ANTI_AFFINITY_KEY = "__affinity_different_host"
KEYS = {SAME_HOST: AFFINITY_KEY, DIFFERENT_HOST: ANTI_AFFINITY_KEY}


@dataclass(frozen=True)
class Hints:
    same_host: tuple[str, ...] = ()
    different_host: tuple[str, ...] = ()
    only_host: str | None = None


def _share_ids(value) -> tuple[str, ...]:
    if not isinstance(value, str):
        raise InvalidInput(f"{value!r} is not a valid uuid.")
    ids = []
    for item in value.split(","):
        try:
            uuid.UUID(item)
        except ValueError:
            raise InvalidInput(f"{item} is not a valid uuid.") from None
        ids.append(item)
    return tuple(ids)


def _only_host(value) -> str:
    """``host@backend#pool`` or ``host@backend``."""
    if isinstance(value, str):
        host, at, rest = value.partition("@")
        backend, hash_, pool = rest.partition("#")
        if host and at and backend and "@" not in rest and (not hash_ or (pool and "#" not in pool)):
            return value
    raise InvalidInput(f"only_host {value!r} is not host@backend#pool or host@backend.")


def parse(hints, caller: Caller, *, only_host_allowed: bool) -> Hints:
    """The hints of a create request, checked for shape (Manila's 400s).
    Unknown keys are ignored, as Manila does. ``only_host`` is an admin's
    (Manila's OnlyHostFilter ignores anyone else's) and only from 2.67."""
    if hints is None:
        return Hints()
    if not isinstance(hints, Mapping):
        raise InvalidInput("scheduler_hints must be a dictionary.")
    # An empty value is no hint (Manila: ``if same_host_uuids``).
    same = _share_ids(hints[SAME_HOST]) if hints.get(SAME_HOST) else ()
    different = _share_ids(hints[DIFFERENT_HOST]) if hints.get(DIFFERENT_HOST) else ()
    only = None
    if only_host_allowed and caller.is_admin and hints.get(ONLY_HOST) is not None:
        only = _only_host(hints[ONLY_HOST])
    return Hints(same_host=same, different_host=different, only_host=only)


def check(session: Session, caller: Caller, hints: Hints) -> None:
    """Every share named exists for the caller (Manila's ShareNotFound, 404)."""
    for share_id in (*hints.same_host, *hints.different_host):
        shares_db.get(session, share_id, caller.scope)


def own_metadata(hints: Hints) -> dict[str, str]:
    """The new share's metadata items for its hints."""
    out = {}
    for hint, key in KEYS.items():
        ids = getattr(hints, hint)
        if ids:
            out[key] = ",".join(ids)
    return out


def link(session: Session, share_id: str, hints: Hints) -> None:
    """Add the new share's id to each named share's list (Manila's
    ``_save_scheduler_hints``)."""
    for hint, key in KEYS.items():
        for other in dict.fromkeys(getattr(hints, hint)):
            current = metadata_db.get_all(session, other).get(key)
            ids = current.split(",") if current else []
            if share_id not in ids:
                metadata_db.upsert(session, other, {key: ",".join([*ids, share_id])})


def unlink(session: Session, share_id: str) -> None:
    """Take a deleted share's id out of the lists of the shares its hints
    named (Manila's ``delete_scheduler_hints``)."""
    own = metadata_db.get_all(session, share_id)
    for key in KEYS.values():
        if not own.get(key):
            continue
        for other in own[key].split(","):
            current = metadata_db.get_all(session, other).get(key)
            if current is None:
                continue
            left = [i for i in current.split(",") if i != share_id]
            if left:
                metadata_db.upsert(session, other, {key: ",".join(left)})
            else:
                metadata_db.delete_keys(session, other, [key])


def resolve(session: Session, metadata: Mapping[str, str]) -> tuple[frozenset[str] | None, frozenset[str]]:
    """(``same_host``, ``different_host``) for the scheduler, from a new
    share's metadata: the pools that hold every share its ``same_host`` names
    (None: no such hint), and the pools that hold any its ``different_host``
    names. A named share deleted or unplaced meanwhile is on no pool, so a
    ``same_host`` naming it leaves no pool (Manila stops scheduling then)."""
    def hosts(share_id: str) -> set[str]:
        share = shares_db.get_any(session, share_id)
        if share is None or share.deleted_at is not None or not share.host:
            return set()
        return {share.host}

    same = None
    if metadata.get(AFFINITY_KEY):
        sets = [hosts(i) for i in metadata[AFFINITY_KEY].split(",")]
        same = frozenset(set.intersection(*sets))
    different: set[str] = set()
    if metadata.get(ANTI_AFFINITY_KEY):
        for i in metadata[ANTI_AFFINITY_KEY].split(","):
            different |= hosts(i)
    return same, frozenset(different)

