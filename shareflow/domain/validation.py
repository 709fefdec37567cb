"""Validation of everything a request carries, before it touches state.

Pure: no I/O. Each function returns the normalised value or raises
:class:`InvalidInput` with a message fit for the user. Values that later reach
a Ganesha config file or a command line (addresses, names, ids) are normalised
here into forms that cannot carry anything but what they claim to be.
"""

from __future__ import annotations

import ipaddress
import math
import re
import uuid
from typing import Any

from shareflow.exceptions import InvalidInput

SUPPORTED_PROTOCOLS = ("NFS",)
#: Protocols Manila knows; asking one of these gets "not supported here",
#: anything else gets "invalid protocol" (Manila's distinction).
KNOWN_PROTOCOLS = ("NFS", "CIFS", "GLUSTERFS", "HDFS", "CEPHFS", "MAPRFS")
ACCESS_TYPES = ("ip",)
KNOWN_ACCESS_TYPES = ("ip", "user", "cert", "cephx")
ACCESS_LEVELS = ("rw", "ro")
NAME_MAX = 255
DESCRIPTION_MAX = 255
METADATA_KEY_MAX = 255
METADATA_VALUE_MAX = 1023
#: Largest share size accepted at all; the pools decide what really fits.
SIZE_MAX_GB = 1 << 20

_EXTRA_SPEC_KEY = re.compile(r"^[A-Za-z0-9_.:\-]{1,255}$")
_SHARE_TYPE_NAME = re.compile(r"^[A-Za-z0-9_.\- ]{1,255}$")


# --- typed readers of JSON values ---------------------------------------------
# The request decoder (shareflow.api.codec) already refused bodies that are not
# JSON or hold text that is not storable; these refuse a field whose JSON type
# is not the one it takes (an empty list or object is not "no value"), so no
# value is ever coerced by its truthiness.


def json_type(value: Any) -> str:
    """The JSON type of a decoded value, for messages (never the value itself:
    it may be large)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    return type(value).__name__


def optional_ref(value: Any, what: str, limit: int = 255) -> str | None:
    """An optional id or name of something (a share type, a snapshot, a zone):
    a string, or null or "" for none, as Manila reads these."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"Invalid {what}: expected a string or null, got {json_type(value)}.")
    if len(value) > limit:
        raise InvalidInput(f"Invalid {what}: longer than {limit} characters.")
    return value


def optional_boolean(value: Any, what: str, default: bool | None = None) -> bool | None:
    """A boolean field that may be absent or null (then ``default``)."""
    return default if value is None else boolean(value, what)


def optional_object(value: Any, what: str) -> dict:
    """An object field that may be absent or null (then empty)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput(f"Invalid {what}: expected an object, got {json_type(value)}.")
    return value


def require_dict(body: Any, key: str) -> dict:
    """The request body must be an object holding an object under ``key``."""
    if not isinstance(body, dict) or not isinstance(body.get(key), dict):
        raise InvalidInput(f"Malformed request body: expected a '{key}' object.")
    return body[key]


def uuid_str(value: Any, what: str = "id") -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"Invalid {what}: expected a UUID string, got {json_type(value)}.")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInput(f"Invalid {what}: {value[:64]!r} is not a UUID.") from None


def share_size(value: Any) -> int:
    """A positive whole number of GiB (Manila accepts digit strings too)."""
    size = None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and value.strip().isdigit():
        size = int(value)
    if size is None or size <= 0:
        raise InvalidInput(f"Share size {value!r} must be an integer and greater than 0.")
    if size > SIZE_MAX_GB:
        raise InvalidInput(f"Share size {size} exceeds the maximum of {SIZE_MAX_GB} GiB.")
    return size


def share_protocol(value: Any) -> str:
    proto = value.upper() if isinstance(value, str) else None
    if proto not in KNOWN_PROTOCOLS:
        raise InvalidInput(f"Invalid share protocol provided: {value!r}.")
    if proto not in SUPPORTED_PROTOCOLS:
        raise InvalidInput(
            f"Share protocol {proto} is not supported; supported: {', '.join(SUPPORTED_PROTOCOLS)}."
        )
    return proto


def optional_text(value: Any, what: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a string, got {json_type(value)}.")
    if len(value) > limit:
        raise InvalidInput(f"{what} is longer than {limit} characters.")
    if "\x00" in value:
        raise InvalidInput(f"{what} must not contain NUL characters.")
    return value


def share_name(value: Any) -> str | None:
    return optional_text(value, "Share name", NAME_MAX)


def share_description(value: Any) -> str | None:
    return optional_text(value, "Share description", DESCRIPTION_MAX)


def boolean(value: Any, what: str) -> bool:
    """Manila's lenient booleans: true/false, yes/no, 1/0, on/off."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "t", "yes", "y", "1", "on"):
            return True
        if v in ("false", "f", "no", "n", "0", "off"):
            return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    shown = repr(value[:64]) if isinstance(value, str) else json_type(value)
    raise InvalidInput(f"{what} must be a boolean, got {shown}.")


def metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("Metadata must be an object of string keys and values.")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k or len(k) > METADATA_KEY_MAX:
            raise InvalidInput(f"Metadata key {k!r} must be 1 to {METADATA_KEY_MAX} characters.")
        if not isinstance(v, str) or len(v) > METADATA_VALUE_MAX:
            raise InvalidInput(f"Metadata value for {k!r} must be a string of at most {METADATA_VALUE_MAX} characters.")
        out[k] = v
    return out


def access_type(value: Any) -> str:
    if value not in KNOWN_ACCESS_TYPES:
        raise InvalidInput(f"Invalid access type {value!r}; only 'ip' is supported.")
    if value not in ACCESS_TYPES:
        raise InvalidInput(f"Access type {value!r} is not supported by NFS shares here; use 'ip'.")
    return value


def access_level(value: Any) -> str:
    if value is None:
        return "rw"
    if value not in ACCESS_LEVELS:
        raise InvalidInput(f"Invalid access level {value!r}; must be one of: rw, ro.")
    return value


def ip_access_to(value: Any, *, ipv6: bool = True) -> str:
    """An ``ip`` rule's ``access_to``, accepted exactly when Manila accepts it
    (``manila.api.common.validate_ip``: ``ipaddress.ip_network(str(value))``,
    strict, so a network with host bits set is refused; IPv4 only before
    microversion 2.38, ``ipv6=False``) and refused with Manila's message (the
    ``ipaddress`` error text). One addition: an IPv6 scope (``fe80::1%lo``).
    Python >= 3.9 parses one, so Manila on such a Python lets it through, but
    a scope names an interface of the *client's* host, which means nothing in
    a server's client list (and no export server can read it); it gets the
    message Manila gave before Python knew scopes.

    The result is normalised (``192.0.2.7/32`` -> ``192.0.2.7``,
    ``2001:DB8::/32`` -> ``2001:db8::/32``): the one spelling by which rules
    are compared and written to the export server (only hex digits, dots,
    colons and at most one slash). The rule itself keeps the spelling it was
    given, as Manila stores and shows it (see :func:`canonical_ip`)."""
    try:
        text = value if isinstance(value, str) else str(value)
        if ipv6 and "%" in text:
            raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 network")
        net = ipaddress.ip_network(text) if ipv6 else ipaddress.IPv4Network(text)
    except ValueError as e:
        raise InvalidInput(str(e)) from None
    if net.num_addresses == 1:
        return str(net.network_address)
    return str(net)


def canonical_ip(access_to: str) -> str:
    """The normalised spelling of a stored ip rule (as :func:`ip_access_to`
    gives it); ``ValueError`` for text that is no address or network (a rule
    stored before the API refused it, e.g. with a scope id)."""
    if "%" in access_to:
        raise ValueError(f"{access_to!r} has a scope id")
    net = ipaddress.ip_network(access_to)
    return str(net.network_address) if net.num_addresses == 1 else str(net)


#: The longest IPv6 prefix the export server (NFS-Ganesha 4.3) can read in a
#: client list: its lexer takes at most two prefix digits, so /100 to /127
#: are not addresses to it and the whole export would be refused.
EXPORTABLE_IPV6_PREFIX_MAX = 99


def exportable_ip_access_to(access_to: str) -> str:
    """A valid (normalised) ip rule that the export server can also take, or
    400 before anything is stored: a rule it cannot read would otherwise be
    accepted, fail on the server and end ``error``. Single addresses (/128)
    and the prefixes /1 to /99 of IPv6, and every IPv4 rule, are taken."""
    net = ipaddress.ip_network(access_to)
    if net.version == 6 and EXPORTABLE_IPV6_PREFIX_MAX < net.prefixlen < 128:
        raise InvalidInput(
            f"IPv6 network {access_to} cannot be exported: the NFS server takes IPv6 prefixes "
            f"up to /{EXPORTABLE_IPV6_PREFIX_MAX} and single addresses; allow a shorter prefix "
            "or the addresses one by one."
        )
    return access_to


