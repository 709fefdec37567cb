"""Network namespaces, bridges, veth pairs and addresses, through ``ip``.

Used by the tests to build an isolated NFS network, and later by share
servers. Every name is validated before it reaches a command line, commands
address a namespace with ``ip -n`` (no shell, no ``ip netns exec``), and every
delete tolerates absence so teardown can always be re-run.

Programs that must *run* inside a namespace are started with
:func:`exec_argv`, which uses ``nsenter --net`` only: ``ip netns exec`` would
also give them a private mount namespace, hiding every mount made after they
started (an NFS server would then export empty directories).
"""

from __future__ import annotations

import ipaddress
import os
import re

from shareflow.exceptions import CommandError, NetworkError
from shareflow.system.process import run

NETNS_DIR = "/run/netns"
DEFAULT_TIMEOUT = 10.0

# No leading "-" (it would read as an option of ip/nsenter) or "." (hidden
# files, "." and ".." under /run/netns).
_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$")
_NSNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def _check(pattern: re.Pattern, value: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise NetworkError(f"invalid {what} name {value!r}")
    return value


def ifname(value: str) -> str:
    """An interface name the kernel accepts (at most 15 characters)."""
    return _check(_IFNAME, value, "interface")


def nsname(value: str) -> str:
    """A namespace name that is also a safe file name under /run/netns."""
    return _check(_NSNAME, value, "network namespace")


def interface_address(value: str) -> str:
    """An address with prefix length (``192.0.2.1/24``), normalised."""
    try:
        return str(ipaddress.ip_interface(value))
    except (ValueError, TypeError):
        raise NetworkError(f"invalid interface address {value!r}") from None


def ns_path(ns: str) -> str:
    return os.path.join(NETNS_DIR, nsname(ns))


def exists(ns: str) -> bool:
    return os.path.exists(ns_path(ns))


def exec_argv(ns: str | None, argv: list[str]) -> list[str]:
    """``argv`` prefixed to run in network namespace ``ns`` (network only;
    see the module docstring). ``None``/``""``: the host's namespace."""
    if not ns:
        return list(argv)
    return ["nsenter", f"--net={ns_path(ns)}", "--", *argv]


def _ip(ns: str | None, *args: str, timeout: float = DEFAULT_TIMEOUT):
    argv = ["ip"] + (["-n", nsname(ns)] if ns else []) + list(args)
    return run(argv, timeout=timeout)


def create(ns: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Create namespace ``ns`` with its loopback up. Already there: reused."""
    if not exists(ns):
        try:
            run(["ip", "netns", "add", nsname(ns)], timeout=timeout)
        except CommandError:
            if not exists(ns):  # lost a race with another creator: fine
                raise
    _ip(ns, "link", "set", "lo", "up", timeout=timeout)


def delete(ns: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Delete namespace ``ns`` (its interfaces go with it). Absent: nothing to do."""
    if not exists(ns):
        return
    try:
        run(["ip", "netns", "delete", nsname(ns)], timeout=timeout)
    except CommandError:
        if exists(ns):  # still there: a real failure
            raise


def link_exists(name: str, ns: str | None = None) -> bool:
    return _ip_ok(ns, "link", "show", "dev", ifname(name))


def _ip_ok(ns: str | None, *args: str) -> bool:
    try:
        _ip(ns, *args)
        return True
    except CommandError:
        return False


def add_bridge(name: str, ns: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Create bridge ``name`` (in ``ns``) and bring it up. Already there: reused."""
    if not link_exists(name, ns):
        _ip(ns, "link", "add", ifname(name), "type", "bridge", timeout=timeout)
    set_up(name, ns, timeout=timeout)


def add_veth(
    name: str,
    ns: str | None,
    peer: str,
    peer_ns: str | None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
) -> None:
    """Create a veth pair with each end created directly in its namespace, so
    no name is ever taken in the host's namespace (parallel runs cannot clash).
    Already there: reused."""
    if link_exists(name, ns):
        return
    argv = ["link", "add", ifname(name)]
    if ns:
        argv += ["netns", nsname(ns)]
    argv += ["type", "veth", "peer", "name", ifname(peer)]
    if peer_ns:
        argv += ["netns", nsname(peer_ns)]
    _ip(None, *argv, timeout=timeout)


def set_master(name: str, bridge: str, ns: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    _ip(ns, "link", "set", "dev", ifname(name), "master", ifname(bridge), timeout=timeout)


def set_up(name: str, ns: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    _ip(ns, "link", "set", "dev", ifname(name), "up", timeout=timeout)


def set_mtu(name: str, mtu: int, ns: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not 68 <= mtu <= 65535:
        raise NetworkError(f"invalid MTU {mtu!r}")
    _ip(ns, "link", "set", "dev", ifname(name), "mtu", str(mtu), timeout=timeout)


_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def set_mac(name: str, mac: str, ns: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Give interface ``name`` the hardware address ``mac`` (lowercase, colon-separated)."""
    if not isinstance(mac, str) or not _MAC.match(mac):
        raise NetworkError(f"invalid MAC address {mac!r}")
    _ip(ns, "link", "set", "dev", ifname(name), "address", mac, timeout=timeout)


def set_default_route(gateway: str, ns: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Route everything not on a local network via ``gateway`` (replacing any
    default route), in namespace ``ns``."""
    try:
        via = str(ipaddress.ip_address(gateway))
    except (ValueError, TypeError):
        raise NetworkError(f"invalid gateway {gateway!r}") from None
    _ip(ns, "route", "replace", "default", "via", via, timeout=timeout)


def add_address(name: str, address: str, ns: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Add ``address`` (with prefix, e.g. ``192.0.2.1/24``) to interface ``name``.
    Already there: nothing to do."""
    addr = interface_address(address)
    try:
        _ip(ns, "addr", "add", addr, "dev", ifname(name), timeout=timeout)
    except CommandError as e:
        text = e.stderr.lower()
        if "exists" not in text and "already assigned" not in text:
            raise


def delete_link(name: str, ns: str | None = None, *, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Delete interface ``name`` (a veth takes its peer with it). Absent: nothing to do."""
    if ns and not exists(ns):
        return
    try:
        _ip(ns, "link", "delete", "dev", ifname(name), timeout=timeout)
    except CommandError:
        if link_exists(name, ns):  # still there: a real failure
            raise
