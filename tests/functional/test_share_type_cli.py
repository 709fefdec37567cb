"""``shareflow type list | show | create | set | unset | delete``: in process
through ``shareflow.cli.main.main`` on a real database (SQLite, and
PostgreSQL for the whole life of a type), as the installed command for exit
statuses, and on the real stack, where the API and python-manilaclient see
what the command wrote and a share of the type keeps it from being deleted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid

import pytest

from shareflow.cli.main import main
from shareflow.db import migrate
from shareflow.db import shares as shares_db
from shareflow.db.engine import Database
from shareflow.db.models import Share, ShareType, ShareTypeExtraSpec
from shareflow.services.context import Caller
from shareflow.wiring import utcnow


def _config(tmp_path, url: str):
    path = tmp_path / "shareflow.toml"
    path.write_text(f'state_dir = "{tmp_path}/var"\n[database]\nurl = "{url}"\n')
    return path


@pytest.fixture
def cfg(tmp_path):
    url = f"sqlite:///{tmp_path}/db.sqlite"
    db = Database(url)
    migrate.upgrade(db)
    yield _config(tmp_path, url), db
    db.dispose()


def run(cfg, capsys, *argv) -> tuple[int, str, str]:
    rc = main(["--config", str(cfg[0]), "type", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def ok_json(cfg, capsys, *argv):
    rc, out, err = run(cfg, capsys, *argv, "--json")
    assert rc == 0 and err == "", err
    return json.loads(out)


def stored(db) -> dict[str, dict[str, str]]:
    """Every live type's specs, by name, as the database holds them."""
    with db.read() as s:
        return {t.name: t.specs() for t in s.query(ShareType).filter(ShareType.deleted_at.is_(None))}


def test_create_show_set_unset_delete(db_url, tmp_path, capsys):
    cfg = (_config(tmp_path, db_url), Database(db_url))
    try:
        created = ok_json(cfg, capsys, "create", "fast", "--dhss", "no", "--spec", "snapshot_support=yes",
                          "--spec", "capabilities:free_capacity_gb=>= 10", "--description", "snap [x]")
        # Booleans in Manila's spelling; a scoped key's value keeps its operator.
        assert created["extra_specs"] == {"driver_handles_share_servers": "False", "snapshot_support": "True",
                                          "capabilities:free_capacity_gb": ">= 10"}
        assert created["required_extra_specs"] == {"driver_handles_share_servers": "False"}
        assert created["share_type_access:is_public"] is True and created["is_default"] is False
        assert created["description"] == "snap [x]"
        uuid.UUID(created["id"])
        assert ok_json(cfg, capsys, "show", "fast") == created
        assert ok_json(cfg, capsys, "show", created["id"]) == created

        rc, out, _ = run(cfg, capsys, "show", "fast")
        assert rc == 0
        fields = {line.split()[0]: line.split(None, 1)[1].strip() for line in out.splitlines()
                  if line and not line.startswith(" ")}
        assert fields["id"] == created["id"] and fields["visibility"] == "public"
        assert fields["required_extra_specs"] == "driver_handles_share_servers=False"
        assert fields["description"] == "snap [x]"  # shown as given, not taken for markup
        assert "capabilities:free_capacity_gb=>= 10" in out and "snapshot_support=True" in out

        after_set = ok_json(cfg, capsys, "set", "fast", "revert_to_snapshot_support=1", "tier=gold")
        assert after_set["extra_specs"]["revert_to_snapshot_support"] == "True"
        assert after_set["extra_specs"]["tier"] == "gold"
        assert stored(cfg[1])["fast"] == after_set["extra_specs"]

        after_unset = ok_json(cfg, capsys, "unset", created["id"], "tier", "snapshot_support")
        assert after_unset["extra_specs"] == {"driver_handles_share_servers": "False",
                                              "revert_to_snapshot_support": "True",
                                              "capabilities:free_capacity_gb": ">= 10"}
        assert stored(cfg[1])["fast"] == after_unset["extra_specs"]

        rc, out, err = run(cfg, capsys, "delete", "fast")
        assert rc == 0 and out == f"deleted share type fast ({created['id']})\n", err
        rc, out, err = run(cfg, capsys, "show", "fast")
        assert rc == 1 and out == "" and err == "shareflow: Share type fast could not be found.\n"
        assert ok_json(cfg, capsys, "list") == []
    finally:
        cfg[1].dispose()


