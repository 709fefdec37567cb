"""What every view needs: the request's microversion, admin-ness and link prefixes."""

from __future__ import annotations

import re
from collections.abc import Callable
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
        return self.link_builder()(collection, identifier)

    def link_builder(self) -> Callable[[str, str], list[dict]]:
        """:meth:`links` with the prefixes worked out once, for a whole list."""
        project = f"{self.project_in_path}/" if self.project_in_path else ""
        versioned, bookmark = f"{self.base_url}/v2/{project}", f"{self.base_url}/{project}"

        def links(collection: str, identifier: str) -> list[dict]:
            return [
                {"rel": "self", "href": f"{versioned}{collection}/{identifier}"},
                {"rel": "bookmark", "href": f"{bookmark}{collection}/{identifier}"},
            ]

        return links

    def collection_url(self, path: str) -> str:
        """The versioned URL of a collection (``shares/detail``), with the
        project when the request URL had one: where a ``next`` link points."""
        project = f"{self.project_in_path}/" if self.project_in_path else ""
        return f"{self.base_url}/v2/{project}{path}"


def root_url(public_url: str, request_prefix: str) -> str:
    """The API's root URL: the configured public one, else the request's own;
    a trailing ``/v2`` in the configured value is tolerated."""
    url = (public_url or request_prefix).rstrip("/")
    return _VERSION_SUFFIX.sub("", url + "/").rstrip("/") if public_url else url


def timestamp(value: datetime | None) -> str | None:
    """TIME_FORMAT; ``isoformat`` writes exactly that for the naive datetimes
    stored here, in a fraction of strftime's time (it counts in long lists)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.isoformat(timespec="microseconds")
    return value.strftime(TIME_FORMAT)
