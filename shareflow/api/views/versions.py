"""The versions document (manila/api/versions.py, manila/api/views/versions.py)."""

from __future__ import annotations

from shareflow.api import microversions

#: Manila's fixed date for v2.0 and its links and media types.
UPDATED = "2015-08-27T11:33:21Z"
DESCRIBED_BY = {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}
MEDIA_TYPES = [{"base": "application/json",
                "type": "application/vnd.openstack.share+json;version=1"}]


def versions(base_url: str) -> dict:
    return {"versions": [{
        "id": "v2.0",
        "status": "CURRENT",
        "version": microversions.MAX_VERSION,
        "min_version": microversions.MIN_VERSION,
        "updated": UPDATED,
        "links": [dict(DESCRIBED_BY), {"rel": "self", "href": f"{base_url}/v2/"}],
        "media-types": [dict(m) for m in MEDIA_TYPES],
    }]}
