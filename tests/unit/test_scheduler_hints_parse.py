"""The shape checks of a create's scheduler_hints (Manila's 400s), before
any database is touched."""

from __future__ import annotations

import uuid

import pytest

from shareflow.exceptions import InvalidInput
from shareflow.services import scheduler_hints as hints
from shareflow.services.context import Caller

MEMBER = Caller(project_id="p1", user_id="u1")
ADMIN = Caller(project_id="admin", user_id="root", is_admin=True)


def test_affinity_hints_are_split_into_share_ids():
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    parsed = hints.parse({"same_host": f"{a},{b}", "different_host": a, "other": "x"}, MEMBER,
                         only_host_allowed=True)
    assert parsed == hints.Hints(same_host=(a, b), different_host=(a,))
    assert hints.own_metadata(parsed) == {"__affinity_same_host": f"{a},{b}",
                                          "__affinity_different_host": a}
    assert hints.parse(None, MEMBER, only_host_allowed=True) == hints.Hints()
    assert hints.parse({"same_host": ""}, MEMBER, only_host_allowed=True) == hints.Hints()


@pytest.mark.parametrize("value, message", [
    ("not-a-uuid", "not-a-uuid is not a valid uuid."),
    (f"{uuid.uuid4()},bad", "bad is not a valid uuid."),
    (5, "5 is not a valid uuid."),
])
def test_a_value_that_is_not_share_ids_is_refused(value, message):
    with pytest.raises(InvalidInput) as e:
        hints.parse({"same_host": value}, MEMBER, only_host_allowed=True)
    assert e.value.user_message == message
    with pytest.raises(InvalidInput):
        hints.parse({"different_host": value}, MEMBER, only_host_allowed=True)


def test_hints_must_be_an_object():
    with pytest.raises(InvalidInput):
        hints.parse(["same_host"], MEMBER, only_host_allowed=True)


def test_only_host_is_an_admins_and_from_2_67():
    assert hints.parse({"only_host": "h@b#p"}, ADMIN, only_host_allowed=True).only_host == "h@b#p"
    assert hints.parse({"only_host": "h@b"}, ADMIN, only_host_allowed=True).only_host == "h@b"
    # A member's is ignored (Manila's OnlyHostFilter skips non-admins), and below 2.67 anyone's.
    assert hints.parse({"only_host": "h@b#p"}, MEMBER, only_host_allowed=True).only_host is None
    assert hints.parse({"only_host": "h@b#p"}, ADMIN, only_host_allowed=False).only_host is None
    for bad in ("h", "h@", "@b", "h@b#", "h@b#p#q", 7):
        with pytest.raises(InvalidInput):
            hints.parse({"only_host": bad}, ADMIN, only_host_allowed=True)
