"""The DriverFilter's evaluator: Manila's filter-function language, and what it refuses."""

from __future__ import annotations

import pytest

from shareflow.scheduler import evaluator
from shareflow.scheduler.evaluator import EvaluatorError, evaluate

VARS = {
    "share": {"size": 10, "share_proto": "NFS"},
    "stats": {"total_capacity_gb": 100, "free_capacity_gb": 40.5, "host": "h1@a#pool0"},
    "capabilities": {"thin_provisioning": True, "tier": "2", "_secret": 1},
    "extra": {"min_tier": "1", "label": "gold"},
}


def ev(text: str):
    return evaluate(text, **VARS)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("2 ^ 10", 1024),
        ("-share.size + 1", -9),
        ("share.size < 20", True),
        ("share.size >= 20", False),
        ("1 < share.size < 20", True),
        ("share.size == 10 and stats.free_capacity_gb > 40", True),
        ("share.size == 10 AND stats.free_capacity_gb > 50", False),
        ("share.size == 1 or capabilities.thin_provisioning", True),
        ("share.size == 1 OR share.size == 2", False),
        ("share.size == 10 && share.size != 11", True),
        ("share.size == 1 || share.size <> 10", False),
        ("not share.size == 10", False),
        ("!capabilities.thin_provisioning", False),
        ("NOT (share.size > 20)", True),
        ("share.size < 5 ? 100 : 50", 50),
        ("share.size > 5 ? share.size * 2 : 0", 20),
        ("share.size > 50 ? 1 : share.size > 5 ? 2 : 3", 2),
        ("capabilities.tier >= extra.min_tier", True),   # numeric strings are numbers
        ("capabilities.tier + 1", 3),
        ("extra.label == 'gold'", True),
        ('extra.label == "silver"', False),
        ("extra.label == gold", True),                   # a bare word is a string, as in Manila
        ("capabilities.thin_provisioning == true", True),
        ("capabilities.thin_provisioning == True", True),
        ("max(1, share.size, 3)", 10),
        ("min(4, share.size)", 4),
        ("abs(-3.5)", 3.5),
        ("stats.host == 'h1@a#pool0'", True),
        ("extra_specs.min_tier == 1", True),
    ],
)
def test_manila_expressions(text, expected):
    assert ev(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # imports and calls
        "__import__('os')",
        "__import__('os').system('id')",
        "open('/etc/passwd')",
        "eval('1')",
        "getattr(share, 'size')",
        "capabilities.keys()",
        "max(*[1, 2])",
        "max(x=1)",
        "import os",
        "lambda: 1",
        # dunders and attributes beyond one level below a variable
        "share.__class__",
        "capabilities._secret",
        "share.size.__class__",
        "(1).__class__",
        "''.__class__.__mro__",
        "os.system",
        "__builtins__",
        "_x",
        # constructs outside the language
        "[1, 2][0]",
        "{'a': 1}",
        "share.size if 1 else 2 for x in y",
        "1 in share",
        "share is None",
        "x := 1",
        "f'{share}'",
        "1; 2",
        "a = 1",
        "share.size ? 1",
        "(1",
        "1)",
        "",
        "x" * (evaluator.MAX_LENGTH + 1),
    ],
)
def test_unsafe_or_malformed_expressions_are_refused(text):
    # Refused by the checks, before anything is evaluated.
    with pytest.raises(EvaluatorError):
        evaluator.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "extra.missing == 1",        # unknown variable
        "share",                     # a root without a name
        "1 / 0",
        "9 ^ 9 ^ 9",                 # bounded exponent
        "10.0 ^ 1000",               # overflow
        "'ab' * 1000",               # no string arithmetic
        "extra.label + 1",
        "extra.label < 1",           # incomparable
        "abs(1, 2)",
    ],
)
def test_errors_while_evaluating_are_evaluator_errors(text):
    with pytest.raises(EvaluatorError):
        ev(text)


def test_parse_checks_once_and_evaluates_many_times():
    expr = evaluator.parse("share.size <= 10")
    assert expr is evaluator.parse("share.size <= 10")
    assert expr.evaluate({"share": {"size": 10}}) is True
    assert expr.evaluate({"share": {"size": 11}}) is False
