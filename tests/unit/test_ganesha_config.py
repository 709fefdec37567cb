"""Ganesha configuration rendering and the checks that keep injection out."""

import json
import re
import uuid

import pytest

from shareflow.drivers.base import ClientRule
from shareflow.drivers.export import ganesha_config as gc
from shareflow.drivers.export.ganesha import location
from shareflow.drivers.export.ganesha_server import log_errors
from shareflow.exceptions import ExportError

SID = "0b2c1d3e-0000-4000-8000-000000000001"


def export(*rules, export_id=100, path="/srv/exports/" + SID):
    return gc.ExportSpec(export_id, path, gc.pseudo_path(SID), tuple(ClientRule(*r) for r in rules))


def test_render_main():
    text = gc.render_main(gc.ServerSpec("192.0.2.1", 2049, "/var/g/recovery", "/var/g/exports.conf"))
    assert "Protocols = 4;" in text
    assert "Bind_addr = 192.0.2.1;" in text
    assert "NFS_Port = 2049;" in text
    assert 'RecoveryRoot = "/var/g/recovery";' in text
    assert "Graceless = true;" in text
    assert "Enable_NLM = false;" in text and "Enable_RQUOTA = false;" in text
    assert text.rstrip().endswith('%include "/var/g/exports.conf"')


def test_render_export_block():
    text = gc.render_exports([export(("192.0.2.10", "rw"))])
    assert "Export_Id = 100;" in text
    assert f'Path = "/srv/exports/{SID}";' in text
    assert f'Pseudo = "/shares/{SID}";' in text
    assert "Access_Type = None;" in text
    assert "FSAL { Name = VFS; }" in text
    assert "CLIENT { Clients = 192.0.2.10; Access_Type = RW; Protocols = 4; }" in text
    assert "Attr_Expiration_Time = 0;" in text
    assert text.count("{") == text.count("}")


def test_no_rules_means_no_client_block():
    text = gc.render_exports([export()])
    assert "CLIENT" not in text


def test_client_order_specific_first_and_ro_before_rw():
    text = gc.render_exports(
        [export(("192.0.2.0/24", "rw"), ("192.0.2.10", "rw"), ("192.0.2.10", "ro"), ("2001:db8::/64", "ro"))]
    )
    order = [line.split("Clients = ")[1].split(";")[0] + " " + line.split("Access_Type = ")[1][:2]
             for line in text.splitlines() if "CLIENT" in line]
    assert order == ["192.0.2.10 RO", "192.0.2.10 RW", "192.0.2.0/24 RW", "2001:db8::/64 RO"]


def test_duplicate_rules_collapse():
    text = gc.render_exports([export(("192.0.2.10", "rw"), ("192.0.2.10", "rw"))])
    assert text.count("CLIENT") == 1


def test_exports_are_sorted_and_unique():
    other = gc.ExportSpec(101, "/srv/b", "/shares/other", ())
    text = gc.render_exports([other, export()])
    assert text.index("Export_Id = 100;") < text.index("Export_Id = 101;")
    with pytest.raises(ExportError):
        gc.render_exports([export(), export(path="/srv/c")])  # same id
    with pytest.raises(ExportError):
        gc.render_exports([export(), export(export_id=102)])  # same pseudo


@pytest.mark.parametrize(
    "client",
    [
        "1.2.3.4; } EXPORT {",
        "1.2.3.4;",
        " 1.2.3.4",
        "1.2.3.4\n",
        "192.0.2.7/24",  # host bits set: not canonical
        "010.0.0.1",
        "2001:DB8::1",  # not canonical (upper case)
        "*",
        "example.com",
        "@netgroup",
        "",
        None,
        42,
    ],
)
def test_client_injection_and_non_canonical_refused(client):
    with pytest.raises(ExportError):
        gc.render_exports([export((client, "rw"))])


@pytest.mark.parametrize("client", ["192.0.2.10", "192.0.2.0/24", "0.0.0.0/0", "2001:db8::1", "2001:db8::/64"])
def test_canonical_clients_pass(client):
    assert gc.check_client(client) == client


@pytest.mark.parametrize(
    "path",
    [
        "relative/path",
        "/with space",
        '/with"quote',
        "/with'quote",
        "/semi;colon",
        "/brace}",
        "/new\nline",
        "/a/../b",
        "/a/./b",
        "/a//b",
        "/trailing/",
        "/trailing/newline\n",
        "/" + "a" * 2000,
        "",
        None,
    ],
)
def test_bad_paths_refused(path):
    with pytest.raises(ExportError):
        gc.render_exports([export(path=path)])


