"""A small, safe evaluator for the ``filter_function`` a driver reports (Manila's
``manila/scheduler/evaluator``), for the DriverFilter.

The language is Manila's: numbers, quoted strings, the variables
``share.<x>``, ``stats.<x>``, ``capabilities.<x>`` and ``extra.<x>`` (also
spelled ``extra_specs.<x>``), ``+ - * / ^``, comparisons ``< <= > >= == != <>``,
``and or not`` (also ``AND OR NOT && || !``), ``cond ? a : b`` and the
functions ``abs``, ``max``, ``min``. A bare word that is not a variable is a
string, as in Manila; ``true``/``false`` are booleans. Numeric strings read
from the variables are numbers (extra specs are strings).

How it stays safe: the text is tokenised by a whitelist of token kinds (no
``[``, ``{``, ``.`` outside a variable name, no ``=`` alone...), the few
spellings Python lacks are rewritten (``&&``, ``^``, ``? :``), the result is
parsed with :func:`ast.parse` and every node checked against a whitelist
(a call only to ``abs``/``max``/``min`` by name; an attribute only one level
below a variable root and never starting with ``_``), and the tree is then
interpreted here, node by node: nothing is ever compiled or ``eval``-ed.
Arithmetic works on numbers only (no string repetition), and powers are
bounded, so an expression cannot exhaust memory or time.
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

#: Longest filter function accepted.
MAX_LENGTH = 1024
#: Largest exponent of ``^`` (a float power overflows to an error beyond).
MAX_EXPONENT = 1024
#: Variable roots, and what each is called in the mapping given to evaluate.
ROOTS = {"share": "share", "stats": "stats", "capabilities": "capabilities",
         "extra": "extra", "extra_specs": "extra"}
FUNCTIONS: dict[str, Callable[..., Any]] = {"abs": abs, "max": max, "min": min}


class EvaluatorError(ValueError):
    """The expression is malformed, refused, or failed while evaluated."""


_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<num>\d+\.\d+|\d+)
      | (?P<str>"[^"\\]*"|'[^'\\]*')
      | (?P<name>[A-Za-z_][A-Za-z_0-9]*(?:\.[A-Za-z_][A-Za-z_0-9]*)?)
      | (?P<op>&&|\|\||<>|<=|>=|==|!=|[-+*/^()<>!?:,])
    """,
    re.VERBOSE,
)
_SPELLINGS = {
    "&&": "and", "||": "or", "!": "not", "<>": "!=", "^": "**",
    "AND": "and", "OR": "or", "NOT": "not",
}


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise EvaluatorError(f"unexpected character {text[pos]!r} at {pos}")
        pos = m.end()
        if m.lastgroup != "ws":
            tok = m.group()
            out.append(_SPELLINGS.get(tok, tok))
    return out


def _group(tokens: list[str]) -> list[Any]:
    """Nest the tokens by parentheses: a sub-list per ``( ... )``."""
    stack: list[list[Any]] = [[]]
    for tok in tokens:
        if tok == "(":
            stack.append([])
        elif tok == ")":
            if len(stack) == 1:
                raise EvaluatorError("unbalanced ')'")
            inner = stack.pop()
            stack[-1].append(inner)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise EvaluatorError("unbalanced '('")
    return stack[0]


def _split(items: list[Any], separators: set[str]) -> list[tuple[str | None, list[Any]]]:
    parts: list[tuple[str | None, list[Any]]] = [(None, [])]
    for item in items:
        if isinstance(item, str) and item in separators:
            parts.append((item, []))
        else:
            parts[-1][1].append(item)
    return parts


def _python(items: list[Any]) -> list[str]:
    """Python tokens for one parenthesised level, ``c ? a : b`` rewritten as
    ``(a) if (c) else (b)``. The ternary binds looser than comparisons and
    tighter than ``and``/``or``, as in Manila's grammar."""
    out: list[str] = []
    for sep, part in _split(items, {",", "and", "or"}):
        if sep is not None:
            out.append(sep)
        out.extend(_ternary(part))
    return out


def _ternary(items: list[Any]) -> list[str]:
    if "?" not in items:
        return _flat(items)
    q = items.index("?")
    depth = 0
    for i in range(q + 1, len(items)):
        if items[i] == "?":
            depth += 1
        elif items[i] == ":":
            if depth == 0:
                break
            depth -= 1
    else:
        raise EvaluatorError("'?' without its ':'")
    cond, then, other = items[:q], items[q + 1:i], items[i + 1:]
    if not cond or not then or not other:
        raise EvaluatorError("incomplete 'condition ? value : value'")
    return ["(", *_ternary(then), ")", "if", "(", *_ternary(cond), ")", "else", "(", *_ternary(other), ")"]


def _flat(items: list[Any]) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, list):
            out.extend(["(", *_python(item), ")"])
        else:
            out.append(item)
    return out


_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.Pow: operator.pow,
}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_UNARY = (ast.Not, ast.USub, ast.UAdd)