def share_type_name(value: Any) -> str:
    if not isinstance(value, str) or not _SHARE_TYPE_NAME.match(value) or value != value.strip():
        raise InvalidInput(
            "Share type name must be 1 to 255 letters, digits, spaces, '_', '-' or '.'."
        )
    return value


def extra_specs(value: Any, *, numbers: bool = False) -> dict[str, str]:
    """Extra specs are string -> string. JSON booleans are taken as Manila
    stores them (``str(True)``), numbers only where Manila takes them
    (``numbers``: a type's create, which stores what it is given, while the
    extra-specs routes refuse anything but strings and booleans). Values of
    the keys whose meaning is boolean are normalised to 'True'/'False', and
    ``availability_zones`` must be a list of names separated by commas
    (Manila's ``is_valid_csv``), kept without the spaces around them."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("Extra specs must be an object.")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not _EXTRA_SPEC_KEY.match(k):
            raise InvalidInput(f"Invalid extra spec key {k!r}.")
        if isinstance(v, bool) or (numbers and isinstance(v, int | float) and math.isfinite(v)):
            v = str(v)
        if not isinstance(v, str) or len(v) > 255:
            raise InvalidInput(f"Invalid extra_spec: {k}: {v!r}; must be a string of at most 255 characters.")
        if k in BOOLEAN_EXTRA_SPECS:
            v = str(boolean(v, f"Extra spec {k}"))
        if k == AVAILABILITY_ZONES:
            v = availability_zones_spec(v)
        out[k] = v
    return out


AVAILABILITY_ZONES = "availability_zones"


def availability_zones_spec(value: str) -> str:
    """``az1, az2`` -> ``az1,az2``; an empty name anywhere (``az1,,az2``,
    a trailing comma) is Manila's 400."""
    names = [v.strip() for v in value.split(",")]
    if not all(names):
        raise InvalidInput("Value of optional extra_spec availability_zones is not valid.")
    return ",".join(names)


def zones_of(specs: dict[str, str]) -> list[str]:
    """The zones a type's ``availability_zones`` spec names ([]: any)."""
    value = specs.get(AVAILABILITY_ZONES) or ""
    return [v.strip() for v in value.split(",") if v.strip()]


DHSS = "driver_handles_share_servers"
BOOLEAN_EXTRA_SPECS = frozenset(
    {
        DHSS,
        "snapshot_support",
        "create_share_from_snapshot_support",
        "revert_to_snapshot_support",
        "mount_snapshot_support",
    }
)


def required_extra_specs(specs: dict[str, str]) -> dict[str, str]:
    """A share type must say whether the driver handles share servers."""
    if DHSS not in specs:
        raise InvalidInput(f"Required extra specification '{DHSS}' is missing.")
    return specs


# --- provider networks (IPv4 only) --------------------------------------------

#: A Linux interface name (IFNAMSIZ - 1 = 15 characters) made only of
#: characters that are safe on an ``ip`` command line: no '/', ':', spaces,
#: and no leading '-' or '.'.
_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,14}$")
MTU_MIN = 576
MTU_MAX = 9000
#: The smallest network that still has an address between network and broadcast.
PREFIX_MAX = 30
MAX_ALLOCATION_RANGES = 64


def bridge_name(value: Any) -> str:
    """A Linux bridge's name, as the kernel accepts it for an interface."""
    if not isinstance(value, str) or not _IFNAME.fullmatch(value):
        raise InvalidInput(
            f"Invalid bridge name {value!r}: a Linux interface name is 1 to 15 letters, digits, "
            "'_', '.' or '-', not starting with '-' or '.'."
        )
    return value


def network_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput("Provider network name must be a non-empty string.")
    if value != value.strip():
        raise InvalidInput("Provider network name must not start or end with spaces.")
    return optional_text(value, "Provider network name", NAME_MAX)


def _ipv6_refused(value: str, what: str) -> None:
    try:
        ipaddress.IPv6Network(value, strict=False)
    except ValueError:
        return
    raise InvalidInput(f"Invalid {what} {value!r}: IPv6 is not supported, only IPv4.")