def test_list_table_and_json(cfg, capsys):
    ok_json(cfg, capsys, "create", "default", "--dhss", "false")
    private = ok_json(cfg, capsys, "create", "isolated", "--spec", "driver_handles_share_servers=true",
                      "--private", "--description", "own servers")
    assert private["share_type_access:is_public"] is False

    listed = ok_json(cfg, capsys, "list")
    assert [t["name"] for t in listed] == ["default", "isolated"]  # private ones too: the CLI is admin
    assert [t["is_default"] for t in listed] == [True, False]      # config's default_share_type
    assert listed[1] == private

    rc, out, _ = run(cfg, capsys, "list")
    assert rc == 0
    header, first, second = out.splitlines()
    assert header.split() == ["ID", "NAME", "VISIBILITY", "DEFAULT", "REQUIRED", "SPECS", "OPTIONAL", "SPECS",
                              "DESCRIPTION"]
    assert first.split() == [listed[0]["id"], "default", "public", "yes", "driver_handles_share_servers=False",
                             "-", "-"]
    assert second.split() == [private["id"], "isolated", "private", "-", "driver_handles_share_servers=True",
                              "-", "own", "servers"]


@pytest.mark.parametrize("argv, message", [
    ([], "Required extra specification 'driver_handles_share_servers' is missing."),
    (["--spec", "snapshot_support=true"], "Required extra specification 'driver_handles_share_servers' is missing."),
    (["--dhss", "maybe"], "Extra spec driver_handles_share_servers must be a boolean, got 'maybe'."),
    (["--dhss", "false", "--spec", "driver_handles_share_servers=false"], "--dhss or --spec, not both"),
    (["--dhss", "false", "--spec", "snapshot_support"], "Invalid extra spec 'snapshot_support': expected KEY=VALUE."),
    (["--dhss", "false", "--spec", "a=1", "--spec", "a=2"], "Extra spec 'a' is given more than once."),
    (["--dhss", "false", "--spec", "bad key=1"], "Invalid extra spec key 'bad key'."),
    (["--dhss", "false", "--spec", "=1"], "Invalid extra spec key ''."),
    (["--dhss", "false", "--spec", "snapshot_support=sometimes"], "Extra spec snapshot_support must be a boolean"),
    (["--dhss", "false", "--spec", f"tier={'x' * 256}"], "must be a string of at most 255 characters"),
    (["--dhss", "false", "--description", "d" * 256], "Share type description is longer than 255 characters."),
])
def test_bad_create_exits_1_and_writes_nothing(cfg, capsys, argv, message):
    rc, out, err = run(cfg, capsys, "create", "t1", *argv)
    assert rc == 1 and out == ""
    assert err.startswith("shareflow: ") and message in err and err.count("\n") == 1
    assert stored(cfg[1]) == {}


@pytest.mark.parametrize("name", ["bad/name", " padded", ""])
def test_bad_name(cfg, capsys, name):
    rc, out, err = run(cfg, capsys, "create", name, "--dhss", "false")
    assert rc == 1 and out == "" and "Share type name must be 1 to 255 letters" in err
    assert stored(cfg[1]) == {}


def test_duplicate_name(cfg, capsys):
    first = ok_json(cfg, capsys, "create", "t1", "--dhss", "false")
    rc, out, err = run(cfg, capsys, "create", "t1", "--dhss", "true")
    assert rc == 1 and out == "" and err == "shareflow: Share Type t1 already exists.\n"
    assert ok_json(cfg, capsys, "list") == [first]


def test_set_errors_change_nothing(cfg, capsys):
    ok_json(cfg, capsys, "create", "t1", "--dhss", "false", "--spec", "tier=gold")
    before = stored(cfg[1])
    for argv, message in [
        (["set", "nope", "a=b"], "Share type nope could not be found."),
        (["set", "t1", "a"], "Invalid extra spec 'a': expected KEY=VALUE."),
        (["set", "t1", "ok=1", "bad key=2"], "Invalid extra spec key 'bad key'."),
        (["set", "t1", "tier=silver", "snapshot_support=perhaps"], "Extra spec snapshot_support must be a boolean"),
        (["set", "t1", "driver_handles_share_servers=perhaps"],
         "Extra spec driver_handles_share_servers must be a boolean"),
    ]:
        rc, out, err = run(cfg, capsys, *argv)
        assert rc == 1 and out == "" and err.startswith("shareflow: ") and message in err, (argv, err)
    assert stored(cfg[1]) == before


