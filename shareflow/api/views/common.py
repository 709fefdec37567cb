"""What every view needs: the request's microversion, admin-ness and link prefixes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from shareflow.api.microversions import APIVersion, parse

#: oslo.serialization's datetime format, which Manila's JSON responses use.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
_VERSION_SUFFIX = re.compile(r"/v[1-9][0-9]*/?$")


@dataclass(frozen=True)
class ViewContext:
    version: APIVersion
    is_admin: bool
    #: scheme://host[:port][/root] without a version, e.g. ``http://h:8786``.
    base_url: str
    #: The project id when the request URL carried one (links then carry it too).
    project_in_path: str | None = None
    default_share_type: str | None = None

    def at_least(self, version: str) -> bool:
        return self.version >= parse(version)

    def within(self, low: str, high: str) -> bool:
        return self.version.within(low, high)

    def links(self, collection: str, identifier: str) -> list[dict]:
        """Manila's ``self`` (versioned) and ``bookmark`` (unversioned) links."""
        project = f"{self.project_in_path}/" if self.project_in_path else ""
        return [
            {"rel": "self", "href": f"{self.base_url}/v2/{project}{collection}/{identifier}"},
            {"rel": "bookmark", "href": f"{self.base_url}/{project}{collection}/{identifier}"},
        ]


def root_url(public_url: str, request_prefix: str) -> str:
    """The API's root URL: the configured public one, else the request's own;
    a trailing ``/v2`` in the configured value is tolerated."""
    url = (public_url or request_prefix).rstrip("/")
    return _VERSION_SUFFIX.sub("", url + "/").rstrip("/") if public_url else url


def timestamp(value: datetime | None) -> str | None:
    return value.strftime(TIME_FORMAT) if value is not None else None
