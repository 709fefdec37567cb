"""Configuration of DHSS=true backends: share server settings with Manila's
names and defaults, and what does not apply to them."""

from pathlib import Path

import pytest

from shareflow import config
from shareflow.drivers.server.netns import check_server_id, mac_address, netns_name, veth_name
from shareflow.exceptions import ConfigError, NetworkError
from shareflow.services.share_server_manager import server_id_for


def load(tmp_path: Path, text: str) -> config.Config:
    p = tmp_path / "shareflow.toml"
    p.write_text(text)
    return config.load(p)


def test_defaults_are_manilas(tmp_path):
    c = load(tmp_path, '[[backends]]\nname = "iso"\ndriver_handles_share_servers = true\n')
    b = c.backend("iso")
    assert b.driver_handles_share_servers and not b.ganesha.managed
    ss = b.share_servers
    assert ss.automatic_cleanup is True and ss.unused_cleanup_interval == 10
    assert ss.delete_with_last_share is False and ss.port == 2049
    assert ss.state_dir == c.state_dir / "backends" / "iso" / "share-servers"


def test_settings(tmp_path):
    c = load(tmp_path, """
[[backends]]
name = "iso"
driver_handles_share_servers = true
automatic_share_server_cleanup = false
unused_share_server_cleanup_interval = 0.5
delete_share_server_with_last_share = true
share_servers_dir = "servers"
[backends.ganesha]
port = 3049
""")
    ss = c.backend("iso").share_servers
    assert (ss.automatic_cleanup, ss.unused_cleanup_interval, ss.delete_with_last_share, ss.port) == \
        (False, 0.5, True, 3049)
    assert ss.state_dir == (tmp_path / "servers").resolve()


@pytest.mark.parametrize("text,match", [
    ("unused_share_server_cleanup_interval = 0\n", "greater than"),
    ("unused_share_server_cleanup_interval = 721\n", "more than 720"),
    ("automatic_share_server_cleanup = 'yes'\n", "true or false"),
    ("[backends.ganesha]\naddress = '192.0.2.1'\n", "apply only to backends with"),
    ("[backends.ganesha]\nmanaged = true\n", "apply only to backends with"),
])
def test_bad_settings_are_named(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load(tmp_path, '[[backends]]\nname = "iso"\ndriver_handles_share_servers = true\n' + text)


def test_server_names():
    sid = server_id_for("6f1f2a4e-3c1b-4d53-9a53-0d7f4e1c2b10")
    assert sid == server_id_for("6f1f2a4e-3c1b-4d53-9a53-0d7f4e1c2b10") and check_server_id(sid) == sid
    assert netns_name(sid) == f"sf-srv-{sid}" and len(veth_name(sid)) <= 15
    assert veth_name(sid).startswith("sfv")
    mac = mac_address("net", "198.51.100.7")
    assert mac == mac_address("net", "198.51.100.7") != mac_address("net", "198.51.100.8")
    assert int(mac.split(":")[0], 16) & 0x03 == 0x02  # locally administered, unicast
    for bad in ("", "x", sid.upper(), "../" + sid, None):
        with pytest.raises(NetworkError):
            netns_name(bad)


def test_housekeeping_runs_often_enough_for_the_cleanup_interval(tmp_path):
    from shareflow.engine.worker import HOUSEKEEPING_INTERVAL, housekeeping_interval

    plain = load(tmp_path, '[[backends]]\nname = "flat"\n')
    assert housekeeping_interval(plain) == min(HOUSEKEEPING_INTERVAL, plain.conductor.orphan_timeout / 2)
    fast = load(tmp_path, '[[backends]]\nname = "iso"\ndriver_handles_share_servers = true\n'
                          'unused_share_server_cleanup_interval = 0.1\n')
    assert housekeeping_interval(fast) == 3.0  # half of 6 s
    off = load(tmp_path, '[[backends]]\nname = "iso"\ndriver_handles_share_servers = true\n'
                         'unused_share_server_cleanup_interval = 0.1\nautomatic_share_server_cleanup = false\n')
    assert housekeeping_interval(off) == housekeeping_interval(plain)
