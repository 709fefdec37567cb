"""``shareflow identity ...`` on a real SQLite database: what it prints, that a
printed secret works with ``POST /identity/v3/auth/tokens``'s logic, and its
errors (exit 1, one line on stderr, nothing half-made)."""

from __future__ import annotations

import json
import stat

import pytest

from shareflow.cli.main import main
from shareflow.config import load
from shareflow.db.engine import Database
from shareflow.services.identity import IdentityService
from shareflow.wiring import utcnow


@pytest.fixture
def cli(tmp_path, capsys):
    path = tmp_path / "shareflow.toml"
    path.write_text(f'state_dir = "{tmp_path / "var"}"\n[auth]\nstrategy = "identity"\n')
    (tmp_path / "var").mkdir()

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["--config", str(path), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("db", "upgrade")[0] == 0
    config = load(path)
    db = Database(config.database.url)
    run.identity = IdentityService(config.identity, db, clock=utcnow)
    run.config = config
    yield run
    db.dispose()


def _password_auth(user, password, project):
    return {"identity": {"methods": ["password"], "password": {
        "user": {"name": user, "domain": {"name": "Default"}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": "Default"}}}}


def test_users_projects_roles_and_a_generated_password(cli):
    assert cli("identity", "project", "create", "demo")[0] == 0
    code, out, err = cli("identity", "user", "create", "alice", "--project", "demo", "--role", "member")
    assert code == 0 and "shown only once" in err
    password = out.strip()
    info = cli.identity.authenticate(_password_auth("alice", password, "demo"))
    assert info.role_names == ("member", "reader")
    code, out, _ = cli("identity", "user", "list", "--json")
    assert [u["name"] for u in json.loads(out)] == ["alice"]
    code, out, _ = cli("identity", "user", "show", "alice")
    assert code == 0 and "member@demo" in out
    assert cli("identity", "role", "add", "admin", "--user", "alice", "--project", "demo")[0] == 0
    code, out, _ = cli("identity", "role", "assignments", "--user", "alice", "--json")
    assert sorted(a["role"] for a in json.loads(out)) == ["admin", "member"]
    assert cli("identity", "role", "remove", "admin", "--user", "alice", "--project", "demo")[0] == 0
    code, out, _ = cli("identity", "user", "set-password", "alice", "--password", "new one")
    assert code == 0 and out == ""
    cli.identity.authenticate(_password_auth("alice", "new one", "demo"))
    code, out, _ = cli("identity", "project", "list", "--json")
    assert [p["name"] for p in json.loads(out)] == ["demo"]
    assert cli("identity", "user", "delete", "alice")[0] == 0
    assert cli("identity", "project", "delete", "demo")[0] == 0
    assert json.loads(cli("identity", "user", "list", "--json")[1]) == []


def test_application_credential_secret_is_printed_once_and_works(cli):
    cli("identity", "project", "create", "demo")
    cli("identity", "user", "create", "bob", "--password", "pw", "--project", "demo")
    code, out, err = cli("identity", "app-credential", "create", "ci", "--user", "bob", "--project", "demo",
                         "--role", "reader", "--expires", "2099-01-01T00:00:00Z")
    assert code == 0 and "shown only once" in err
    secret = out.strip()
    credential = cli.identity.app_credentials("bob")[0]
    assert credential.roles == "reader" and str(credential.expires_at) == "2099-01-01 00:00:00"
    info = cli.identity.authenticate({"identity": {"methods": ["application_credential"],
                                                   "application_credential": {"id": credential.id, "secret": secret}}})
    assert info.role_names == ("reader",)
    code, out, _ = cli("identity", "app-credential", "list", "--json")
    assert secret not in out and json.loads(out)[0]["id"] == credential.id
    assert cli("identity", "app-credential", "delete", credential.id)[0] == 0
    assert cli.identity.app_credentials() == []


@pytest.mark.parametrize("argv, message", [
    (("identity", "user", "create", "carol", "--project", "nowhere"), "Could not find project: nowhere."),
    (("identity", "role", "add", "superuser", "--user", "dave", "--project", "demo"), "Could not find role"),
    (("identity", "app-credential", "create", "x", "--user", "dave", "--project", "demo", "--role", "admin"),
     "does not hold"),
    (("identity", "app-credential", "create", "x", "--user", "dave", "--project", "demo", "--expires", "soon"),
     "is not an ISO 8601 time"),
    (("identity", "user", "create", "dave", "--password", "x"), "user dave exists"),
    (("identity", "project", "create", " spaced"), "no surrounding blanks"),
])
def test_errors_exit_1_with_one_line_and_change_nothing(cli, argv, message):
    cli("identity", "project", "create", "demo")
    cli("identity", "user", "create", "dave", "--password", "pw", "--project", "demo")
    users_before = [u.name for u in cli.identity.users()]
    code, out, err = cli(*argv)
    assert code == 1 and err.startswith("shareflow: ") and message in err and err.count("\n") == 1, err
    assert [u.name for u in cli.identity.users()] == users_before


def test_rotate_keys_keeps_the_newest_keys_private(cli):
    for _ in range(4):
        assert cli("identity", "rotate-keys")[0] == 0
    repo = cli.config.identity.key_repository
    assert sorted(int(p.name) for p in repo.iterdir() if p.name.isdigit()) == [3, 4, 5]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in repo.iterdir())
    assert stat.S_IMODE(repo.stat().st_mode) == 0o700


def test_list_show_and_delete_answer_alike_for_users_projects_and_credentials(cli):
    cli("identity", "project", "create", "demo", "--description", "the demo")
    cli("identity", "user", "create", "erin", "--password", "pw", "--project", "demo")
    cli("identity", "app-credential", "create", "ci", "--user", "erin", "--project", "demo")
    user, project = cli.identity.user("erin"), cli.identity.project("demo")
    (credential,) = cli.identity.app_credentials("erin")
    kinds = [("user", "erin", user, ["id", "name", "domain_id", "enabled", "failed_attempts", "locked_until",
                                      "created_at", "roles"], "user"),
             ("project", "demo", project, ["id", "name", "domain_id", "description", "enabled", "created_at"],
              "project"),
             ("app-credential", credential.id, credential, ["id", "name", "user_id", "project_id", "roles",
                                                            "expires_at", "description", "created_at"],
              "application credential")]
    for kind, ref, row, fields, noun in kinds:
        code, out, _ = cli("identity", kind, "show", ref, "--json")
        shown = json.loads(out)
        assert code == 0 and list(shown) == fields and shown["id"] == row.id and shown["name"] == row.name
        code, out, _ = cli("identity", kind, "show", ref)
        assert code == 0 and [line.split()[0] for line in out.splitlines()] == fields
        assert f"name{' ' * (max(map(len, fields)) - 4)}  {row.name}" in out.splitlines()
        code, out, _ = cli("identity", kind, "list", "--json")
        assert code == 0 and [r["id"] for r in json.loads(out)] == [row.id]
        code, out, _ = cli("identity", kind, "list")
        assert code == 0 and row.name in out and "NAME" in out
    assert cli("identity", "project", "show", "demo", "--json")[1].count('"the demo"') == 1
    for kind, ref, row, _fields, noun in kinds[::-1]:
        code, out, _ = cli("identity", kind, "delete", ref)
        assert code == 0 and out == f"deleted {noun} {row.name} ({row.id})\n"
        code, _out, err = cli("identity", kind, "show", ref)
        assert code == 1 and err.startswith("shareflow: ")
