"""Malformed input on every write route: always a 4xx with Manila's body, never
a 500, and a rejected request changes nothing.

(Every response in tests/api also passes ``check_response``: no 5xx at all.)
"""

from __future__ import annotations

import itertools
import json
import uuid

import pytest

from shareflow.db.models import AccessRule, Job, Share, ShareType, ShareTypeExtraSpec
from tests.api.conftest import assert_fault

JUNK = [None, True, False, 0, -1, 10 ** 100, -(10 ** 100), 1.5, 1e308, "", " ", "x" * 5000,
        "\x00", "☃", "../../etc", [], [None], {}, {"a": {"b": [1, {"c": None}]}}]
#: Bodies that are wrong whatever the route.
NOT_BODIES = ["", "null", "true", "0", "1e999", '"text"', "[]", "[{}]", "{", "}{", "{}",
              '{"a": 1, "a": 2}', "\x00", "\xff", '{"x": NaN}', "not json at all",
              json.dumps({"k": [[[[[[[[[[[]]]]]]]]]]]})]


def variants(key: str, fields: dict) -> list:
    """The valid body, then each field replaced by each junk value, then each
    field dropped, then the section itself replaced by junk."""
    bodies = []
    for field, value in itertools.product(fields, JUNK):
        bodies.append({key: {**fields, field: value}})
    for field in fields:
        bodies.append({key: {k: v for k, v in fields.items() if k != field}})
    bodies += [{key: junk} for junk in JUNK if not isinstance(junk, dict) or junk]
    return bodies


@pytest.fixture(scope="module")
def targets(api):
    share = api.create_share(token=api.tokens["alice"])
    api.set_share_status(share["id"], "available")
    admin = api.tokens["admin"]
    stype = api.post("/v2/types", {"share_type": {
        "name": "fuzz", "extra_specs": {"driver_handles_share_servers": False}}}, token=admin).json["share_type"]
    return {"share": share["id"], "type": stype["id"]}


def state(api) -> tuple:
    return tuple(api.count(m) for m in (Share, ShareType, ShareTypeExtraSpec, AccessRule, Job))


def routes(targets):
    s, t = targets["share"], targets["type"]
    return [
        ("POST", "/v2/shares", "share", {"size": 1, "share_proto": "NFS"}),
        ("PUT", f"/v2/shares/{s}", "share", {"name": "n", "is_public": False}),
        ("POST", f"/v2/shares/{s}/action", "allow_access",
         {"access_type": "ip", "access_to": "10.0.0.1", "access_level": "ro"}),
        ("POST", f"/v2/shares/{s}/action", "deny_access", {"access_id": str(uuid.uuid4())}),
        ("POST", "/v2/types", "share_type",
         {"name": "fz", "extra_specs": {"driver_handles_share_servers": False}}),
        ("POST", f"/v2/types/{t}/action", "addProjectAccess", {"project": "p"}),
        ("POST", f"/v2/types/{t}/extra_specs", "extra_specs", {"k": "v"}),
        ("PUT", f"/v2/types/{t}/extra_specs/k", "k", None),
    ]


@pytest.mark.parametrize("token_name", ["alice", "admin"])
def test_non_bodies_are_4xx_on_every_write_route(api, targets, token_name):
    token = api.tokens[token_name]
    before = state(api)
    for method, path, _, _ in routes(targets):
        for raw in NOT_BODIES:
            result = api.request(method, path, body=raw, token=token)
            assert 400 <= result.status_code < 500, (method, path, raw, result.text)
    assert state(api) == before


def test_junk_fields_never_break_the_api(api, targets):
    admin = api.tokens["admin"]
    for method, path, key, fields in routes(targets):
        bodies = [{key: junk} for junk in JUNK] if fields is None else variants(key, fields)
        for body in bodies:
            try:
                raw = json.dumps(body)
            except ValueError:
                continue
            for token in (api.tokens["alice"], admin):
                before = state(api)
                result = api.request(method, path, body=raw, token=token)
                # check_response already refused any 5xx and any non-Manila error body.
                if result.status_code >= 400 and method == "POST":
                    assert state(api) == before, (path, body, result.text)


def test_junk_share_ids_and_query_strings(api):
    for junk in ["%00", "..", "%2e%2e%2f", "x" * 2000, "☃", "' OR 1=1 --", "%ff"]:
        for method in ("GET", "PUT", "DELETE"):
            result = api.request(method, f"/v2/shares/{junk}", json_body={"share": {}})
            assert result.status_code in (400, 404), result.text
        result = api.get("/v2/shares", params={"sort_key": junk, "limit": junk})
        assert_fault(result, 400)
        assert api.get(f"/v2/share-access-rules/{junk}").status_code == 404
        assert api.get(f"/v2/types/{junk}").status_code == 404