def ipv4_cidr(value: Any) -> str:
    """An IPv4 network ``a.b.c.d/n`` (no host bits set, /30 or larger), normalised."""
    if not isinstance(value, str) or not value or len(value) > 64 or "/" not in value:
        raise InvalidInput(f"Invalid CIDR {value!r}: expected an IPv4 network such as 192.0.2.0/24.")
    _ipv6_refused(value, "CIDR")
    try:
        loose = ipaddress.IPv4Network(value, strict=False)
    except ValueError:
        raise InvalidInput(f"Invalid CIDR {value!r}: expected an IPv4 network such as 192.0.2.0/24.") from None
    if loose.network_address != ipaddress.IPv4Address(value.split("/", 1)[0]):
        raise InvalidInput(f"Invalid CIDR {value!r}: host bits are set; did you mean {loose}?")
    if loose.prefixlen > PREFIX_MAX:
        raise InvalidInput(f"Invalid CIDR {value!r}: the network must be /{PREFIX_MAX} or larger.")
    return str(loose)


def ipv4_address(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise InvalidInput(f"Invalid {what} {value!r}: expected an IPv4 address.")
    _ipv6_refused(value, what)
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise InvalidInput(f"Invalid {what} {value!r}: expected an IPv4 address.") from None


def gateway(cidr: str, value: Any) -> str | None:
    """An address inside ``cidr`` (already validated), neither its network nor
    its broadcast address; None for no gateway."""
    if value is None or value == "":
        return None
    address = ipv4_address(value, "gateway")
    net = ipaddress.IPv4Network(cidr)
    ip = ipaddress.IPv4Address(address)
    if ip not in net:
        raise InvalidInput(f"Gateway {address} is not inside the network {cidr}.")
    if ip in (net.network_address, net.broadcast_address):
        raise InvalidInput(f"Gateway {address} is the network or broadcast address of {cidr}.")
    return address


def allocation_ranges(cidr: str, value: Any, gateway_address: str | None) -> list[tuple[str, str]]:
    """``[{"start": A, "end": B}, ...]`` (or ``"A-B"`` strings), each inside
    ``cidr``, not covering its network or broadcast address nor the gateway,
    not overlapping one another; sorted. None: the whole CIDR minus network,
    broadcast and gateway addresses."""
    from shareflow.domain import ipam

    if value is None:
        return ipam.default_ranges(cidr, gateway_address)
    if not isinstance(value, list) or not value:
        raise InvalidInput('Allocation ranges must be a non-empty list of {"start": A, "end": B}.')
    if len(value) > MAX_ALLOCATION_RANGES:
        raise InvalidInput(f"At most {MAX_ALLOCATION_RANGES} allocation ranges are allowed.")
    net = ipaddress.IPv4Network(cidr)
    gw = ipaddress.IPv4Address(gateway_address) if gateway_address else None
    spans = []
    for item in value:
        if isinstance(item, str) and item.count("-") == 1:
            start, end = item.split("-")
        elif isinstance(item, dict) and set(item) == {"start", "end"}:
            start, end = item["start"], item["end"]
        else:
            raise InvalidInput(
                f'Invalid allocation range {item!r}: expected {{"start": A, "end": B}} or "A-B".'
            )
        a = ipaddress.IPv4Address(ipv4_address(start, "allocation range start"))
        b = ipaddress.IPv4Address(ipv4_address(end, "allocation range end"))
        text = f"{a}-{b}"
        if a > b:
            raise InvalidInput(f"Allocation range {text}: the start is after the end.")
        if a not in net or b not in net:
            raise InvalidInput(f"Allocation range {text} is not inside the network {cidr}.")
        if a == net.network_address or b == net.broadcast_address:
            raise InvalidInput(
                f"Allocation range {text} includes the network or broadcast address of {cidr}."
            )
        if gw is not None and a <= gw <= b:
            raise InvalidInput(f"Allocation range {text} includes the gateway {gw}.")
        spans.append((a, b))
    spans.sort()
    for (a1, b1), (a2, b2) in zip(spans, spans[1:]):
        if a2 <= b1:
            raise InvalidInput(f"Allocation ranges {a1}-{b1} and {a2}-{b2} overlap.")
    return [(str(a), str(b)) for a, b in spans]


def mtu(value: Any) -> int:
    """MTU in bytes, 576 to 9000; None means 1500."""
    if value is None:
        return 1500
    n = None
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    elif isinstance(value, str) and value.strip().isdigit():
        n = int(value)
    if n is None or not MTU_MIN <= n <= MTU_MAX:
        raise InvalidInput(f"Invalid MTU {value!r}: expected an integer from {MTU_MIN} to {MTU_MAX}.")
    return n
