"""Render NFS-Ganesha configuration from typed values. Pure: no I/O.

Every value enters a Ganesha file through one function, :func:`token`: it
checks the value against the one lexical class the file needs there and
returns its text, or refuses it with :class:`ExportError`. A stray ``;``,
``}``, ``%`` or quote in a client or path would otherwise end a token early
and let a tenant inject configuration (another EXPORT block, a wider client
list) or make Ganesha refuse the whole file. The checks accept only canonical
forms - they do not repair - and only what Ganesha 4.3's lexer
(``src/config_parsing/conf_lex.l``) reads back as exactly one token of the
intended kind, so rendering never emits text Ganesha would refuse to parse.
The template text around the tokens is constant.
"""

from __future__ import annotations

import ipaddress
import json
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
# fullmatch, not match with "$": "$" also matches before a final newline.
_PATH = re.compile(r"/[A-Za-z0-9/_.-]*", re.ASCII)
_PATH_MAX = 1024


def check_path(value: object, what: str = "path") -> str:
    """An absolute, normalised path of ``[A-Za-z0-9/_.-]`` only."""
    if not isinstance(value, str) or len(value) > _PATH_MAX or not _PATH.fullmatch(value):
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


# Ganesha 4.3's lexical classes for what shareflow writes unquoted (the
# definitions in conf_lex.l, as Python patterns). Its CIDR suffix is one or
# two digits from 1: "/0" and IPv6 prefixes of 100 or more do not lex as part
# of an address, and a bare 0.0.0.0 lexes as the wildcard that means "any
# client" (like "*").
_GANESHA_CIDR = r"/[1-9][0-9]?"
_V4OCTET = r"[0-9]{1,3}"
_IPV4ADDR = rf"{_V4OCTET}\.{_V4OCTET}\.{_V4OCTET}\.{_V4OCTET}"
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4ADDR})"
_IPV6ADDR = "|".join([
    rf"(?:{_H16}:){{6}}{_LS32}",
    rf"::(?:{_H16}:){{5}}{_LS32}",
    rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
    rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
    rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
])
_GANESHA_ADDRESS = re.compile(rf"(?:{_IPV4ADDR}|(?:{_IPV6ADDR}))", re.ASCII)
_GANESHA_CLIENT = re.compile(rf"(?:{_IPV4ADDR}|(?:{_IPV6ADDR})){_GANESHA_CIDR}|(?:{_IPV4ADDR}|(?:{_IPV6ADDR}))", re.ASCII)
_GANESHA_V4_ANY = "0.0.0.0"
_DECIMAL = re.compile(r"0|[1-9][0-9]*", re.ASCII)
#: Words shareflow writes as values (Access_Type and the like).
_KEYWORDS = frozenset({"RW", "RO", "None"})


def token(kind: str, value: object) -> str:
    """The text of ``value`` as one Ganesha configuration token of ``kind``;
    the only way a value gets into a rendered file. ``kind`` is one of:

    * ``"number"``: a non-negative int, written in decimal;
    * ``"path"``: a path (:func:`check_path`), written double-quoted - its
      characters need no escaping, so there is none;
    * ``"address"``: a canonical IP address (a server's Bind_addr);
    * ``"client"``: a canonical IP address or network that Ganesha reads as
      exactly that address or network (see :func:`client_tokens`);
    * ``"keyword"``: one of a fixed set of words (``RW``, ``RO``, ``None``).

    Anything else is refused with :class:`ExportError`.
    """
    if kind == "number":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ExportError(f"invalid number {value!r}")
        text = str(value)
        ok = bool(_DECIMAL.fullmatch(text))
    elif kind == "path":
        text = '"' + check_path(value) + '"'
        ok = True
    elif kind == "address":
        text = check_address(value)
        ok = bool(_GANESHA_ADDRESS.fullmatch(text))
    elif kind == "client":
        text = check_client(value)
        ok = bool(_GANESHA_CLIENT.fullmatch(text)) and text != _GANESHA_V4_ANY
    elif kind == "keyword":
        text = value if isinstance(value, str) else ""
        ok = value in _KEYWORDS
    else:
        raise ExportError(f"unknown token kind {kind!r}")
    if not ok:
        raise ExportError(f"{value!r} cannot be written as a Ganesha {kind}",
                          user_message=f"the NFS server cannot take the {kind} {value!r}")
    return text


