"""Validators of provider networks: bridge names, CIDRs, gateways, ranges, MTU."""

from __future__ import annotations

import pytest

from shareflow.domain import validation as v
from shareflow.exceptions import InvalidInput


@pytest.mark.parametrize("name", ["br0", "br-tenants", "virbr_1.100", "a", "x" * 15, "_b"])
def test_bridge_names_accepted(name):
    assert v.bridge_name(name) == name


@pytest.mark.parametrize("name", ["", "x" * 16, "br/0", "br 0", "br:0", "-br", ".br", ".", "..",
                                  "br\n", "brü", None, 5, "$(reboot)"])
def test_bridge_names_refused(name):
    with pytest.raises(InvalidInput, match="Invalid bridge name"):
        v.bridge_name(name)


def test_cidr():
    assert v.ipv4_cidr("10.0.0.0/8") == "10.0.0.0/8"
    assert v.ipv4_cidr("192.0.2.0/255.255.255.0") == "192.0.2.0/24"
    assert v.ipv4_cidr("192.0.2.4/30") == "192.0.2.4/30"
    with pytest.raises(InvalidInput, match="did you mean 192.0.2.0/24"):
        v.ipv4_cidr("192.0.2.7/24")
    with pytest.raises(InvalidInput, match="/30 or larger"):
        v.ipv4_cidr("192.0.2.0/31")
    with pytest.raises(InvalidInput, match="IPv6 is not supported"):
        v.ipv4_cidr("2001:db8::/64")
    for bad in ("192.0.2.0", "192.0.2.0/33", "x/24", " 192.0.2.0/24", "", None, 24, "192.0.2.0/24/1"):
        with pytest.raises(InvalidInput, match="Invalid CIDR"):
            v.ipv4_cidr(bad)


def test_gateway():
    assert v.gateway("192.0.2.0/24", None) is None
    assert v.gateway("192.0.2.0/24", "") is None
    assert v.gateway("192.0.2.0/24", "192.0.2.1") == "192.0.2.1"
    with pytest.raises(InvalidInput, match="not inside"):
        v.gateway("192.0.2.0/24", "192.0.3.1")
    with pytest.raises(InvalidInput, match="network or broadcast"):
        v.gateway("192.0.2.0/24", "192.0.2.0")
    with pytest.raises(InvalidInput, match="network or broadcast"):
        v.gateway("192.0.2.0/24", "192.0.2.255")
    with pytest.raises(InvalidInput, match="IPv6"):
        v.gateway("192.0.2.0/24", "2001:db8::1")
    with pytest.raises(InvalidInput, match="expected an IPv4 address"):
        v.gateway("192.0.2.0/24", 7)


def test_ranges():
    cidr = "192.0.2.0/24"
    assert v.allocation_ranges(cidr, None, "192.0.2.1") == [("192.0.2.2", "192.0.2.254")]
    assert v.allocation_ranges(cidr, ["192.0.2.50-192.0.2.60", {"start": "192.0.2.10", "end": "192.0.2.10"}],
                               None) == [("192.0.2.10", "192.0.2.10"), ("192.0.2.50", "192.0.2.60")]
    bad = {
        "non-empty list": [[], "192.0.2.1-192.0.2.2", {"start": "192.0.2.1", "end": "192.0.2.2"}],
        "Invalid allocation range": [["192.0.2.1"], [{"start": "192.0.2.1"}],
                                     [{"start": "192.0.2.1", "end": "192.0.2.2", "x": 1}], [7]],
        "start is after the end": [["192.0.2.9-192.0.2.1"]],
        "not inside": [["192.0.1.250-192.0.2.5"], ["192.0.2.250-192.0.3.5"]],
        "network or broadcast": [["192.0.2.0-192.0.2.5"], ["192.0.2.250-192.0.2.255"]],
        "overlap": [["192.0.2.1-192.0.2.9", "192.0.2.5-192.0.2.20"]],
        "IPv6": [["2001:db8::1-2001:db8::9"]],
    }
    for message, values in bad.items():
        for value in values:
            with pytest.raises(InvalidInput, match=message):
                v.allocation_ranges(cidr, value, None)
    with pytest.raises(InvalidInput, match="includes the gateway 192.0.2.5"):
        v.allocation_ranges(cidr, ["192.0.2.1-192.0.2.9"], "192.0.2.5")
    with pytest.raises(InvalidInput, match="At most"):
        v.allocation_ranges(cidr, [f"192.0.2.{i}-192.0.2.{i}" for i in range(1, 70)], None)


def test_mtu():
    assert v.mtu(None) == 1500
    assert v.mtu(576) == 576 and v.mtu(9000) == 9000 and v.mtu("1450") == 1450
    for bad in (575, 9001, 0, -1, "x", "", True, 1500.0, "1e3"):
        with pytest.raises(InvalidInput, match="Invalid MTU"):
            v.mtu(bad)


def test_network_name():
    assert v.network_name("tenants a") == "tenants a"
    for bad in ("", "  ", " x", None, 3, "x" * 256, "a\x00b"):
        with pytest.raises(InvalidInput):
            v.network_name(bad)