def test_bad_paths_in_main_config_refused():
    with pytest.raises(ExportError):
        gc.render_main(gc.ServerSpec("192.0.2.1", 2049, '/x"; } EXPORT {', "/e.conf"))
    with pytest.raises(ExportError):
        gc.render_main(gc.ServerSpec("192.0.2.1; x", 2049, "/r", "/e.conf"))
    with pytest.raises(ExportError):
        gc.render_main(gc.ServerSpec("192.0.2.1", 70000, "/r", "/e.conf"))


@pytest.mark.parametrize("level", ["RW", "rwx", "read", "", None])
def test_bad_access_levels_refused(level):
    with pytest.raises(ExportError):
        gc.render_exports([export(("192.0.2.10", level))])


@pytest.mark.parametrize("export_id", [0, -1, 65536, True, "100", 1.5])
def test_bad_export_ids_refused(export_id):
    with pytest.raises(ExportError):
        gc.render_exports([export(export_id=export_id)])


@pytest.mark.parametrize("share_id", [SID.upper(), "../../etc", SID + "; }", SID.replace("-", ""), ""])
def test_pseudo_path_needs_canonical_share_id(share_id):
    with pytest.raises(ExportError):
        gc.pseudo_path(share_id)


def test_location_brackets_ipv6():
    assert location("192.0.2.1", SID) == f"192.0.2.1:/shares/{SID}"
    assert location("2001:db8::1", SID) == f"[2001:db8::1]:/shares/{SID}"


def test_export_file_round_trip():
    spec = export(("192.0.2.11", "ro"), ("192.0.2.10", "rw"))
    text = gc.render_export_file(spec)
    assert text.startswith(gc.EXPORT_FILE_HEADER)
    assert text.split("\n", 1)[1] == gc.render_export(spec)  # what Ganesha reads
    again = gc.parse_export_file(text)
    assert again.clients == tuple(gc.client_rules(spec.clients))
    assert (again.export_id, again.path, again.pseudo) == (spec.export_id, spec.path, spec.pseudo)


@pytest.mark.parametrize("header", [
    '{"export_id": 100, "path": "/x; }", "pseudo": "/shares/a", "clients": []}',
    '{"export_id": 0, "path": "/x", "pseudo": "/shares/a", "clients": []}',
    '{"export_id": 100, "path": "/x", "pseudo": "/shares/a", "clients": [{"access_to": "1.2.3.4; }", "access_level": "rw"}]}',
    "not json",
])
def test_export_file_refuses_bad_values(header):
    with pytest.raises(ExportError):
        gc.parse_export_file(gc.EXPORT_FILE_HEADER + header + "\n")
    with pytest.raises(ExportError):
        gc.parse_export_file("EXPORT { }\n")  # not ours


def _ganesha_tokens(block: str) -> list[str]:
    """The tokens Ganesha's lexer keeps (save_token) for a block in the
    shape shareflow writes it: words, numbers, paths and clients; not the
    punctuation, not comments."""
    body = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#"))
    return [t for t in re.split(r"[\s{}=;,]+", body) if t]


def test_the_start_exports_file_sets_the_shared_options_once():
    one = export(("192.0.2.10", "rw"))
    two = gc.ExportSpec(101, "/srv/exports/other", "/shares/" + str(uuid.UUID(int=7)),
                        (ClientRule("192.0.2.11", "ro"),))
    foreign = "EXPORT { Export_Id = 7; Path = /x; Pseudo = /y; FSAL { Name = VFS; } }\n"
    text = gc.render_start_exports([gc.render_export_file(one), gc.render_export_file(two), foreign])
    head, _, body = text.partition("}\n")
    assert "EXPORT_DEFAULTS {" in head
    for option in gc.SHARED_OPTIONS:  # once, in the defaults; every export file has them all
        assert text.count(option) == 1 and option in head
        assert option in gc.render_export(one)
    blocks = [b for b in body.split("EXPORT {") if b.strip()]
    assert len(blocks) == 3 and blocks[-1] == foreign[len("EXPORT {"):]  # not ours: as it is
    assert f'Path = "{one.path}";' in blocks[0] and f'Pseudo = "{one.pseudo}";' in blocks[0]
    assert "CLIENT { Clients = 192.0.2.10; Access_Type = RW; }" in blocks[0]
    assert "CLIENT { Clients = 192.0.2.11; Access_Type = RO; }" in blocks[1]
    # What the start's parse costs per export: 15 kept tokens with one client
    # (the export file's block: 27).
    assert len(_ganesha_tokens("EXPORT {" + blocks[0])) == 15
    assert len(_ganesha_tokens(gc.render_export(one))) == 27
    # The blocks are cut from the files' text: the same as rendered without them.
    many = export(("192.0.2.0/24", "rw"), ("192.0.2.10", "ro"), ("0.0.0.0/0", "ro"), ("2001:db8::/64", "rw"))
    for spec in (one, two, many, export()):
        text = gc.render_start_exports([gc.render_export_file(spec)])
        assert text.partition("}\n")[2] == gc.render_export(spec, shared_options=False)


