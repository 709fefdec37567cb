"""Address arithmetic of flat provider networks (IPv4). Pure: no I/O.

A provider network has one CIDR, an optional gateway and allocation ranges
(first and last address, inclusive). Share servers are given the lowest
address that is inside a range, is neither the network's network address nor
its broadcast address nor its gateway, and is not already allocated.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator


def network(cidr: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(cidr)


def reserved(cidr: str, gateway: str | None) -> set[int]:
    """Addresses never handed out: network, broadcast, gateway."""
    net = network(cidr)
    out = {int(net.network_address), int(net.broadcast_address)}
    if gateway:
        out.add(int(ipaddress.IPv4Address(gateway)))
    return out


def default_ranges(cidr: str, gateway: str | None) -> list[tuple[str, str]]:
    """The whole CIDR minus network, broadcast and gateway addresses, as ranges."""
    net = network(cidr)
    first, last = int(net.network_address) + 1, int(net.broadcast_address) - 1
    if first > last:
        return []
    gw = int(ipaddress.IPv4Address(gateway)) if gateway else None
    spans = [(first, last)]
    if gw is not None and first <= gw <= last:
        spans = [(a, b) for a, b in ((first, gw - 1), (gw + 1, last)) if a <= b]
    return [(str(ipaddress.IPv4Address(a)), str(ipaddress.IPv4Address(b))) for a, b in spans]


def _candidate_ints(cidr: str, ranges: Iterable[tuple[str, str]], gateway: str | None) -> Iterator[int]:
    skip = reserved(cidr, gateway)
    spans = sorted((int(ipaddress.IPv4Address(a)), int(ipaddress.IPv4Address(b))) for a, b in ranges)
    nxt = None
    for a, b in spans:
        if nxt is not None:
            a = max(a, nxt)
        for n in range(a, b + 1):
            if n not in skip:
                yield n
        nxt = b + 1 if nxt is None else max(nxt, b + 1)


def candidates(cidr: str, ranges: Iterable[tuple[str, str]], gateway: str | None) -> Iterator[str]:
    """Every address that may be handed out, lowest first (ranges are
    walked in address order; overlaps are walked once)."""
    for n in _candidate_ints(cidr, ranges, gateway):
        yield str(ipaddress.IPv4Address(n))


def lowest_free(cidr: str, ranges: Iterable[tuple[str, str]], gateway: str | None,
                used: Iterable[str], *, skip: Iterable[str] = ()) -> str | None:
    """The lowest address that may be handed out and is not in ``used`` (nor
    in ``skip``); None when the network is exhausted."""
    taken = {int(ipaddress.IPv4Address(a)) for a in used}
    taken.update(int(ipaddress.IPv4Address(a)) for a in skip)
    for n in _candidate_ints(cidr, ranges, gateway):
        if n not in taken:
            return str(ipaddress.IPv4Address(n))
    return None


def capacity(cidr: str, ranges: Iterable[tuple[str, str]], gateway: str | None) -> int:
    """How many addresses the ranges offer in all."""
    skip = reserved(cidr, gateway)
    total = 0
    nxt = None
    for a, b in sorted((int(ipaddress.IPv4Address(a)), int(ipaddress.IPv4Address(b))) for a, b in ranges):
        if nxt is not None:
            a = max(a, nxt)
        if a <= b:
            total += b - a + 1 - sum(1 for s in skip if a <= s <= b)
        nxt = b + 1 if nxt is None else max(nxt, b + 1)
    return total
