"""The typed readers of JSON fields in shareflow.domain.validation: a value of
the wrong JSON type is a 400, never coerced by its truthiness."""

import pytest

from shareflow.domain import validation as v
from shareflow.exceptions import InvalidInput

WRONG_FOR_TEXT = [False, True, 0, 7, 1.5, [], ["x"], {}, {"a": "b"}]


@pytest.mark.parametrize("value,name", [
    (None, "null"), (False, "a boolean"), (0, "a number"), (1.5, "a number"), ("", "a string"),
    ([], "an empty list"), ([1], "a list"), ({}, "an empty object"), ({"a": 1}, "an object"),
])
def test_json_type_names(value, name):
    assert v.json_type(value) == name


@pytest.mark.parametrize("value", WRONG_FOR_TEXT)
def test_optional_ref_refuses_other_types(value):
    with pytest.raises(InvalidInput, match="expected a string or null"):
        v.optional_ref(value, "share_type")


def test_optional_ref_values():
    assert v.optional_ref(None, "x") is None
    assert v.optional_ref("", "x") is None
    assert v.optional_ref("gold", "x") == "gold"
    with pytest.raises(InvalidInput, match="longer than 255"):
        v.optional_ref("x" * 256, "x")


@pytest.mark.parametrize("value", WRONG_FOR_TEXT)
def test_names_refuse_other_types(value):
    with pytest.raises(InvalidInput, match="must be a string"):
        v.share_name(value)


@pytest.mark.parametrize("value", [7, 1.5, [], ["x"], {}, {"a": 1}, "perhaps", ""])
def test_optional_boolean_refuses_non_booleans(value):
    with pytest.raises(InvalidInput, match="must be a boolean"):
        v.optional_boolean(value, "force")


def test_optional_boolean_values():
    assert v.optional_boolean(None, "force") is None
    assert v.optional_boolean(None, "force", default=False) is False
    assert v.optional_boolean("yes", "force") is True
    assert v.optional_boolean(False, "force") is False


@pytest.mark.parametrize("value", [False, 0, "", [], ["x"], "{}"])
def test_optional_object_refuses_other_types(value):
    with pytest.raises(InvalidInput, match="expected an object"):
        v.optional_object(value, "metadata")


def test_optional_object_values():
    assert v.optional_object(None, "metadata") == {}
    assert v.optional_object({"k": "v"}, "metadata") == {"k": "v"}


@pytest.mark.parametrize("value", [None, 1, [], {}, ["0bd0f0a7-3f4b-4d5e-9c1e-0e6f0c7d8a9b"]])
def test_uuid_must_be_a_string(value):
    with pytest.raises(InvalidInput, match="expected a UUID string"):
        v.uuid_str(value, "access id")


def test_messages_do_not_echo_large_values():
    with pytest.raises(InvalidInput) as caught:
        v.boolean("x" * 10000, "force")
    assert len(caught.value.user_message) < 200
    with pytest.raises(InvalidInput) as caught:
        v.uuid_str("y" * 10000, "id")
    assert len(caught.value.user_message) < 200