def test_includes_quote_each_path_and_refuse_bad_ones():
    text = gc.render_includes(["/g/exports.d/a.conf", "/g/exports.d/b.conf"])
    assert text.splitlines()[1:] == ['%include "/g/exports.d/a.conf"', '%include "/g/exports.d/b.conf"']
    with pytest.raises(ExportError):
        gc.render_includes(['/g/x";\nEXPORT {'])


LOG = """\
21/11/2026 06:00:41 : epoch 6b01 : vm : nfs-ganesha-7747[main] gsh_dbus_pkginit :DBUS :CRIT :dbus_bus_get failed
21/11/2026 06:00:41 : epoch 6b01 : vm : nfs-ganesha-7747[main] __Register_program :DISP :MAJ :Cannot register NFS V4 on UDP
21/11/2026 06:00:41 : epoch 6b01 : vm : nfs-ganesha-7747[main] gssd_refresh_krb5_machine_credential :NFS CB :CRIT :ERROR: no usable keytab
21/11/2026 06:01:01 : epoch 6b01 : vm : nfs-ganesha-7747[sigmgr] posix_create_fs_btrfs_subvols :FSAL :WARN :btfs filesystem may have unsupported subvols
21/11/2026 06:01:01 : epoch 6b01 : vm : nfs-ganesha-7747[sigmgr] resolve_posix_filesystem :FSAL :CRIT :stat returned No such file or directory (2) while resolving export path /x
21/11/2026 06:01:01 : epoch 6b01 : vm : nfs-ganesha-7747[sigmgr] reread_exports :CONFIG :EVENT :Reread exports complete
21/11/2026 06:01:01 : epoch 6b01 : vm : nfs-ganesha-7747[sigmgr] config_errs_to_log :CONFIG :CRIT :Config File (/e.conf:2): Unknown parameter (Bogus)
"""


def test_log_errors_keeps_config_and_export_failures_only():
    errors = log_errors(LOG)
    assert len(errors) == 2
    assert "resolving export path /x" in errors[0]
    assert "Unknown parameter (Bogus)" in errors[1]


# --- clients Ganesha 4.3 cannot read as they are --------------------------


@pytest.mark.parametrize("access_to,tokens", [
    # Everyone: the two halves; "*" would let in the other address family too.
    ("0.0.0.0/0", ["0.0.0.0/1", "128.0.0.0/1"]),
    ("::/0", ["::/1", "8000::/1"]),
    # Bare, Ganesha reads 0.0.0.0 as its "any client" wildcard.
    ("0.0.0.0", ["0.0.0.0/32"]),
    ("255.255.255.255", ["255.255.255.255"]),
    ("192.0.2.0/24", ["192.0.2.0/24"]),
    ("192.0.2.0/31", ["192.0.2.0/31"]),
    ("2001:db8::/99", ["2001:db8::/99"]),
    ("2001:db8::1", ["2001:db8::1"]),
    ("::", ["::"]),
])
def test_client_tokens(access_to, tokens):
    assert gc.client_tokens(access_to) == tokens


def test_everyone_is_written_as_two_halves():
    text = gc.render_exports([export(("0.0.0.0/0", "rw"), ("::/0", "ro"))])
    assert "CLIENT { Clients = 0.0.0.0/1, 128.0.0.0/1; Access_Type = RW; Protocols = 4; }" in text
    assert "CLIENT { Clients = ::/1, 8000::/1; Access_Type = RO; Protocols = 4; }" in text


@pytest.mark.parametrize("access_to", ["2001:db8::/100", "2001:db8::/112", "2001:db8::/127"])
def test_ipv6_prefixes_ganesha_cannot_read_are_refused_with_a_user_message(access_to):
    with pytest.raises(ExportError) as e:
        gc.render_exports([export((access_to, "rw"))])
    assert access_to in e.value.user_message and "/99" in e.value.user_message


@pytest.mark.parametrize("kind,value", [
    ("number", -1), ("number", True), ("number", "1"), ("keyword", "RW; }"), ("keyword", None),
    ("client", "0.0.0.0"), ("client", "2001:db8::/112"), ("client", "*"), ("address", "1.2.3.4 "),
    ("path", "/a b"), ("nonsense", "x"),
])
def test_token_refuses(kind, value):
    with pytest.raises(ExportError):
        gc.token(kind, value)


# --- no byte of a request can end a token ----------------------------------

