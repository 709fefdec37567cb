"""The request decoder and the answer encoder (shareflow.api.codec)."""

import json

import pytest

from shareflow.api import codec
from shareflow.exceptions import InvalidInput


@pytest.mark.parametrize("content_type", [
    "application/json", "Application/JSON", "application/json; charset=utf-8",
    'application/json;charset="UTF8"', "application/json; foo=bar",
])
def test_json_content_types_pass(content_type):
    codec.require_json(content_type)


@pytest.mark.parametrize("content_type", [
    None, "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/xml", "text/json", "application/json-patch+json", "application/jsonx",
    "application/json; charset=latin-1", "application/json; charset=utf-16",
])
def test_other_content_types_are_manilas_400(content_type):
    with pytest.raises(InvalidInput) as caught:
        codec.require_json(content_type)
    assert caught.value.http_status == 400
    assert caught.value.user_message == codec.UNSUPPORTED_CONTENT_TYPE


@pytest.mark.parametrize("raw", [
    b'"\\ud800"', b'{"a": "x\\udfffy"}', b'{"\\ud800": 1}', b'[[[{"k": ["\\udc00"]}]]]',
    b'{"a": {"b": {"\\udbff\\u0041": null}}}',
])
def test_lone_surrogates_anywhere_are_refused(raw):
    with pytest.raises(InvalidInput) as caught:
        codec.decode_json(raw)
    assert caught.value.user_message == codec.NOT_UNICODE


@pytest.mark.parametrize("raw", [b'{"a": "\\u0000"}', b'{"a\\u0000": 1}', b'["x\\u0000y"]'])
def test_nul_anywhere_is_refused(raw):
    with pytest.raises(InvalidInput) as caught:
        codec.decode_json(raw)
    assert caught.value.user_message == codec.HOLDS_NUL


def test_surrogate_pairs_and_other_text_pass():
    value = codec.decode_json('{"snow \\u2603": ["\\ud83d\\ude00", "ünï", ""]}'.encode())
    assert value == {"snow ☃": ["😀", "ünï", ""]}


@pytest.mark.parametrize("raw", [b"\xff", b'{"a": "\xed\xa0\x80"}', b"{", b"NaN", b"1e999", b"[" * 100000])
def test_not_json_is_malformed(raw):
    with pytest.raises(InvalidInput) as caught:
        codec.decode_json(raw)
    assert caught.value.user_message == codec.MALFORMED_BODY


def test_deep_values_are_checked_without_recursion():
    depth = 900  # as deep as the JSON parser itself allows here
    raw = ("[" * depth + '"\\ud800"' + "]" * depth).encode()
    with pytest.raises(InvalidInput):
        codec.decode_json(raw)
    assert codec.decode_json(("[" * depth + '"ok"' + "]" * depth).encode()) is not None


def test_printable_replaces_lone_surrogates_only():
    assert codec.printable("a\ud800b☃") == "a\ufffdb☃"
    assert codec.printable("Quota '\udfff' for shares").encode("utf-8")


def test_render_keeps_text_and_refuses_what_cannot_be_sent():
    assert json.loads(codec.render({"name": "☃"})) == {"name": "☃"}
    assert "☃".encode() in codec.render({"name": "☃"})
    with pytest.raises(UnicodeEncodeError):
        codec.render({"name": "\ud800"})
