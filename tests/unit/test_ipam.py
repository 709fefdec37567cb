"""Address arithmetic of flat provider networks."""

from __future__ import annotations

from shareflow.domain import ipam


def test_default_ranges_leave_out_network_broadcast_and_gateway():
    assert ipam.default_ranges("10.0.0.0/24", None) == [("10.0.0.1", "10.0.0.254")]
    assert ipam.default_ranges("10.0.0.0/24", "10.0.0.1") == [("10.0.0.2", "10.0.0.254")]
    assert ipam.default_ranges("10.0.0.0/24", "10.0.0.254") == [("10.0.0.1", "10.0.0.253")]
    assert ipam.default_ranges("10.0.0.0/24", "10.0.0.100") == [
        ("10.0.0.1", "10.0.0.99"), ("10.0.0.101", "10.0.0.254")]
    assert ipam.default_ranges("10.0.0.0/30", "10.0.0.1") == [("10.0.0.2", "10.0.0.2")]


def test_candidates_lowest_first_and_never_reserved():
    ranges = [("10.0.0.5", "10.0.0.7"), ("10.0.0.0", "10.0.0.2")]
    assert list(ipam.candidates("10.0.0.0/29", ranges, "10.0.0.6")) == [
        "10.0.0.1", "10.0.0.2", "10.0.0.5"]
    # the broadcast address 10.0.0.7 and the network address are skipped too
    assert ipam.capacity("10.0.0.0/29", ranges, "10.0.0.6") == 3


def test_overlapping_ranges_walked_once():
    ranges = [("10.0.0.1", "10.0.0.4"), ("10.0.0.3", "10.0.0.6")]
    assert list(ipam.candidates("10.0.0.0/24", ranges, None)) == [
        f"10.0.0.{n}" for n in range(1, 7)]
    assert ipam.capacity("10.0.0.0/24", ranges, None) == 6


def test_lowest_free():
    ranges = [("192.168.1.10", "192.168.1.12")]
    assert ipam.lowest_free("192.168.1.0/24", ranges, None, []) == "192.168.1.10"
    assert ipam.lowest_free("192.168.1.0/24", ranges, None, ["192.168.1.10"]) == "192.168.1.11"
    assert ipam.lowest_free("192.168.1.0/24", ranges, None, ["192.168.1.10"],
                            skip=["192.168.1.11"]) == "192.168.1.12"
    assert ipam.lowest_free("192.168.1.0/24", ranges, "192.168.1.10",
                            ["192.168.1.11", "192.168.1.12"]) is None


def test_large_network_is_cheap():
    # A /8 with a few allocations: the lowest free address is found at once.
    used = [f"10.0.0.{n}" for n in range(1, 200)]
    assert ipam.lowest_free("10.0.0.0/8", ipam.default_ranges("10.0.0.0/8", None), None, used) == "10.0.0.200"
    assert ipam.capacity("10.0.0.0/8", ipam.default_ranges("10.0.0.0/8", None), None) == 2**24 - 2
