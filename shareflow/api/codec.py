"""JSON on the wire: the one place a request body becomes Python values and a
response's values become bytes.

Decoding is where input hygiene that does not depend on a field happens, for
every route at once: a body must be declared ``application/json`` (Manila's
only content type), be strict JSON, and hold only text that can be stored and
sent back: no lone surrogates (``"\\ud800"`` is valid JSON but not Unicode:
SQLite, PostgreSQL and the UTF-8 encoder of the answer all refuse it) and no
NUL characters (PostgreSQL refuses those). Typed readers of the fields
themselves are in :mod:`shareflow.domain.validation`.

Encoding can fail too (a value JSON cannot represent is a bug), so it is done
where the failure can still be answered with Manila's 500 body: see
:class:`shareflow.api.middleware.RenderMiddleware`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from shareflow.exceptions import InvalidInput

JSON_MEDIA_TYPE = "application/json"
#: Manila's words for a body whose declared type is not JSON, with a 400
#: (manila/api/openstack/wsgi.py ``Resource._process_stack``). Manila never
#: answers 415 (``badMediaType`` is only in its table of fault names): its
#: ``get_body`` drops such a body and the handler sees none. Refusing it
#: instead keeps a form or XML body from being taken for an empty one.
UNSUPPORTED_CONTENT_TYPE = "Unsupported Content-Type"
MALFORMED_BODY = "Malformed request body"
NOT_UNICODE = "Malformed request body: text must be valid Unicode, without lone surrogates."
#: The words the metadata routes answered a NUL with; now said of any text.
HOLDS_NUL = MALFORMED_BODY

_SURROGATE = re.compile("[\ud800-\udfff]")


def require_json(content_type: str | None) -> None:
    """The declared type of a non-empty body must be ``application/json``;
    a ``charset`` parameter, if any, must be UTF-8 (RFC 8259). A body with no
    type at all is refused as well: Manila would silently ignore it."""
    media_type, _, params = (content_type or "").partition(";")
    if media_type.strip().lower() != JSON_MEDIA_TYPE:
        raise InvalidInput(f"request body of type {content_type!r}", user_message=UNSUPPORTED_CONTENT_TYPE)
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise InvalidInput(f"request body in charset {value!r}", user_message=UNSUPPORTED_CONTENT_TYPE)


def _no_constants(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text} is out of range")
    return value


def decode_json(raw: bytes) -> Any:
    """Strict JSON: no NaN/Infinity (not even as 1e999), no absurdly deep
    nesting, no huge integers (Python refuses those with a ValueError of its
    own), and only storable text in every string, keys included."""
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_no_constants, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidInput("request body is not valid JSON", user_message=MALFORMED_BODY) from None
    check_text(value)
    return value


def check_text(value: Any) -> None:
    """Every string in a decoded JSON value (keys too) is storable text.
    Iterative: the value may be nested as deep as the parser allowed."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if _SURROGATE.search(item):
                raise InvalidInput("lone surrogate in the request body", user_message=NOT_UNICODE)
            if "\x00" in item:
                raise InvalidInput("NUL in the request body", user_message=HOLDS_NUL)


def printable(text: Any) -> str:
    """``text`` as a message that can always be encoded: lone surrogates
    (from a value echoed into a message) become U+FFFD."""
    return _SURROGATE.sub("\ufffd", str(text))


def render(value: Any) -> bytes:
    """A response body: UTF-8 JSON, non-ASCII text as is (raises on what JSON
    or UTF-8 cannot represent)."""
    return _ENCODER.encode(value).encode("utf-8")


# Answers are built by the views from plain values, never cyclic: without the
# circular-reference bookkeeping a long list renders about 10 % faster (a
# cycle would still fail, as a RecursionError, and be answered as a 500).
_ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False)