def client_tokens(access_to: str) -> list[str]:
    """The Ganesha client tokens that match exactly the clients of rule
    ``access_to`` (a canonical address or network, as :func:`check_client`).

    Ganesha 4.3 cannot read three forms as they are, so they are rewritten to
    ones that match the same clients:

    * ``0.0.0.0/0`` and ``::/0`` (everyone; ``0.0.0.0/0`` is manila-csi's
      default client) are the two halves ``0.0.0.0/1, 128.0.0.0/1`` and
      ``::/1, 8000::/1`` - not ``*``, which would let in the other address
      family too;
    * the single address ``0.0.0.0`` is ``0.0.0.0/32``: bare, Ganesha reads
      it as its "any client" wildcard.

    IPv6 networks of /100 to /127 cannot be written at all (Ganesha reads at
    most two prefix digits) and are refused with a message for the user.
    """
    net = ipaddress.ip_network(check_client(access_to))
    if net.prefixlen == 0:
        halves = net.subnets(prefixlen_diff=1)
        return [token("client", str(half)) for half in halves]
    if net.num_addresses == 1:
        address = str(net.network_address)
        if address == _GANESHA_V4_ANY:
            return [token("client", f"{address}/{net.prefixlen}")]
        return [token("client", address)]
    if net.version == 6 and net.prefixlen >= 100:
        raise ExportError(
            f"cannot write client {access_to}: Ganesha takes IPv6 prefixes up to /99",
            user_message=(f"the NFS server cannot take the IPv6 network {access_to}: "
                          "prefixes longer than /99 are not supported; allow a shorter prefix "
                          "or single addresses"),
        )
    return [token("client", str(net))]


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
        f"    Bind_addr = {token('address', spec.address)};\n"
        f"    NFS_Port = {token('number', check_port(spec.port))};\n"
        "}\n"
        "NFSV4 {\n"
        f"    RecoveryRoot = {token('path', check_path(spec.recovery_root, 'recovery root'))};\n"
        "    Graceless = true;\n"
        "}\n"
        "NFS_KRB5 {\n"
        "    Active_krb5 = false;\n"
        "}\n"
        f"%include {token('path', check_path(spec.exports_file, 'exports file'))}\n"
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


#: The options every export shareflow writes sets, each the same way for all.
#: An export file (``AddExport`` reads it alone) has them in its block; the
#: exports file a server starts with has them once, in EXPORT_DEFAULTS (see
#: :func:`render_start_exports`).
SHARED_OPTIONS = (
    # Nobody by default; each CLIENT block grants its clients access.
    # With no CLIENT block the export exists but no one can mount it.
    "Access_Type = None;",
    "Squash = No_Root_Squash;",
    # No attribute caching: a share's content may change under Ganesha (a
    # revert to a snapshot rewrites it in place), and clients must see
    # that at once, not when a cached entry expires (60 s by default).
    "Attr_Expiration_Time = 0;",
    "Protocols = 4;",
    "SecType = sys;",
)
_SHARED_LINES = frozenset(SHARED_OPTIONS)
#: What a CLIENT block sets besides its clients and access type.
_CLIENT_OPTIONS = " Protocols = 4;"


