"""``/shares/{id}/metadata``: Manila's shapes, limits and errors, in-process
over real SQLite and ZooKeeper (every answer passes ``check_response``: no 5xx)."""

from __future__ import annotations

import json

import pytest

from shareflow.db.models import ShareMetadata
from tests.api.conftest import assert_fault

#: Request bodies that are wrong whatever the route.
JUNK_BODIES = ["", "null", "true", "0", "1e999", '"text"', "[]", "[{}]", "{", "}{", "{}",
               '{"metadata": null}', '{"metadata": {"k": {"v": 1}}}', "\x00", "\xff", '{"x": NaN}',
               "not json at all", json.dumps({"metadata": {"k" * 5000: "v"}})]


@pytest.fixture
def share(api):
    return api.create_share(token=api.tokens["alice"], metadata={"seed": "1"})


def path(share_id: str, key: str | None = None) -> str:
    return f"/v2/shares/{share_id}/metadata" + (f"/{key}" if key is not None else "")


def test_list_update_replace_show_delete(api, share):
    sid = share["id"]
    assert api.get(path(sid)).json == {"metadata": {"seed": "1"}}

    merged = api.post(path(sid), {"metadata": {"a": "1", "seed": "2"}})
    assert merged.status_code == 200 and merged.json == {"metadata": {"a": "1", "seed": "2"}}
    assert api.get(f"/v2/shares/{sid}").json["share"]["metadata"] == {"a": "1", "seed": "2"}

    assert api.get(path(sid, "a")).json == {"meta": {"a": "1"}}
    message = assert_fault(api.get(path(sid, "nope")), 404, "itemNotFound")
    assert message == "Metadata item is not found."

    one = api.post(path(sid, "b"), {"metadata": {"b": "x"}})
    assert one.status_code == 200 and one.json == {"metadata": {"b": "x"}}
    assert api.get(path(sid)).json["metadata"] == {"a": "1", "seed": "2", "b": "x"}

    replaced = api.put(path(sid), {"metadata": {"only": "this"}})
    assert replaced.status_code == 200 and replaced.json == {"metadata": {"only": "this"}}
    assert api.get(path(sid)).json == {"metadata": {"only": "this"}}

    deleted = api.delete(path(sid, "only"))
    assert deleted.status_code == 200 and deleted.text == ""
    assert api.get(path(sid)).json == {"metadata": {}}
    assert assert_fault(api.delete(path(sid, "only")), 404) == "Metadata item is not found."
    assert api.put(path(sid), {"metadata": {}}).json == {"metadata": {}}
    assert api.count(ShareMetadata, share_id=sid) == 0


def test_limits_and_messages_are_manilas(api, share):
    sid = share["id"]
    ok = {"k" * 255: "v" * 1023}
    assert api.post(path(sid), {"metadata": ok}).json["metadata"]["k" * 255] == "v" * 1023
    cases = [
        ({"": "v"}, "Metadata property key is blank."),
        ({"k" * 256: "v"}, "Metadata property key is greater than 255 characters."),
        ({"k": ""}, "Metadata property value is blank."),
        ({"k": "v" * 1024}, "Metadata property value is greater than 1023 characters."),
    ]
    for metadata, expected in cases:
        for method in (api.post, api.put):
            assert assert_fault(method(path(sid), {"metadata": metadata}), 400, "badRequest") == expected
    before = api.get(path(sid)).json
    for bad in ({"metadata": {"k": 1}}, {"metadata": ["k"]}, {"metadata": "k=v"}, {"meta": {"k": "v"}},
                {"metadata": {"k": None}}, {"metadata": {"k": "\x00"}}, [], "x", None):
        for method in (api.post, api.put):
            assert assert_fault(method(path(sid), bad), 400) == "Malformed request body"
    assert api.get(path(sid)).json == before


def test_single_item_must_match_the_uri(api, share):
    sid = share["id"]
    assert assert_fault(api.post(path(sid, "a"), {"metadata": {"b": "1"}}), 400) == "Request body and URI mismatch"
    message = assert_fault(api.post(path(sid, "a"), {"metadata": {"a": "1", "b": "2"}}), 400)
    assert message == "Request body contains too many items"
    assert api.post(path(sid, "a"), {"meta": {"a": "1"}}).json == {"metadata": {"a": "1"}}
    assert api.get(path(sid, "a")).json == {"meta": {"a": "1"}}


def test_other_projects_and_public_shares(api):
    bobs = api.create_share(token=api.tokens["bob"], metadata={"owner": "bob"})
    sid = bobs["id"]
    for result in (api.get(path(sid)), api.post(path(sid), {"metadata": {"x": "y"}}),
                   api.put(path(sid), {"metadata": {}}), api.get(path(sid, "owner")),
                   api.delete(path(sid, "owner"))):
        assert assert_fault(result, 404, "itemNotFound") == "Share not found."
    # The admin may read and change any share's metadata.
    admin = api.tokens["admin"]
    assert api.post(path(sid), {"metadata": {"by": "admin"}}, token=admin).json["metadata"] == {
        "owner": "bob", "by": "admin"}

    public = api.post("/v2/shares", {"share": {"size": 1, "share_proto": "NFS", "is_public": True,
                                               "metadata": {"p": "1"}}}, token=admin).json["share"]
    # Another project reads a public share's metadata but may not change it.
    assert api.get(path(public["id"])).json == {"metadata": {"p": "1"}}
    assert api.get(path(public["id"], "p")).json == {"meta": {"p": "1"}}
    for result in (api.post(path(public["id"]), {"metadata": {"x": "y"}}),
                   api.put(path(public["id"]), {"metadata": {}}),
                   api.delete(path(public["id"], "p"))):
        assert_fault(result, 403, "forbidden")
    assert api.get(path(public["id"]), token=admin).json == {"metadata": {"p": "1"}}


def test_routes_with_project_id_and_old_microversions(api, share):
    sid = share["id"]
    assert api.get(f"/v2/proj-a/shares/{sid}/metadata", version=None).json == {"metadata": {"seed": "1"}}
    assert api.post(f"/v2/proj-a/shares/{sid}/metadata", {"metadata": {"v": "2.0"}},
                    version="2.0").json["metadata"]["v"] == "2.0"
    assert api.request("PATCH", path(sid)).status_code == 405
    assert api.request("PUT", path(sid, "seed"), json_body={"metadata": {"seed": "x"}}).status_code == 405
    assert_fault(api.get(path("00000000-0000-0000-0000-000000000000")), 404)


def test_junk_never_breaks_metadata_routes(api, share):
    sid = share["id"]
    for raw in JUNK_BODIES:
        for method, url in (("POST", path(sid)), ("PUT", path(sid)), ("POST", path(sid, "k"))):
            result = api.request(method, url, body=raw)
            assert 400 <= result.status_code < 500, (method, url, raw, result.text)
    for key in ("%00", "..", "x" * 300, "☃", "a%2Fb"):
        assert api.get(path(sid, key)).status_code == 404
        assert api.delete(path(sid, key)).status_code == 404
    assert api.get(path(sid)).json == {"metadata": {"seed": "1"}}
    assert json.loads(api.get(path(sid)).text)  # a JSON body, not an empty one
