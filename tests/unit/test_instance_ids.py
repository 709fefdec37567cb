"""Instance ids derived from share and snapshot ids (shareflow.domain.instance_ids)."""

from __future__ import annotations

import uuid

from shareflow.domain import instance_ids


def test_instance_ids_are_stable_distinct_reversible_uuids():
    for _ in range(200):
        share_id = str(uuid.uuid4())
        iid = instance_ids.share_instance_id(share_id)
        sid = instance_ids.snapshot_instance_id(share_id)
        assert len({share_id, iid, sid}) == 3
        assert iid == instance_ids.share_instance_id(share_id)
        assert instance_ids.share_of_instance(iid) == share_id
        assert instance_ids.snapshot_of_instance(sid) == share_id
        parsed = uuid.UUID(iid)
        assert str(parsed) == iid and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_an_id_that_is_no_uuid_names_no_share():
    for junk in ("", "x", "share-1", None, 7):
        assert instance_ids.share_of_instance(junk) is None
        assert instance_ids.snapshot_of_instance(junk) is None