def render_export(export: ExportSpec, *, shared_options: bool = True) -> str:
    """The EXPORT block; without ``shared_options`` (SHARED_OPTIONS, and the
    CLIENT blocks' protocols) for a file whose EXPORT_DEFAULTS sets them."""
    lines = [
        "EXPORT {",
        f"    Export_Id = {token('number', check_export_id(export.export_id))};",
        f"    Path = {token('path', export.path)};",
        f"    Pseudo = {token('path', check_path(export.pseudo, 'pseudo path'))};",
    ]
    if shared_options:
        lines += [f"    {option}" for option in SHARED_OPTIONS]
    lines.append("    FSAL { Name = VFS; }")
    for rule in client_rules(export.clients):
        # Clients are not quoted: Ganesha refuses a quoted string as a client.
        clients = ", ".join(client_tokens(rule.access_to))
        level = token("keyword", ACCESS_TYPES[rule.access_level])
        extra = _CLIENT_OPTIONS if shared_options else ""
        lines.append(f"    CLIENT {{ Clients = {clients}; Access_Type = {level};{extra} }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_start_exports(texts: Iterable[str]) -> str:
    """The exports file a server reads at its start, from its export files'
    ``texts``: SHARED_OPTIONS once in EXPORT_DEFAULTS, then each export's
    block without them - the same exports as the files' blocks, in 15
    configuration tokens each instead of 27 (one client). NFS-Ganesha 4.3's
    lexer compares every token it reads with every distinct token kept so
    far (``save_token``), so a start costs tokens x distinct tokens.
    EXPORT_DEFAULTS applies to what an export and its CLIENT blocks leave
    unset; the pseudo root sets its access, squash, protocols and security
    itself, so only its attribute expiry (0: not cached) comes from here.
    The blocks are the files' own text with those lines taken out (a
    shareflow export file's block is ``render_export``'s: every line of it
    but those is kept as it is), not rendered again: 5,000 files are then
    0.02 s of the start instead of 0.3; the files were checked as they were
    written, and Ganesha reads them as they are on ``AddExport`` too. A
    text that is not a shareflow export file is included as it is."""
    blocks = []
    for text in texts:
        if not text.startswith(EXPORT_FILE_HEADER):
            blocks.append(text)
            continue
        kept = [line for line in text.splitlines(keepends=True)
                if line.strip() not in _SHARED_LINES and not line.startswith("#")]
        blocks.append("".join(kept).replace(_CLIENT_OPTIONS + " }", " }"))
    head = "EXPORT_DEFAULTS {\n" + "".join(f"    {option}\n" for option in SHARED_OPTIONS) + "}\n"
    return "# Written by shareflow from exports.d/ at each start.\n" + head + "".join(blocks)


#: First line of an export file: the export as shareflow means it (Ganesha
#: reads it as a comment). The file is the one durable record of the export.
EXPORT_FILE_HEADER = "# shareflow-export "


def render_export_file(export: ExportSpec) -> str:
    """One export's file: its spec as a JSON comment, then its EXPORT block
    (rendered first: a value Ganesha would not read refuses the whole file)."""
    block = render_export(export)
    spec = {"export_id": export.export_id, "path": export.path, "pseudo": export.pseudo,
            "clients": [c.to_json() for c in client_rules(export.clients)]}
    return EXPORT_FILE_HEADER + json.dumps(spec, sort_keys=True) + "\n" + block


def parse_export_file(text: str) -> ExportSpec:
    """The spec in an export file's first line, every value checked again."""
    first, _, _ = text.partition("\n")
    if not first.startswith(EXPORT_FILE_HEADER):
        raise ExportError("not a shareflow export file")
    try:
        data = json.loads(first[len(EXPORT_FILE_HEADER):])
        spec = ExportSpec(
            export_id=check_export_id(data["export_id"]),
            path=check_path(data["path"]),
            pseudo=check_path(data["pseudo"], "pseudo path"),
            clients=tuple(client_rules(ClientRule.from_json(c) for c in data["clients"])),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise ExportError(f"unreadable export file: {e}") from e
    return spec


def render_includes(paths: Iterable[str]) -> str:
    """The exports file as the export server reads it at start: one
    ``%include`` per export file."""
    body = "".join(f"%include {token('path', p)}\n" for p in paths)
    return "# Written by shareflow at each start: one include per export file.\n" + body


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
    return "# Written by shareflow; changes are overwritten.\n" + body
