"""``shareflow network create | list | show | delete`` on a real SQLite database:
in process through ``shareflow.cli.main.main`` and, for exit statuses, as the
installed command."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from shareflow.cli.main import main
from shareflow.db import migrate
from shareflow.db import networks as networks_db
from shareflow.db.engine import Database
from shareflow.db.models import AllocationRange, ProviderNetwork
from shareflow.services.network_allocations import NetworkAllocations
from shareflow.wiring import utcnow


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "shareflow.toml"
    path.write_text(f'state_dir = "{tmp_path}/var"\n[database]\nurl = "sqlite:///{tmp_path}/db.sqlite"\n')
    db = Database(f"sqlite:///{tmp_path}/db.sqlite")
    migrate.upgrade(db)
    yield path, db
    db.dispose()


def run(cfg, capsys, *argv) -> tuple[int, str, str]:
    rc = main(["--config", str(cfg[0]), "network", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def rows(db) -> tuple[int, int]:
    with db.read() as s:
        return (s.query(ProviderNetwork).count(), s.query(AllocationRange).count())


def test_create_list_show_delete(cfg, capsys):
    rc, out, err = run(cfg, capsys, "create", "tenants", "--bridge", "br-tenants", "--cidr", "192.0.2.0/24",
                       "--gateway", "192.0.2.1", "--range", "192.0.2.100-192.0.2.109",
                       "--range", "192.0.2.200-192.0.2.204", "--mtu", "1450", "--json")
    assert rc == 0, err
    net = json.loads(out)
    assert net["name"] == "tenants" and net["bridge"] == "br-tenants" and net["mtu"] == 1450
    assert net["allocation_ranges"] == [{"start": "192.0.2.100", "end": "192.0.2.109"},
                                        {"start": "192.0.2.200", "end": "192.0.2.204"}]
    assert net["capacity"] == 15 and net["allocated"] == 0

    rc, out, _ = run(cfg, capsys, "list")
    assert rc == 0
    header, line = out.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "BRIDGE", "CIDR"]
    assert net["id"] in line and "0/15" in line and net["subnet_id"] in line

    rc, out, _ = run(cfg, capsys, "show", "tenants")
    assert rc == 0
    assert "192.0.2.100-192.0.2.109, 192.0.2.200-192.0.2.204" in out and net["subnet_id"] in out

    rc, out, _ = run(cfg, capsys, "delete", "tenants")
    assert rc == 0 and f"deleted provider network tenants ({net['id']})" in out
    rc, _, err = run(cfg, capsys, "show", net["id"])
    assert rc == 1 and "could not be found" in err
    rc, out, _ = run(cfg, capsys, "list", "--json")
    assert rc == 0 and json.loads(out) == []


def test_defaults(cfg, capsys):
    rc, out, err = run(cfg, capsys, "create", "plain", "--bridge", "br0", "--cidr", "10.1.0.0/29", "--json")
    assert rc == 0, err
    net = json.loads(out)
    assert net["gateway"] is None and net["mtu"] == 1500
    assert net["allocation_ranges"] == [{"start": "10.1.0.1", "end": "10.1.0.6"}]


@pytest.mark.parametrize("argv, message", [
    (["--bridge", "br/0", "--cidr", "10.0.0.0/24"], "Invalid bridge name"),
    (["--bridge", "br0", "--cidr", "10.0.0.1/24"], "host bits are set; did you mean 10.0.0.0/24?"),
    (["--bridge", "br0", "--cidr", "2001:db8::/64"], "IPv6 is not supported"),
    (["--bridge", "br0", "--cidr", "10.0.0.0/24", "--gateway", "10.0.1.1"], "not inside the network"),
    (["--bridge", "br0", "--cidr", "10.0.0.0/24", "--range", "10.0.0.5"], "Invalid allocation range"),
    (["--bridge", "br0", "--cidr", "10.0.0.0/24", "--range", "10.0.0.5-10.0.1.5"], "not inside the network"),
    (["--bridge", "br0", "--cidr", "10.0.0.0/24", "--range", "10.0.0.1-10.0.0.9",
      "--range", "10.0.0.9-10.0.0.20"], "overlap"),
    (["--bridge", "br0", "--cidr", "10.0.0.0/24", "--gateway", "10.0.0.5", "--range", "10.0.0.1-10.0.0.9"],
     "includes the gateway 10.0.0.5"),
    (["--bridge", "br0", "--cidr", "10.0.0.0/24", "--mtu", "100"], "Invalid MTU"),
])
def test_bad_input_exits_1_and_writes_nothing(cfg, capsys, argv, message):
    rc, out, err = run(cfg, capsys, "create", "bad", *argv)
    assert rc == 1 and out == ""
    assert err.startswith("shareflow: ") and message in err
    assert rows(cfg[1]) == (0, 0)


def test_duplicate_and_in_use(cfg, capsys):
    assert run(cfg, capsys, "create", "n1", "--bridge", "br0", "--cidr", "10.2.0.0/24")[0] == 0
    rc, _, err = run(cfg, capsys, "create", "n1", "--bridge", "br1", "--cidr", "10.3.0.0/24")
    assert rc == 1 and "already exists" in err
    db = cfg[1]
    with db.write() as s:
        net = networks_db.provider_by_name(s, "n1")
        sn = networks_db.create_share_network(
            s, now=utcnow(), share_network_id=str(uuid.uuid4()), subnet_id=str(uuid.uuid4()),
            project_id="p", user_id=None, name=None, description=None, provider_network_id=net.id,
        )
    helper = NetworkAllocations(db, clock=utcnow)
    allocation = helper.allocate("share-1", sn.id)
    rc, out, _ = run(cfg, capsys, "list")
    assert "1/254" in out
    rc, _, err = run(cfg, capsys, "delete", "n1")
    assert rc == 1 and "in use" in err and "1 address allocation(s)" in err
    helper.release(allocation)
    with db.write() as s:
        networks_db.delete_share_network(s, sn.id, now=utcnow())
    assert run(cfg, capsys, "delete", "n1")[0] == 0


def test_installed_command_exit_status(cfg):
    path = cfg[0]
    cmd = [sys.executable, "-m", "shareflow.cli.main", "--config", str(path), "network"]
    bad = subprocess.run([*cmd, "create", "x", "--bridge", "br0", "--cidr", "nope"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "Invalid CIDR" in bad.stderr and "Traceback" not in bad.stderr
    good = subprocess.run([*cmd, "create", "x", "--bridge", "br0", "--cidr", "10.4.0.0/24"],
                          capture_output=True, text=True, timeout=60)
    assert good.returncode == 0, good.stderr
    missing = subprocess.run([*cmd, "delete", "nope"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "Provider network nope could not be found." in missing.stderr
