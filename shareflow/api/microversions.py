"""Manila API microversions: parsing the request header, comparing versions.

Pure: no I/O. Follows manila/api/openstack/api_version_request.py and
``Request.set_api_version_request`` in manila/api/openstack/wsgi.py:

* no header means the minimum version (2.0);
* a value that is not ``MAJOR.MINOR`` is a 400 with Manila's message;
* a well-formed version outside [MIN, MAX] is a 406 with Manila's message;
* ``latest`` (any case) means MAX - Manila itself does not accept it, nova
  does, and it costs nothing here.

MAX_VERSION is the one place that says how far this service speaks Manila's
API; clients negotiate down to it from the versions document.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from shareflow.exceptions import InvalidInput, VersionNotAcceptable

HEADER = "X-OpenStack-Manila-API-Version"
MIN_VERSION = "2.0"
#: The highest microversion whose request and response shapes we implement.
MAX_VERSION = "2.67"
LATEST = "latest"
MAX_HEADER_LENGTH = 32

# Manila's own pattern: no leading zeros, minor may be 0.
_VERSION = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


@dataclass(frozen=True, order=True)
class APIVersion:
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, version: str) -> bool:
        return self >= parse(version)

    def before(self, version: str) -> bool:
        return self < parse(version)

    def within(self, low: str, high: str | None = None) -> bool:
        """Manila's ``matches(min, max)``: both ends inclusive, no upper end when None."""
        return self >= parse(low) and (high is None or self <= parse(high))


@functools.lru_cache(maxsize=256)
def parse(value: str) -> APIVersion:
    """``"2.9"`` -> APIVersion(2, 9); anything else is Manila's 400."""
    match = _VERSION.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(
            f"API Version String {value} is of invalid format. Must be of format MajorNum.MinorNum."
        )
    return APIVersion(int(match.group(1)), int(match.group(2)))


MIN = parse(MIN_VERSION)
MAX = parse(MAX_VERSION)


def from_header(value: str | None) -> APIVersion:
    """The version a request asks for, given its header value (None when absent)."""
    if value is None:
        return MIN
    value = value.strip()
    if value.lower() == LATEST:
        return MAX
    # A header is the client's to fill: never echo or cache more than a version's worth.
    version = parse(value if len(value) <= MAX_HEADER_LENGTH else value[:MAX_HEADER_LENGTH] + "...")
    if not MIN <= version <= MAX:
        raise VersionNotAcceptable(
            f"Version {version} is not supported by the API. "
            f"Minimum is {MIN_VERSION} and maximum is {MAX_VERSION}."
        )
    return version
