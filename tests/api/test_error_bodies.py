"""Every error answer has Manila's body, also when the error or the answer
holds text that cannot be encoded: issue 8 saw 500s with empty bodies (falcon
renders media after the error handlers, so a body that fails to render there
is dropped). The real app, with one extra route that misbehaves on purpose."""

from __future__ import annotations

import json

import falcon
import falcon.testing
import pytest

from shareflow.api.app import create_app
from shareflow.api.errors import INTERNAL_ERROR_MESSAGE
from shareflow.exceptions import InvalidInput
from tests.api.conftest import MAX, assert_fault


class BrokenError(InvalidInput):
    """An error class with a bug: its message cannot be read."""

    @property
    def user_message(self) -> str:
        raise AttributeError("no message")


class Misbehaving:
    def on_get(self, req, resp, what: str) -> None:
        if what == "surrogate-message":
            raise InvalidInput("bad value", user_message="Quota '\ud800' for shares should be integer.")
        if what == "surrogate-description":
            raise falcon.HTTPBadRequest(description="bad \udfff")
        if what == "surrogate-answer":
            resp.media = {"share": {"name": "x\ud800"}}
            return
        if what == "object-answer":
            resp.media = {"share": {"created_at": object()}}
            return
        if what == "bug":
            raise RuntimeError("a bug")
        if what == "broken-error":
            raise BrokenError("broken")
        resp.media = {"ok": "☃"}


@pytest.fixture(scope="module")
def client(api):
    app = create_app(api.config, api.services)
    app.add_route("/v2/misbehaving/{what}", Misbehaving())
    return falcon.testing.TestClient(app)


def get(api, client, what: str) -> falcon.testing.Result:
    result = client.simulate_get(f"/v2/misbehaving/{what}", headers={
        "X-Auth-Token": api.tokens["alice"], "X-OpenStack-Manila-API-Version": MAX})
    assert result.content, "an empty body"
    result.content.decode("utf-8")  # always valid UTF-8
    assert result.headers["content-type"] == "application/json"
    assert result.headers["x-openstack-request-id"].startswith("req-")
    return result


def test_a_message_echoing_a_lone_surrogate_is_still_answered(api, client):
    assert assert_fault(get(api, client, "surrogate-message"), 400) == \
        "Quota '\ufffd' for shares should be integer."
    assert assert_fault(get(api, client, "surrogate-description"), 400) == "bad \ufffd"


@pytest.mark.parametrize("what", ["surrogate-answer", "object-answer", "bug", "broken-error"])
def test_an_answer_or_error_that_cannot_be_rendered_is_manilas_500_not_an_empty_body(api, client, what):
    result = get(api, client, what)
    assert result.status_code == 500
    assert json.loads(result.text) == {"computeFault": {"code": 500, "message": INTERNAL_ERROR_MESSAGE}}


def test_a_good_answer_is_rendered_as_utf8_json(api, client):
    result = get(api, client, "fine")
    assert result.status_code == 200
    assert result.content == '{"ok": "☃"}'.encode()
