"""Every extra spec operator, Manila's semantics (quirks included)."""

from __future__ import annotations

import pytest

from shareflow.scheduler.extra_specs_ops import OPERATORS, bool_from_string, match, operator_of


@pytest.mark.parametrize(
    "value,req,expected",
    [
        # Plain values: equality of lower-cased strings.
        ("NFS", "nfs", True),
        ("NFS", "CIFS", False),
        ("two words", "two words", True),
        # ...and booleans by their truth, in any of oslo's spellings.
        (True, "True", True),
        (True, "true", True),
        (True, "yes", True),
        (True, "1", True),
        (True, "False", False),
        (False, "false", True),
        (False, "no", True),
        (False, "True", False),
        # A plain number never equals a spec string (Manila compares value == req).
        (100, "100", False),
        (None, "x", False),
        # <is>: booleans, whatever their spelling on either side.
        (True, "<is> True", True),
        (True, "<is> true", True),
        ("true", "<is> True", True),
        (False, "<is> True", False),
        (False, "<is> False", True),
        (True, "<is> False", False),
        (True, "<is>", False),
        (None, "<is> False", False),
        # =: at least, numerically.
        (10, "= 10", True),
        (11, "= 10", True),
        (9, "= 10", False),
        ("10.5", "= 10", True),
        ("abc", "= 10", False),
        # ==, !=, >=, <=: numeric.
        (10, "== 10", True),
        (10.0, "== 10", True),
        (11, "== 10", False),
        (11, "!= 10", True),
        (10, "!= 10", False),
        (10, ">= 10", True),
        (9, ">= 10", False),
        (10, "<= 10", True),
        (11, "<= 10", False),
        ("fast", ">= 1", False),
        ([1], ">= 1", False),
        # <in>: substring of a string capability.
        ("sse4_1", "<in> sse4", True),
        ("NFS_CIFS", "<in> nfs", True),
        ("CIFS", "<in> nfs", False),
        # <or>: one of the words.
        ("nfs", "<or> nfs <or> cifs", True),
        ("CIFS", "<or> nfs <or> cifs", True),
        ("cephfs", "<or> nfs <or> cifs", False),
        ("3", "<or> 1 <or> 3 <or> 7", True),
        ("x", "<or>", False),
        # s==, s!=, s<, s<=, s>, s>=: string comparisons (lower-cased).
        ("dr", "s== dr", True),
        ("DR", "s== dr", True),
        ("readable", "s== dr", False),
        ("cephfs", "s!= cephfs", False),
        ("lvm", "s!= cephfs", True),
        ("abc", "s< abd", True),
        ("abd", "s< abd", False),
        ("abd", "s<= abd", True),
        ("abe", "s<= abd", False),
        ("abe", "s> abd", True),
        ("abd", "s> abd", False),
        ("abd", "s>= abd", True),
        ("abc", "s>= abd", False),
        # <all-in> (Cinder's): every word present.
        ("compression dedupe", "<all-in> dedupe compression", True),
        ("compression", "<all-in> dedupe compression", False),
        (["NFS", "CIFS"], "<all-in> nfs cifs", True),
        (["NFS"], "<all-in> nfs cifs", False),
        (7, "<all-in> 7", False),
    ],
)
def test_match(value, req, expected):
    assert match(value, req) is expected


def test_every_operator_is_covered():
    assert OPERATORS == {"=", "==", "!=", ">=", "<=", "<in>", "<is>", "<or>", "<all-in>",
                         "s==", "s!=", "s<", "s<=", "s>", "s>="}


def test_an_unknown_first_word_makes_a_plain_value():
    assert operator_of("<range-in> 1 2") is None
    assert match("<range-in> 1 2", "<range-in> 1 2")
    assert not match(1, "<range-in> 1 2")
    assert operator_of("<IS> true") == "<is>"


def test_bool_from_string():
    assert bool_from_string(" YES ") is True
    assert bool_from_string("off") is False
    assert bool_from_string("maybe") is False
    assert bool_from_string("maybe", default=None) is None
    assert bool_from_string(True) is True
