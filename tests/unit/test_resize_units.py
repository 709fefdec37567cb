"""Pure pieces of extend and shrink: qgroup limits parsed from btrfs, the
size a request may ask for, and which failure leaves which status."""

from __future__ import annotations

import pytest
from taskflow.types.failure import Failure

from shareflow.domain import states
from shareflow.engine.outcomes import DRIVER_FAILED_EXTEND, failure_outcome
from shareflow.exceptions import (
    SHRINK_REFUSED_MESSAGE,
    InjectedFault,
    InvalidInput,
    ShrinkWouldLoseData,
    StorageError,
)
from shareflow.services.resize import NEW_SIZE_MESSAGE, new_size
from shareflow.system.btrfs import parse_qgroup_show

SHOW_LIMITS = """\
Qgroupid    Referenced    Exclusive  Max referenced   Path 
--------    ----------    ---------  --------------   ---- 
0/5              16384        16384            none   <toplevel>
0/256         10502144     10502144       104857600   shares/a b
0/257            16384        16384            none   <stale>
"""


def test_qgroup_limits_are_parsed():
    top, share, stale = parse_qgroup_show(SHOW_LIMITS, limits=True)
    assert (top.id, top.max_referenced, top.path) == (5, None, "<toplevel>")
    assert (share.id, share.referenced, share.max_referenced, share.path) == (256, 10502144, 104857600, "shares/a b")
    assert (stale.max_referenced, stale.path) == (None, None)
    # Without limits the limit column is not there to read.
    assert all(g.max_referenced is None for g in parse_qgroup_show("0/256 1 2 s\n"))


@pytest.mark.parametrize("value,expected", [(1, 1), (0, 0), ("7", 7), (2 ** 31 - 1, 2 ** 31 - 1)])
def test_new_size_accepts_whole_numbers(value, expected):
    assert new_size(value) == expected


@pytest.mark.parametrize("value", [True, False, 1.0, "1.0", "-1", -1, "", " 1", "١", None, [], {}, 2 ** 31])
def test_new_size_refuses_anything_else_with_manilas_message(value):
    with pytest.raises(InvalidInput) as e:
        new_size(value)
    assert e.value.user_message == NEW_SIZE_MESSAGE


def _failure(error: Exception, *, reloaded: bool = False) -> Failure:
    try:
        raise error
    except Exception:
        failure = Failure()
    # A failure read back from persistence has no exception object, only type names.
    return Failure.from_dict(failure.to_dict()) if reloaded else failure


@pytest.mark.parametrize("reloaded", [False, True])
def test_a_shrink_refused_for_data_in_use_has_its_own_status(reloaded):
    outcome = failure_outcome("shrink_share", "resize_volume", _failure(ShrinkWouldLoseData("x"), reloaded=reloaded))
    assert outcome.status == states.SHRINKING_POSSIBLE_DATA_LOSS_ERROR
    assert (outcome.detail_id, outcome.detail) == ("018", SHRINK_REFUSED_MESSAGE)
    assert states.is_allowed(states.SHARE, states.SHRINKING, outcome.status)
    # and from there, as in Manila, the share may be shrunk again.
    assert states.is_allowed(states.SHARE, outcome.status, states.SHRINKING)


def test_other_failures_get_the_operations_failed_status():
    assert failure_outcome("shrink_share", "resize_volume", _failure(StorageError("x"))) is None
    assert failure_outcome("shrink_share", "finish", _failure(ShrinkWouldLoseData("x"))) is None
    assert failure_outcome("shrink_share", None, None) is None
    extend = failure_outcome("extend_share", "resize_volume", _failure(InjectedFault("resize_volume")))
    assert (extend.status, extend.detail_id, extend.detail) == (None, "015", DRIVER_FAILED_EXTEND)
    assert failure_outcome("extend_share", "finish", _failure(StorageError("x"))) is None
    assert states.operation("extend_share").failed == states.EXTENDING_ERROR
    assert states.operation("shrink_share").failed == states.SHRINKING_ERROR