def _check(node: ast.AST) -> None:
    """Refuse any node outside the whitelist."""
    if isinstance(node, ast.Expression):
        _check(node.body)
    elif isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
        _check(node.operand)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        _check(node.left)
        _check(node.right)
    elif isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        _check(node.left)
        for c in node.comparators:
            _check(c)
    elif isinstance(node, ast.IfExp):
        _check(node.test)
        _check(node.body)
        _check(node.orelse)
    elif isinstance(node, ast.Constant) and (node.value is None or type(node.value) in (int, float, str, bool)):
        pass
    elif isinstance(node, ast.Name):
        if node.id.startswith("_"):
            raise EvaluatorError(f"name {node.id!r} is not allowed")
    elif isinstance(node, ast.Attribute):
        if not (isinstance(node.value, ast.Name) and node.value.id in ROOTS):
            raise EvaluatorError("only share.*, stats.*, capabilities.* and extra.* may be read")
        if node.attr.startswith("_"):
            raise EvaluatorError(f"attribute {node.attr!r} is not allowed")
    elif isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise EvaluatorError("only abs(), max() and min() may be called")
        if node.keywords or not node.args or any(isinstance(a, ast.Starred) for a in node.args):
            raise EvaluatorError(f"{node.func.id}() takes plain arguments")
        for a in node.args:
            _check(a)
    else:
        raise EvaluatorError(f"{type(node).__name__} is not allowed in a filter function")


class Expression:
    """A checked filter function, ready to evaluate against many pools."""

    def __init__(self, text: str, tree: ast.Expression):
        self.text = text
        self._tree = tree

    def evaluate(self, variables: Mapping[str, Mapping[str, Any]]) -> Any:
        """The value of the expression; ``variables`` maps ``share``,
        ``stats``, ``capabilities`` and ``extra`` to their values."""
        try:
            return _Interpreter(variables).value(self._tree.body)
        except EvaluatorError:
            raise
        except (ArithmeticError, TypeError, ValueError, RecursionError) as e:
            raise EvaluatorError(f"{type(e).__name__}: {e}") from None


@functools.lru_cache(maxsize=256)
def parse(text: str) -> Expression:
    """Check ``text`` and return it as an :class:`Expression`; raise
    :class:`EvaluatorError` when it is malformed or uses anything refused."""
    if not isinstance(text, str):
        raise EvaluatorError("a filter function must be a string")
    if len(text) > MAX_LENGTH:
        raise EvaluatorError(f"a filter function is at most {MAX_LENGTH} characters")
    source = " ".join(_python(_group(_tokens(text))))
    if not source:
        raise EvaluatorError("empty filter function")
    try:
        tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise EvaluatorError(f"not a valid expression: {text!r}") from e
    try:
        _check(tree)
    except RecursionError:
        raise EvaluatorError("expression nested too deeply") from None
    return Expression(text, tree)


def evaluate(text: str, **variables: Mapping[str, Any]) -> Any:
    """Parse and evaluate in one step (Manila's ``evaluator.evaluate``)."""
    return parse(text).evaluate(variables)


def _number_of(value: Any) -> Any:
    """Manila's reading of a variable: numeric strings become numbers."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            try:
                f = float(value)
            except ValueError:
                return value
            return f if math.isfinite(f) else value
    return value


def _numeric(value: Any) -> int | float:
    if isinstance(value, (int, float)):
        return value
    raise EvaluatorError(f"{value!r} is not a number")


class _Interpreter:
    def __init__(self, variables: Mapping[str, Mapping[str, Any]]):
        self._vars = variables

    def value(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            lowered = node.id.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            if node.id in ROOTS:
                raise EvaluatorError(f"{node.id} needs a name after it ({node.id}.<name>)")
            # Manila reads an unknown bare word as a string.
            return node.id
        if isinstance(node, ast.Attribute):
            assert isinstance(node.value, ast.Name)
            scope = self._vars.get(ROOTS[node.value.id]) or {}
            if node.attr not in scope:
                raise EvaluatorError(f"{node.value.id}.{node.attr} is not known")
            return _number_of(scope[node.attr])
        if isinstance(node, ast.BoolOp):
            result: Any = None
            for v in node.values:
                result = self.value(v)
                if isinstance(node.op, ast.And) and not result:
                    return result
                if isinstance(node.op, ast.Or) and result:
                    return result
            return result
        if isinstance(node, ast.UnaryOp):
            operand = self.value(node.operand)
            if isinstance(node.op, ast.Not):
                return not operand
            n = _numeric(operand)
            return -n if isinstance(node.op, ast.USub) else +n
        if isinstance(node, ast.BinOp):
            left = _numeric(self.value(node.left))
            right = _numeric(self.value(node.right))
            if isinstance(node.op, ast.Div):
                if right == 0:
                    raise EvaluatorError("division by zero")
                return left / float(right)
            if isinstance(node.op, ast.Pow):
                if abs(right) > MAX_EXPONENT:
                    raise EvaluatorError(f"exponent {right} is too large")
                result = math.pow(float(left), float(right))
                return int(result) if isinstance(left, int) and isinstance(right, int) and right >= 0 \
                    and result.is_integer() and abs(result) < 2 ** 53 else result
            return _BINOPS[type(node.op)](left, right)
        if isinstance(node, ast.Compare):
            left = self.value(node.left)
            for op, comparator in zip(node.ops, node.comparators):
                right = self.value(comparator)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return self.value(node.body) if self.value(node.test) else self.value(node.orelse)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            args = [_numeric(self.value(a)) for a in node.args]
            fn = FUNCTIONS[node.func.id]
            if fn is abs:
                if len(args) != 1:
                    raise EvaluatorError("abs() takes one argument")
                return abs(args[0])
            return fn(args)
        raise EvaluatorError(f"{type(node).__name__} is not allowed")  # pragma: no cover (checked)
