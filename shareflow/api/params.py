"""Query-string parameters: read and validated the way Manila's API does, so that
a bad value is a 400 with Manila's message and never reaches the database.

Pure: operates on a plain ``dict[str, str]``.
"""

from __future__ import annotations

import ast
from urllib.parse import urlencode

from shareflow.domain import validation
from shareflow.exceptions import InvalidInput

#: Manila's ``osapi_max_limit`` default.
MAX_LIMIT = 1000
#: Manila's constants.DB_MAX_INT.
DB_MAX_INT = 0x7FFFFFFF
SORT_DIRS = ("asc", "desc")
#: Longest ``metadata={...}`` literal we are willing to evaluate.
LITERAL_MAX = 4096


def flatten(params: dict) -> dict[str, str]:
    """Falcon gives a list for a repeated parameter; like webob's ``GET`` dict
    (what Manila reads), the last value wins."""
    return {k: (v[-1] if isinstance(v, list) else v) for k, v in params.items()}


def _integer(value: str, name: str) -> int:
    try:
        return int(value.strip(), 10)
    except (ValueError, AttributeError):
        raise InvalidInput(f"{name} param must be an integer") from None


def limit(value: str | None) -> int | None:
    """None when not given (everything, as Manila); 0 or more than the maximum
    page means the maximum page."""
    if value is None:
        return None
    n = _integer(value, "limit")
    if n < 0:
        raise InvalidInput("limit param must be positive")
    return min(n, MAX_LIMIT) or MAX_LIMIT


def offset(value: str | None) -> int:
    if value is None:
        return 0
    n = _integer(value, "offset")
    if n < 0:
        raise InvalidInput("offset param must be positive")
    if n > DB_MAX_INT:
        raise InvalidInput(f"offset must be <= {DB_MAX_INT}")
    return n


def marker(value: str | None) -> str | None:
    """The id of the last item a client has seen (Manila takes it as is)."""
    if value is None:
        return None
    return text(value, "marker")


def next_query(params: dict[str, str], last_id: str) -> str:
    """The query of a ``next`` link as Manila's ``ViewBuilder._get_next_link``
    builds it: every parameter of the request as it came, ``marker`` set to
    the last item's id (URL-encoded here; Manila pastes values in raw)."""
    query = {k: v for k, v in params.items() if k != "marker"}
    query["marker"] = last_id
    return urlencode(query)


def boolean(value: str, name: str) -> bool:
    try:
        return validation.boolean(value, name)
    except InvalidInput:
        raise InvalidInput(f"Invalid value {value!r} for {name}: expected a boolean.") from None


def all_tenants(params: dict[str, str]) -> bool:
    """manila.utils.is_all_tenants: present and empty means yes."""
    if "all_tenants" not in params:
        return False
    value = params["all_tenants"]
    return True if value == "" else boolean(value, "all_tenants")


def sort(params: dict[str, str], allowed: dict[str, str], *, default_key: str = "created_at",
         default_dir: str = "desc") -> tuple[str, str]:
    """``allowed`` maps the names a client may use to column names."""
    key = params.get("sort_key", default_key)
    direction = params.get("sort_dir", default_dir)
    if key not in allowed:
        raise InvalidInput(f"Wrong sorting key provided - '{key}'.")
    if direction.lower() not in SORT_DIRS:
        raise InvalidInput(
            f"Wrong sorting data provided: sort key is '{key}' and sort direction is '{direction}'."
        )
    return allowed[key], direction.lower()


def literal_dict(value: str, name: str) -> dict[str, str]:
    """``metadata={'k': 'v'}`` as manilaclient sends it (a Python literal)."""
    if len(value) > LITERAL_MAX:
        raise InvalidInput(f"Wrong {name} filter provided: too long.")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise InvalidInput(f"Wrong {name} filter provided: {value[:100]}.") from None
    if not isinstance(parsed, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()
    ):
        raise InvalidInput(f"Wrong {name} filter provided: {value[:100]}.")
    return parsed


def text(value: str, name: str, limit_: int = 255) -> str:
    if len(value) > limit_ or "\x00" in value:
        raise InvalidInput(f"Invalid {name} filter.")
    return value