def test_unset_is_all_or_nothing(cfg, capsys):
    ok_json(cfg, capsys, "create", "t1", "--dhss", "false", "--spec", "tier=gold", "--spec", "zone=a")
    before = stored(cfg[1])
    for argv, message in [
        (["unset", "t1", "tier", "nope"], "Share type extra spec nope could not be found."),
        (["unset", "t1", "tier", "driver_handles_share_servers"],
         "Required extra specification 'driver_handles_share_servers' cannot be deleted."),
        (["unset", "nope", "tier"], "Share type nope could not be found."),
    ]:
        rc, out, err = run(cfg, capsys, *argv)
        assert rc == 1 and out == "" and err == f"shareflow: {message}\n", (argv, err)
    assert stored(cfg[1]) == before
    # The same key twice is one key.
    assert ok_json(cfg, capsys, "unset", "t1", "tier", "tier")["extra_specs"] == {
        "driver_handles_share_servers": "False", "zone": "a"}


def test_a_type_in_use(cfg, capsys):
    """A live share of the type (whatever its status) keeps the type and its
    driver_handles_share_servers; a deleted one does not."""
    t = ok_json(cfg, capsys, "create", "used", "--dhss", "false")
    db = cfg[1]
    share_id = str(uuid.uuid4())
    with db.write() as s:
        shares_db.create(s, now=utcnow(), id=share_id, project_id="p", size=1, share_proto="NFS",
                         status="error", share_type_id=t["id"])

    rc, out, err = run(cfg, capsys, "delete", "used")
    assert rc == 1 and out == ""
    assert err == f"shareflow: Share Type {t['id']} deletion is not allowed with shares present with the type.\n"
    rc, _, err = run(cfg, capsys, "set", "used", "driver_handles_share_servers=true")
    assert rc == 1 and "Cannot change driver_handles_share_servers of a share type in use." in err
    # Other specs may change while shares use the type, as in Manila.
    assert ok_json(cfg, capsys, "set", "used", "tier=gold")["extra_specs"]["tier"] == "gold"
    assert stored(db)["used"]["driver_handles_share_servers"] == "False"

    with db.write() as s:
        s.get(Share, share_id).deleted_at = utcnow()
    assert ok_json(cfg, capsys, "delete", "used")["id"] == t["id"]
    assert stored(db) == {}
    with db.read() as s:  # soft-deleted, specs kept, as the API's delete does
        assert s.query(ShareTypeExtraSpec).count() == 2


