import pytest

from shareflow.domain import validation as v
from shareflow.exceptions import InvalidInput


@pytest.mark.parametrize("value,expected", [(1, 1), ("2", 2), (" 3 ", 3), (1024, 1024)])
def test_share_size_ok(value, expected):
    assert v.share_size(value) == expected


@pytest.mark.parametrize("value", [0, -1, "0", "abc", "1.5", 1.5, None, True, [], {}, "", 10**12])
def test_share_size_bad(value):
    with pytest.raises(InvalidInput):
        v.share_size(value)


def test_protocols():
    assert v.share_protocol("nfs") == "NFS"
    with pytest.raises(InvalidInput, match="not supported"):
        v.share_protocol("CIFS")
    with pytest.raises(InvalidInput, match="Invalid share protocol"):
        v.share_protocol("SMB3")
    with pytest.raises(InvalidInput):
        v.share_protocol(None)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("192.0.2.10", "192.0.2.10"),
        ("192.0.2.10/32", "192.0.2.10"),
        ("192.0.2.0/24", "192.0.2.0/24"),
        ("192.0.2.0/255.255.255.0", "192.0.2.0/24"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("2001:db8::1", "2001:db8::1"),
        ("2001:DB8::/32", "2001:db8::/32"),
        ("2001:db8::1/128", "2001:db8::1"),
        ("::/0", "::/0"),
    ],
)
def test_ip_rules_normalised(value, expected):
    assert v.ip_access_to(value) == expected


# What manila.api.common.validate_ip says (ipaddress's messages), word for word.
@pytest.mark.parametrize(
    "value,message",
    [
        ("192.0.2.77/24", "192.0.2.77/24 has host bits set"),
        ("10.0.0.300", "'10.0.0.300' does not appear to be an IPv4 or IPv6 network"),
        ("10.0.0.1/33", "'10.0.0.1/33' does not appear to be an IPv4 or IPv6 network"),
        ("", "'' does not appear to be an IPv4 or IPv6 network"),
        (" 1.2.3.4", "' 1.2.3.4' does not appear to be an IPv4 or IPv6 network"),
        (167772161, "'167772161' does not appear to be an IPv4 or IPv6 network"),
        # IPv6 scope ids: refused with the message Manila gave before Python parsed them.
        ("fe80::1%lo", "'fe80::1%lo' does not appear to be an IPv4 or IPv6 network"),
        ("fe80::1%x,*", "'fe80::1%x,*' does not appear to be an IPv4 or IPv6 network"),
        ("fe80::1%lo/128", "'fe80::1%lo/128' does not appear to be an IPv4 or IPv6 network"),
    ],
)
def test_ip_rules_rejected_with_manilas_message(value, message):
    with pytest.raises(InvalidInput) as e:
        v.ip_access_to(value)
    assert e.value.user_message == message


@pytest.mark.parametrize(
    "value",
    ["", "10.0.0.300", "10.0.0.1/33", "host.example", "1.2.3.4; } EXPORT {", " 1.2.3.4", "1.2.3.4\n",
     None, 42, True, [], {}, ["1.2.3.4"], "1.2.3.4/24/8", "a" * 100, "\ud800", "1.2.3.4\x00",
     "1.2.3.\u0664", "fe80::1%25lo", "::1%1", "1.2.3.4/ 24"],
)
def test_ip_rules_rejected(value):
    with pytest.raises(InvalidInput):
        v.ip_access_to(value)


def test_ipv4_only_before_2_38_as_manila():
    assert v.ip_access_to("192.0.2.1", ipv6=False) == "192.0.2.1"
    with pytest.raises(InvalidInput) as e:
        v.ip_access_to("fd00::/64", ipv6=False)
    assert e.value.user_message == "Expected 4 octets in 'fd00::'"
    with pytest.raises(InvalidInput) as e:
        v.ip_access_to("1.2.3.4%x", ipv6=False)
    assert e.value.user_message == "Only decimal digits permitted in '4%x' in '1.2.3.4%x'"


def test_every_accepted_rule_is_made_of_address_characters_only():
    # Whatever single character is put anywhere in a valid rule, the result
    # is refused or holds nothing but hex digits, dots, colons and a slash.
    allowed = set("0123456789abcdef.:/")
    bases = ["192.0.2.1", "192.0.2.0/24", "2001:db8::1", "2001:db8::/64", "::", "::ffff:1.2.3.4"]
    for base in bases:
        for code in [*range(256), *range(0x100, 0x3000, 7), 0xFF10, 0xFF0E, 0x1D7CE, 0xD800]:
            for i in range(len(base) + 1):
                value = base[:i] + chr(code) + base[i:]
                try:
                    out = v.ip_access_to(value)
                except InvalidInput:
                    continue
                assert set(out) <= allowed, (value, out)


def test_access_level_and_type():
    assert v.access_level(None) == "rw"
    assert v.access_level("ro") == "ro"
    with pytest.raises(InvalidInput):
        v.access_level("RW!")
    assert v.access_type("ip") == "ip"
    with pytest.raises(InvalidInput, match="not supported"):
        v.access_type("user")
    with pytest.raises(InvalidInput, match="Invalid access type"):
        v.access_type("kerberos")


def test_texts():
    assert v.share_name(None) is None
    assert v.share_name("x" * 255) == "x" * 255
    for bad in ("x" * 256, 5, "a\x00b"):
        with pytest.raises(InvalidInput):
            v.share_name(bad)


def test_extra_specs_booleans_normalised_and_dhss_required():
    specs = v.extra_specs({"driver_handles_share_servers": "false", "snapshot_support": True, "foo": "bar"})
    assert specs == {"driver_handles_share_servers": "False", "snapshot_support": "True", "foo": "bar"}
    with pytest.raises(InvalidInput):
        v.required_extra_specs({"foo": "bar"})
    with pytest.raises(InvalidInput):
        v.extra_specs({"driver_handles_share_servers": "maybe"})
    with pytest.raises(InvalidInput):
        v.extra_specs({"bad key!": "x"})


def test_metadata():
    assert v.metadata({"a": "b"}) == {"a": "b"}
    for bad in ([], {"": "x"}, {"k": 1}, "str"):
        with pytest.raises(InvalidInput):
            v.metadata(bad)


def test_require_dict_and_uuid():
    assert v.require_dict({"share": {"a": 1}}, "share") == {"a": 1}
    for bad in (None, [], {"share": []}, {"other": {}}):
        with pytest.raises(InvalidInput):
            v.require_dict(bad, "share")
    assert v.uuid_str("6A0F5C1E-2B7B-4C1A-9F43-0D3E1F2A3B4C") == "6a0f5c1e-2b7b-4c1a-9f43-0d3e1f2a3b4c"
    with pytest.raises(InvalidInput):
        v.uuid_str("not-a-uuid")
