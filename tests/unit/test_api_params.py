"""Query-string validation (pure): bad values are 400s, never database errors."""

from __future__ import annotations

import pytest

from shareflow.api import params as qp
from shareflow.exceptions import InvalidInput

SORT = {"created_at": "created_at", "name": "name", "display_name": "name"}


def test_repeated_parameter_keeps_the_last_value():
    assert qp.flatten({"a": ["1", "2"], "b": "x"}) == {"a": "2", "b": "x"}


@pytest.mark.parametrize("value, expected", [(None, None), ("0", 1000), ("5", 5), ("100000", 1000)])
def test_limit(value, expected):
    assert qp.limit(value) == expected


@pytest.mark.parametrize("value", ["-1", "x", "1.5", "", "9" * 5000])
def test_bad_limit(value):
    with pytest.raises(InvalidInput):
        qp.limit(value)


@pytest.mark.parametrize("value", ["-1", "x", str(qp.DB_MAX_INT + 1)])
def test_bad_offset(value):
    with pytest.raises(InvalidInput):
        qp.offset(value)


def test_offset():
    assert qp.offset(None) == 0 and qp.offset("7") == 7


def test_sort_maps_aliases_and_rejects_unknown_keys_and_directions():
    assert qp.sort({}, SORT) == ("created_at", "desc")
    assert qp.sort({"sort_key": "display_name", "sort_dir": "ASC"}, SORT) == ("name", "asc")
    with pytest.raises(InvalidInput, match="Wrong sorting key"):
        qp.sort({"sort_key": "__class__"}, SORT)
    with pytest.raises(InvalidInput, match="sort direction"):
        qp.sort({"sort_dir": "sideways"}, SORT)


def test_all_tenants_follows_manila():
    assert qp.all_tenants({}) is False
    assert qp.all_tenants({"all_tenants": ""}) is True
    assert qp.all_tenants({"all_tenants": "1"}) is True
    assert qp.all_tenants({"all_tenants": "false"}) is False
    with pytest.raises(InvalidInput):
        qp.all_tenants({"all_tenants": "maybe"})


@pytest.mark.parametrize("value", ["{'a': 1}", "[1]", "__import__('os')", "{", "{'a': {'b': 'c'}}",
                                   "(" * 500 + ")" * 500, "x" * 5000])
def test_bad_metadata_literals(value):
    with pytest.raises(InvalidInput):
        qp.literal_dict(value, "metadata")


def test_metadata_literal():
    assert qp.literal_dict("{'k': 'v'}", "metadata") == {"k": "v"}