def test_update(cfg, capsys):
    t = ok_json(cfg, capsys, "create", "old", "--dhss", "false", "--description", "first")
    ok_json(cfg, capsys, "create", "taken", "--dhss", "false")
    renamed = ok_json(cfg, capsys, "update", "old", "--name", "new", "--private")
    assert renamed["id"] == t["id"] and renamed["name"] == "new"
    assert renamed["share_type_access:is_public"] is False and renamed["description"] == "first"
    cleared = ok_json(cfg, capsys, "update", t["id"], "--description", "", "--public")
    assert cleared["description"] is None and cleared["share_type_access:is_public"] is True
    for argv, message in (
        (["update", "new", "--name", "taken"], "Share Type taken already exists."),
        (["update", "new"], "Specify share type name, description"),
        (["update", "new", "--name", "  "], "Share type name cannot be empty."),
        (["update", "nope", "--name", "x"], "Share type nope could not be found."),
    ):
        rc, out, err = run(cfg, capsys, *argv)
        assert rc == 1 and out == "" and message in err, err
    assert set(stored(cfg[1])) == {"new", "taken"}
    with pytest.raises(SystemExit) as exit_:
        run(cfg, capsys, "update", "new", "--public", "--private")
    assert exit_.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_access_lists(cfg, capsys):
    t = ok_json(cfg, capsys, "create", "secret", "--dhss", "false", "--private")
    ok_json(cfg, capsys, "create", "open", "--dhss", "false")
    assert ok_json(cfg, capsys, "access", "list", "secret") == []
    rc, out, err = run(cfg, capsys, "access", "add", "secret", "proj-a")
    assert rc == 0 and out == f"project proj-a may now use share type secret ({t['id']})\n", err
    assert run(cfg, capsys, "access", "add", t["id"], "proj-b")[0] == 0
    assert ok_json(cfg, capsys, "access", "list", "secret") == [
        {"share_type_id": t["id"], "project_id": "proj-a"}, {"share_type_id": t["id"], "project_id": "proj-b"}]
    rc, out, _ = run(cfg, capsys, "access", "list", "secret")
    assert rc == 0 and out.split() == ["PROJECT", "proj-a", "proj-b"]
    for argv, message in (
        (["access", "add", "secret", "proj-a"], "already exists"),
        (["access", "add", "open", "proj-a"], "is public: type access modification is not applicable"),
        (["access", "list", "open"], "is public: access list not available for public share types."),
        (["access", "remove", "secret", "proj-z"], "Share type access not found"),
        (["access", "add", "secret", "bad project"], "Bad project format"),
        (["access", "add", "nope", "proj-a"], "Share type nope could not be found."),
    ):
        rc, out, err = run(cfg, capsys, *argv)
        assert rc == 1 and out == "" and message in err, (argv, err)
    rc, out, err = run(cfg, capsys, "access", "remove", "secret", "proj-a")
    assert rc == 0 and out == f"project proj-a may no longer use share type secret ({t['id']})\n", err
    assert ok_json(cfg, capsys, "access", "list", "secret") == [{"share_type_id": t["id"], "project_id": "proj-b"}]


