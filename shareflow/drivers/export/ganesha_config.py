"""Render NFS-Ganesha configuration from typed values. Pure: no I/O.

Everything written into a Ganesha file passes a strict check first, because a
stray ``;``, ``}`` or quote in a client or path would let a tenant inject
configuration (another EXPORT block, a wider client list). The checks accept
only canonical forms - they do not repair - so a value is either exactly what
it claims to be or refused with :class:`ExportError`.

A syntax error is worse than a refused change: on SIGHUP Ganesha then drops
*every* export. So rendering never emits anything it has not checked.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from shareflow.drivers.base import ClientRule
from shareflow.exceptions import ExportError

#: Ganesha export ids are 16 bit; 0 is the pseudo-filesystem root.
MIN_EXPORT_ID, MAX_EXPORT_ID = 1, 65535
ACCESS_TYPES = {"rw": "RW", "ro": "RO"}
PSEUDO_PREFIX = "/shares/"
_PATH = re.compile(r"^/[A-Za-z0-9/_.-]*$")
_PATH_MAX = 1024


def check_path(value: object, what: str = "path") -> str:
    """An absolute, normalised path of ``[A-Za-z0-9/_.-]`` only."""
    if not isinstance(value, str) or len(value) > _PATH_MAX or not _PATH.match(value):
        raise ExportError(f"invalid {what} {value!r}: absolute, letters, digits and /_.- only")
    parts = value.split("/")[1:]
    if value != "/" and any(p in ("", ".", "..") for p in parts):
        raise ExportError(f"invalid {what} {value!r}: not normalised")
    return value


def check_share_id(value: object) -> str:
    """A share id in canonical UUID form (it becomes part of a pseudo path)."""
    try:
        ok = str(uuid.UUID(value)) == value  # type: ignore[arg-type]
    except (ValueError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise ExportError(f"invalid share id {value!r}: expected a lowercase UUID")
    return value  # type: ignore[return-value]


def check_client(value: object) -> str:
    """An IPv4/IPv6 address or network that round-trips through ``ipaddress``
    unchanged (so it holds nothing but hex digits, dots, colons and a slash)."""
    try:
        if not isinstance(value, str):
            raise ValueError
        if "/" in value:
            ok = str(ipaddress.ip_network(value, strict=True)) == value
        else:
            ok = str(ipaddress.ip_address(value)) == value
    except ValueError:
        ok = False
    if not ok:
        raise ExportError(f"invalid client {value!r}: expected a canonical IP address or network")
    return value  # type: ignore[return-value]


def check_address(value: object) -> str:
    try:
        ok = isinstance(value, str) and str(ipaddress.ip_address(value)) == value
    except ValueError:
        ok = False
    if not ok:
        raise ExportError(f"invalid server address {value!r}")
    return value  # type: ignore[return-value]


def check_access_level(value: object) -> str:
    if value not in ACCESS_TYPES:
        raise ExportError(f"invalid access level {value!r}: expected rw or ro")
    return ACCESS_TYPES[value]  # type: ignore[index]


def check_export_id(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not MIN_EXPORT_ID <= value <= MAX_EXPORT_ID:
        raise ExportError(f"invalid export id {value!r}")
    return value


def check_port(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 65536:
        raise ExportError(f"invalid port {value!r}")
    return value


def pseudo_path(share_id: str) -> str:
    return PSEUDO_PREFIX + check_share_id(share_id)


@dataclass(frozen=True)
class ServerSpec:
    """What the main configuration file needs."""

    address: str
    port: int
    recovery_root: str
    exports_file: str


@dataclass(frozen=True)
class ExportSpec:
    export_id: int
    path: str
    pseudo: str
    clients: tuple[ClientRule, ...] = field(default_factory=tuple)


def render_main(spec: ServerSpec) -> str:
    # NFSv4 only, no NLM/RQUOTA/UDP side services: one TCP port per server,
    # so several servers can run side by side, one per network namespace.
    # Graceless: no recovery grace period (clients' state is not preserved
    # across restarts of this server anyway).
    return (
        "# Written by shareflow; changes are overwritten.\n"
        "NFS_CORE_PARAM {\n"
        "    Protocols = 4;\n"
        "    Enable_NLM = false;\n"
        "    Enable_RQUOTA = false;\n"
        "    Enable_UDP = false;\n"
        f"    Bind_addr = {check_address(spec.address)};\n"
        f"    NFS_Port = {check_port(spec.port)};\n"
        "}\n"
        "NFSV4 {\n"
        f'    RecoveryRoot = "{check_path(spec.recovery_root, "recovery root")}";\n'
        "    Graceless = true;\n"
        "}\n"
        "NFS_KRB5 {\n"
        "    Active_krb5 = false;\n"
        "}\n"
        f'%include "{check_path(spec.exports_file, "exports file")}"\n'
    )


def _rule_order(rule: ClientRule) -> tuple:
    # Ganesha applies the first CLIENT block that matches. Most specific
    # network first, and at equal specificity read-only first, so a narrower
    # or more restrictive rule is never shadowed by a broader one.
    net = ipaddress.ip_network(rule.access_to)
    return (net.version, -net.prefixlen, rule.access_level != "ro", int(net.network_address))


def client_rules(rules: Iterable[ClientRule]) -> list[ClientRule]:
    """Checked, de-duplicated rules in the order they are written."""
    unique = set()
    for r in rules:
        check_access_level(r.access_level)
        unique.add(ClientRule(check_client(r.access_to), r.access_level))
    return sorted(unique, key=_rule_order)


def render_export(export: ExportSpec) -> str:
    lines = [
        "EXPORT {",
        f"    Export_Id = {check_export_id(export.export_id)};",
        f'    Path = "{check_path(export.path)}";',
        f'    Pseudo = "{check_path(export.pseudo, "pseudo path")}";',
        # Nobody by default; each CLIENT block grants its clients access.
        # With no CLIENT block the export exists but no one can mount it.
        "    Access_Type = None;",
        "    Squash = No_Root_Squash;",
        # No attribute caching: a share's content may change under Ganesha (a
        # revert to a snapshot rewrites it in place), and clients must see
        # that at once, not when a cached entry expires (60 s by default).
        "    Attr_Expiration_Time = 0;",
        "    Protocols = 4;",
        "    SecType = sys;",
        "    FSAL { Name = VFS; }",
    ]
    for rule in client_rules(export.clients):
        # Clients are not quoted: Ganesha refuses a quoted string as a client.
        lines.append(
            f"    CLIENT {{ Clients = {rule.access_to}; Access_Type = {ACCESS_TYPES[rule.access_level]}; Protocols = 4; }}"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_exports(exports: Iterable[ExportSpec]) -> str:
    """The exports file: every export, ordered by id, ids and pseudo paths unique."""
    exports = sorted(exports, key=lambda e: e.export_id)
    seen_ids, seen_pseudo = set(), set()
    for e in exports:
        if e.export_id in seen_ids:
            raise ExportError(f"duplicate export id {e.export_id}")
        if e.pseudo in seen_pseudo:
            raise ExportError(f"duplicate pseudo path {e.pseudo}")
        seen_ids.add(e.export_id)
        seen_pseudo.add(e.pseudo)
    body = "".join(render_export(e) for e in exports)
    return "# Written by shareflow from exports.json; changes are overwritten.\n" + body