# A coarse Ganesha-like lexer: punctuation, double-quoted strings, comments,
# %include, and runs of anything else. Enough to see a token ended early or a
# new one started: the shape (punctuation and token positions) changes.
_LEX = __import__("re").compile(r'\s+|#[^\n]*|%include|[{}=;,]|"[^"]*"|[^\s{}=;,"#]+')
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:")


def _shape(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        m = _LEX.match(text, pos)
        assert m, f"unlexable text at {pos}: {text[pos:pos + 20]!r}"
        lexeme = m.group()
        pos = m.end()
        if lexeme.isspace() or lexeme.startswith("#"):
            continue
        if lexeme in "{}=;," or lexeme == "%include":
            out.append(lexeme)
        elif lexeme.startswith('"'):
            assert set(lexeme[1:-1]) <= _SAFE, lexeme
            out.append("STRING")
        else:
            assert set(lexeme) <= _SAFE, lexeme
            out.append("WORD")
    return out


# Every byte value, then a spread of code points (controls, Latin-1, other
# scripts' digits and letters, full-width punctuation, surrogates, astral).
CHARS = [chr(b) for b in range(256)] + [chr(c) for c in (
    *range(0x100, 0x800, 13), 0x0660, 0x0664, 0x06F4, 0x0966, 0x2028, 0x2029, 0x200B, 0xFEFF,
    0xFF0E, 0xFF1A, 0xFF1B, 0xFF5B, 0xFF5D, 0xFF02, 0xFF10, 0xD800, 0xDFFF, 0x1D7CE, 0x10FFFF)]


def _variants(base: str):
    for ch in CHARS:
        for i in sorted({0, 1, len(base) // 2, len(base) - 1, len(base)}):
            yield base[:i] + ch + base[i:]
        yield ch


def _render_or_refuse(render, value):
    try:
        return render(value)
    except ExportError:
        return None


@pytest.mark.parametrize("where", ["client", "path", "pseudo", "share_id", "level"])
def test_no_character_in_an_export_value_can_end_a_token(where):
    base_values = {"client": "192.0.2.10", "path": "/srv/exports/" + SID, "pseudo": gc.pseudo_path(SID),
                   "share_id": SID, "level": "rw"}

    def render(value):
        client, path, pseudo, level = "192.0.2.10", "/srv/exports/" + SID, gc.pseudo_path(SID), "rw"
        if where == "client":
            client = value
        elif where == "path":
            path = value
        elif where == "pseudo":
            pseudo = value
        elif where == "share_id":
            pseudo = gc.pseudo_path(value)
        else:
            level = value
        spec = gc.ExportSpec(100, path, pseudo, (ClientRule(client, level),))
        return gc.render_exports([spec])

    expected = _shape(render(base_values[where]))
    bases = [base_values[where]] + (["2001:db8::1", "2001:db8::/64", "0.0.0.0/0", "::/0", "0.0.0.0"] if where == "client" else [])
    rendered = refused = 0
    for base in bases:
        for value in _variants(base):
            text = _render_or_refuse(render, value)
            if text is None:
                refused += 1
                continue
            rendered += 1
            assert text.isascii() and all(line.isprintable() for line in text.splitlines()), value
            assert _same_but_client_list(_shape(text), expected), (value, text)
    assert refused > 0
    # Some variants are still valid (a digit more in a path or an address):
    # the check above did look at rendered text.
    assert rendered > 0 or where in ("share_id", "level")


def _same_but_client_list(shape: list[str], expected: list[str]) -> bool:
    """Equal once every client list is reduced to one token."""
    def squash(s: list[str]) -> list[str]:
        out, i = [], 0
        while i < len(s):
            out.append(s[i])
            if s[i] == "WORD" and i >= 2 and s[i - 2:i] == ["WORD", "="] and i + 1 < len(s) and s[i + 1] == ",":
                while i + 2 < len(s) and s[i + 1] == "," and s[i + 2] == "WORD":
                    i += 2
            i += 1
        return out
    return squash(shape) == squash(expected)


@pytest.mark.parametrize("where", ["address", "port", "recovery_root", "exports_file"])
def test_no_character_in_a_server_value_can_end_a_token(where):
    base = {"address": "192.0.2.1", "port": "2049", "recovery_root": "/var/g/recovery", "exports_file": "/var/g/e.conf"}

    def render(value):
        values = dict(base, **{where: value})
        port = int(values["port"]) if values["port"].isascii() and values["port"].isdigit() else values["port"]
        return gc.render_main(gc.ServerSpec(values["address"], port, values["recovery_root"], values["exports_file"]))

    expected = _shape(render(base[where]))
    for value in _variants(base[where]):
        text = _render_or_refuse(render, value)
        if text is not None:
            assert text.isascii() and all(line.isprintable() for line in text.splitlines()), value
            assert _shape(text) == expected, (value, text)
