"""The tokens file and ``shareflow token``: hashes only, reload on change,
safe concurrent edits."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import stat

import pytest

from shareflow.auth import NoAuth, TokenAuth
from shareflow.auth.tokens import TokenFile, hash_token
from shareflow.cli import tokens as tokens_cli
from shareflow.exceptions import InvalidInput, NotAuthenticated, NotFound


@pytest.fixture
def tokens(tmp_path) -> TokenFile:
    return TokenFile(tmp_path / "sub" / "tokens.json")


def test_issue_stores_only_the_hash(tokens):
    token, record = tokens.issue("demo", "alice", admin=True)
    text = tokens.path.read_text()
    assert token not in text
    data = json.loads(text)
    assert list(data) == [hash_token(token)] == [record.hash]
    entry = data[record.hash]
    assert entry["project_id"] == "demo" and entry["user_id"] == "alice"
    assert entry["roles"] == ["admin", "member"] and entry["created_at"].endswith("Z")
    assert stat.S_IMODE(os.stat(tokens.path).st_mode) == 0o600


def test_lookup_and_default_user(tokens):
    token, _ = tokens.issue("demo")
    record = tokens.lookup(token)
    assert record.project_id == "demo" and record.user_id == "demo" and not record.is_admin
    assert tokens.lookup("nope") is None and tokens.lookup("") is None


def test_a_reader_sees_tokens_issued_by_another_process(tokens):
    reader = TokenFile(tokens.path)
    assert reader.lookup("x") is None  # no file yet
    first, _ = tokens.issue("p1")
    assert reader.lookup(first).project_id == "p1"
    second, record = TokenFile(tokens.path).issue("p2")
    assert reader.lookup(second).project_id == "p2"
    TokenFile(tokens.path).revoke(record.hash[:10])
    assert reader.lookup(second) is None and reader.lookup(first) is not None


def test_a_broken_file_keeps_the_last_good_tokens_for_readers(tokens):
    token, _ = tokens.issue("p1")
    reader = TokenFile(tokens.path)
    assert reader.lookup(token)
    tokens.path.write_text("{not json")
    assert reader.lookup(token)  # still served from the last good copy
    with pytest.raises(Exception, match="not valid"):
        tokens.records()


def test_revoke_needs_a_unique_prefix(tokens):
    records = [tokens.issue(f"p{i}")[1] for i in range(20)]
    with pytest.raises(InvalidInput):
        tokens.revoke("ab")  # too short
    with pytest.raises(NotFound):
        tokens.revoke("0" * 64)
    revoked = tokens.revoke(records[3].hash[:16])
    assert revoked.hash == records[3].hash
    assert len(tokens.records()) == 19


@pytest.mark.parametrize("bad", ["", "a b", "x" * 65, "../etc", "p:q", "-p"])
def test_ids_are_restricted(tokens, bad):
    with pytest.raises(InvalidInput):
        tokens.issue(bad)


def _issue_many(path, n):
    f = TokenFile(path)
    for i in range(n):
        f.issue(f"p{os.getpid()}-{i}")


def test_concurrent_issuers_lose_nothing(tokens):
    tokens.issue("seed")
    procs = [multiprocessing.get_context("fork").Process(target=_issue_many, args=(tokens.path, 10))
             for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(tokens.records()) == 41


def test_token_auth(tokens):
    token, _ = tokens.issue("demo", "alice", admin=True)
    identity = TokenAuth(tokens).authenticate(token, {})
    assert identity.project_id == "demo" and identity.user_id == "alice" and identity.is_admin
    for bad in (None, "", "wrong", "notused"):
        with pytest.raises(NotAuthenticated) as e:
            TokenAuth(tokens).authenticate(bad, {})
        assert e.value.http_status == 401


def test_noauth_follows_manila():
    a = NoAuth().authenticate("bob:proj", {})
    assert (a.user_id, a.project_id, a.is_admin) == ("bob", "proj", True)
    b = NoAuth().authenticate("proj", {})
    assert (b.user_id, b.project_id) == ("proj", "proj")
    c = NoAuth().authenticate(None, {"X-AUTH-PROJECT-ID": "p9"})
    assert (c.user_id, c.project_id) == ("admin", "p9")


def _cli(tmp_path, *argv) -> argparse.Namespace:
    (tmp_path / "shareflow.toml").write_text(
        f'state_dir = "{tmp_path}/var"\n[auth]\ntokens_file = "{tmp_path}/tokens.json"\n'
    )
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=None)
    tokens_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["--config", str(tmp_path / "shareflow.toml"), *argv])


def test_cli_issue_list_revoke(tmp_path, capsys):
    args = _cli(tmp_path, "token", "issue", "--project", "demo", "--user", "alice", "--admin")
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    token = out.strip()
    assert len(token) >= 40 and "\n" not in token and "roles admin,member" in err
    record = TokenFile(tmp_path / "tokens.json").lookup(token)
    assert record.is_admin

    args = _cli(tmp_path, "token", "list")
    assert args.func(args) == 0
    out, _ = capsys.readouterr()
    assert token not in out
    assert "demo" in out and "alice" in out and record.hash[:12] in out

    args = _cli(tmp_path, "token", "revoke", record.hash[:12])
    assert args.func(args) == 0
    assert TokenFile(tmp_path / "tokens.json").lookup(token) is None


def test_cli_subcommand_config_option_wins_only_when_given(tmp_path):
    args = _cli(tmp_path, "token", "list")
    assert args.config == str(tmp_path / "shareflow.toml")
    args = _cli(tmp_path, "token", "list", "--config", "/other.toml")
    assert args.config == "/other.toml"


def test_issue_a_reader_token(tokens):
    token, record = tokens.issue("demo", "auditor", role="reader")
    assert record.roles == ("reader",) and not record.is_admin
    identity = TokenAuth(tokens).authenticate(token, {})
    assert identity.roles == ("reader",) and not identity.is_admin
    assert tokens.issue("demo", role="admin")[1].roles == ("admin", "member")
    assert tokens.issue("demo", role="member")[1].roles == ("member",)


def test_issue_refuses_unknown_or_contradictory_roles(tokens):
    with pytest.raises(InvalidInput, match="must be one of admin, member, reader"):
        tokens.issue("demo", role="owner")
    with pytest.raises(InvalidInput, match="both admin and reader"):
        tokens.issue("demo", role="reader", admin=True)
    assert not tokens.path.exists()  # nothing was written


def test_cli_issue_role_reader(tmp_path, capsys):
    args = _cli(tmp_path, "token", "issue", "--project", "demo", "--user", "carol", "--role", "reader")
    assert args.func(args) == 0
    out, err = capsys.readouterr()
    assert "roles reader;" in err
    assert TokenFile(tmp_path / "tokens.json").lookup(out.strip()).roles == ("reader",)
    with pytest.raises(SystemExit):  # argparse: --admin and --role are exclusive
        _cli(tmp_path, "token", "issue", "--project", "demo", "--admin", "--role", "reader")
    with pytest.raises(SystemExit):
        _cli(tmp_path, "token", "issue", "--project", "demo", "--role", "owner")