def test_installed_command(cfg):
    env = {**os.environ, "SHAREFLOW_CONFIG": str(cfg[0])}

    def cli(*argv):
        return subprocess.run([sys.executable, "-m", "shareflow.cli.main", "type", *argv],
                              capture_output=True, text=True, timeout=60, env=env)

    good = cli("create", "x", "--dhss", "false", "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["name"] == "x"
    for argv, code, message in [
        (["create", "y"], 1, "shareflow: Required extra specification 'driver_handles_share_servers' is missing."),
        (["delete", "nope"], 1, "shareflow: Share type nope could not be found."),
        (["unset", "x", "driver_handles_share_servers"], 1, "cannot be deleted"),
        (["set", "x"], 2, "the following arguments are required: KEY=VALUE"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ]:
        bad = cli(*argv)
        assert bad.returncode == code and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
        assert bad.stdout == ""
    table = cli("list")
    assert table.returncode == 0 and "\x1b[" not in table.stdout  # no colours into a pipe
    assert table.stdout.splitlines()[1].split()[1] == "x"


# --- on the real stack: the API sees what the command writes ---------------------------------

ADMIN = Caller(project_id="admin", user_id="operator", is_admin=True)


def stack_cli(stack, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SHAREFLOW_CONFIG": str(stack.config_path)}
    return subprocess.run([sys.executable, "-m", "shareflow.cli.main", "type", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def api_get(stack, path: str) -> dict:
    req = urllib.request.Request(f"{stack.url}{path}", headers={
        "X-Auth-Token": stack.admin_token, "X-OpenStack-Manila-API-Version": "2.65"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def test_the_api_and_manilaclient_see_the_commands_writes(stack):
    from manilaclient import exceptions as mexc

    created = stack_cli(stack, "create", "cli-fast", "--dhss", "false", "--spec", "snapshot_support=true",
                        "--description", "made by the CLI", "--json")
    assert created.returncode == 0, created.stderr
    mine = json.loads(created.stdout)
    # The command's --json is the API's admin view of the type.
    assert api_get(stack, f"/types/{mine['id']}")["share_type"] == mine
    assert mine in api_get(stack, "/types")["share_types"]

    admin = stack.manila()
    stype = admin.share_types.get(mine["id"])
    assert stype.name == "cli-fast" and stype.get_keys() == {"driver_handles_share_servers": "False",
                                                             "snapshot_support": "True"}

    assert stack_cli(stack, "set", "cli-fast", "tier=gold", "revert_to_snapshot_support=yes").returncode == 0
    assert admin.share_types.get(mine["id"]).get_keys() == {
        "driver_handles_share_servers": "False", "snapshot_support": "True", "tier": "gold",
        "revert_to_snapshot_support": "True"}
    assert stack_cli(stack, "unset", "cli-fast", "tier").returncode == 0
    assert "tier" not in admin.share_types.get(mine["id"]).get_keys()

    # A tenant's share of the type keeps it from being deleted; the API still has it.
    m = stack.manila(stack.token("tenant-types"))
    share = m.shares.create("NFS", 1, share_type="cli-fast")
    try:
        stack.wait_for_share(m, share.id, {"available"})
        assert m.shares.get(share.id).share_type == mine["id"]
        refused = stack_cli(stack, "delete", "cli-fast")
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr == (f"shareflow: Share Type {mine['id']} deletion is not allowed with shares "
                                  "present with the type.\n")
        assert admin.share_types.get(mine["id"]).name == "cli-fast"
    finally:
        services = stack.services()
        try:
            stack.delete_all_shares(services, ADMIN)
        finally:
            services.close()

    deleted = stack_cli(stack, "delete", "cli-fast")
    assert deleted.returncode == 0 and deleted.stdout == f"deleted share type cli-fast ({mine['id']})\n"
    with pytest.raises(mexc.NotFound):
        admin.share_types.get(mine["id"])
    assert all(t["id"] != mine["id"] for t in api_get(stack, "/types?is_public=all")["share_types"])


def test_private_types_on_the_real_stack(stack):
    """A private type: created and granted by the command or by
    python-manilaclient (update, add/remove_project_access, list(show_all),
    share_type_access.list) against gunicorn; a granted tenant's share of it
    becomes available on btrfs + Ganesha, another tenant cannot see or use it."""
    from manilaclient import exceptions as mexc

    admin = stack.manila()
    granted_token, other_token = stack.token("tenant-granted"), stack.token("tenant-other")
    granted, other = stack.manila(granted_token), stack.manila(other_token)
    created = stack_cli(stack, "create", "cli-private", "--dhss", "false", "--private", "--json")
    assert created.returncode == 0, created.stderr
    mine = json.loads(created.stdout)
    assert mine["id"] in [t.id for t in admin.share_types.list(show_all=True)]
    assert mine["id"] not in [t.id for t in granted.share_types.list()]
    with pytest.raises(mexc.NotFound):
        granted.shares.create("NFS", 1, share_type="cli-private")

    added = stack_cli(stack, "access", "add", "cli-private", "tenant-granted")
    assert added.returncode == 0, added.stderr
    stype = admin.share_types.get(mine["id"])  # share_type_access.list takes the type itself
    assert [a.project_id for a in admin.share_type_access.list(stype)] == ["tenant-granted"]
    admin.share_type_access.add_project_access(mine["id"], "tenant-later")
    listed = json.loads(stack_cli(stack, "access", "list", "cli-private", "--json").stdout)
    assert [a["project_id"] for a in listed] == ["tenant-granted", "tenant-later"]
    admin.share_type_access.remove_project_access(mine["id"], "tenant-later")

    renamed = admin.share_types.update(mine["id"], name="cli-private-2", description="granted only")
    assert renamed.name == "cli-private-2" and renamed.is_public is False
    assert mine["id"] in [t.id for t in granted.share_types.list()]
    assert mine["id"] not in [t.id for t in other.share_types.list()]
    with pytest.raises(mexc.NotFound):
        other.shares.create("NFS", 1, share_type="cli-private-2")
    share = granted.shares.create("NFS", 1, share_type="cli-private-2")
    try:
        stack.wait_for_share(granted, share.id, {"available"})
        assert granted.shares.get(share.id).share_type == mine["id"]
    finally:
        services = stack.services()
        try:
            stack.delete_all_shares(services, ADMIN)
        finally:
            services.close()
    removed = stack_cli(stack, "access", "remove", "cli-private-2", "tenant-granted")
    assert removed.returncode == 0, removed.stderr
    assert admin.share_type_access.list(stype) == []
    assert mine["id"] not in [t.id for t in granted.share_types.list()]
    assert stack_cli(stack, "delete", "cli-private-2").returncode == 0
