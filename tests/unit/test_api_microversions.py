"""Microversion header parsing and comparisons (pure)."""

from __future__ import annotations

import pytest

from shareflow.api import microversions as mv
from shareflow.exceptions import InvalidInput, VersionNotAcceptable


def test_absent_header_is_the_minimum():
    assert mv.from_header(None) == mv.APIVersion(2, 0)


@pytest.mark.parametrize("value", ["latest", "LATEST", " Latest "])
def test_latest_is_the_maximum(value):
    assert mv.from_header(value) == mv.MAX
    assert str(mv.MAX) == mv.MAX_VERSION == "2.67"


@pytest.mark.parametrize("value, expected", [("2.0", (2, 0)), ("2.9", (2, 9)), ("2.65", (2, 65)), ("2.67", (2, 67)),
                                             (" 2.10 ", (2, 10))])
def test_valid_versions(value, expected):
    assert mv.from_header(value) == mv.APIVersion(*expected)


@pytest.mark.parametrize("value", ["", "2", "2.", ".1", "2.01", "02.1", "v2.1", "2.1.1", "abc",
                                   "2.x", "2,1", "-2.1", "2.1a", "x" * 5000])
def test_malformed_versions_are_400_with_manilas_message(value):
    with pytest.raises(InvalidInput) as e:
        mv.from_header(value)
    assert e.value.http_status == 400
    assert "is of invalid format. Must be of format MajorNum.MinorNum." in e.value.user_message
    assert len(e.value.user_message) < 200


@pytest.mark.parametrize("value", ["1.0", "2.68", "2.99", "3.0", "99999999999999999999.0"])
def test_out_of_range_versions_are_406_with_manilas_message(value):
    with pytest.raises(VersionNotAcceptable) as e:
        mv.from_header(value)
    assert e.value.http_status == 406
    assert e.value.user_message == (
        f"Version {value} is not supported by the API. Minimum is 2.0 and maximum is 2.67."
    )


def test_comparisons_are_numeric_not_textual():
    v = mv.parse("2.10")
    assert v > mv.parse("2.9")
    assert v.at_least("2.9") and v.at_least("2.10") and not v.at_least("2.11")
    assert v.before("2.11") and not v.before("2.10")
    assert v.within("2.7", "2.44") and v.within("2.10", "2.10") and v.within("2.0")
    assert not v.within("2.0", "2.6") and not v.within("2.11")
