"""Matching one extra spec value against one reported capability, Manila's way.

A share type's extra spec is a string that may start with an operator word
(``"<is> True"``, ``">= 10"``, ``"<or> nfs <or> cifs"``, ``"s== dr"``); without
one it is a plain value. The semantics follow Manila's
``manila/scheduler/filters/extra_specs_ops.py`` so that share types written
for Manila place shares the same way here, quirks included:

- both sides are compared lower-cased (so ``s==`` is case-insensitive too);
- ``=`` is "at least" (numeric ``>=``), for historical reasons;
- ``==``, ``!=``, ``>=``, ``<=`` compare as floats, and a capability that is
  not a number fails them;
- ``<in>`` is a substring test on a string capability;
- a plain value matches a boolean capability by its truth
  (``True``/``true``/``yes``/``1``), anything else only by equality with the
  lower-cased spec (so a numeric capability never equals a plain spec string).

One operator Manila lacks is added from Cinder: ``<all-in> a b`` requires every
word in the capability (an element of a list capability, a substring of a
string one). Manila's ``<range-in>`` does not exist, so neither does ours.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

#: oslo.utils ``strutils``' spellings of truth and falsehood.
TRUE_STRINGS = frozenset({"1", "t", "true", "on", "y", "yes"})
FALSE_STRINGS = frozenset({"0", "f", "false", "off", "n", "no"})


def bool_from_string(subject: Any, default: Any = False) -> Any:
    """A bool from a bool or a string; ``default`` when it is neither spelling."""
    if isinstance(subject, bool):
        return subject
    lowered = str(subject).strip().lower()
    if lowered in TRUE_STRINGS:
        return True
    if lowered in FALSE_STRINGS:
        return False
    return default


def _numeric(op: Callable[[float, float], bool]) -> Callable[[Any, str], bool]:
    return lambda value, req: op(float(value), float(req))


#: Operators taking exactly one argument after them.
BINARY_OPERATORS: dict[str, Callable[[Any, str], bool]] = {
    "=": _numeric(operator.ge),
    "==": _numeric(operator.eq),
    "!=": _numeric(operator.ne),
    ">=": _numeric(operator.ge),
    "<=": _numeric(operator.le),
    "<in>": lambda value, req: req in value,
    "<is>": lambda value, req: bool_from_string(value) is bool_from_string(req),
    "s==": operator.eq,
    "s!=": operator.ne,
    "s<": operator.lt,
    "s<=": operator.le,
    "s>": operator.gt,
    "s>=": operator.ge,
}
OR = "<or>"
ALL_IN = "<all-in>"
#: Every operator word a spec may start with.
OPERATORS = frozenset(BINARY_OPERATORS) | {OR, ALL_IN}


def match(value: Any, req: str) -> bool:
    """Whether the capability ``value`` satisfies the extra spec ``req``."""
    if isinstance(value, str):
        value = value.lower()
    req = req.lower()
    words = req.split()
    op = words.pop(0) if words else None

    if op not in OPERATORS:
        # A plain value: the whole string, spaces and all.
        if type(value) is bool:
            return value == bool_from_string(req, default=req)
        return value == req

    if value is None:
        return False
    if op == OR:
        return _match_or(value, [op, *words])
    if op == ALL_IN:
        return match_all_in(value, req)
    if not words:
        return False
    try:
        return bool(BINARY_OPERATORS[op](value, words[0]))
    except (TypeError, ValueError):
        # A capability of the wrong kind for the operator never matches.
        return False


def _match_or(value: Any, words: list[str]) -> bool:
    """``<or> a <or> b ...``: every other word is a value (Manila does not
    check what separates them)."""
    for i in range(1, len(words), 2):
        if words[i] == value:
            return True
    return False


def match_all_in(capability: Any, req: str) -> bool:
    """``<all-in> a b``: every word is an element of a list capability or a
    substring of a string one. Applied to the capability as a whole, not
    element by element (that would be ``<in>``)."""
    words = req.lower().split()[1:]
    if not words or capability is None:
        return False
    if isinstance(capability, (list, tuple, set, frozenset)):
        have = {c.lower() if isinstance(c, str) else c for c in capability}
        return all(w in have for w in words)
    if isinstance(capability, str):
        lowered = capability.lower()
        return all(w in lowered for w in words)
    return False


def operator_of(req: str) -> str | None:
    """The operator word ``req`` starts with, or None for a plain value."""
    words = req.lower().split()
    return words[0] if words and words[0] in OPERATORS else None
