"""NFS-Ganesha serving IPv6 clients by shareflow's IPv6 rules, checked by a
real libnfs client over IPv6.

The server runs in its own test namespace bound to the IPv6 loopback ``::1``
and the client runs in that namespace too, so it connects from ``::1``. The
namespace also gets a global IPv6 address (on its loopback, no DAD):
Ganesha resolves its ``Bind_addr`` with ``AI_ADDRCONFIG``, which finds no
IPv6 on a host whose only IPv6 address is ``::1`` and refuses the
configuration ("invalid param value" in ``NFS_Core_Param``).
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shareflow.config import GaneshaConfig
from shareflow.drivers.base import ClientRule
from shareflow.drivers.export import ganesha_config as gc
from shareflow.drivers.export.ganesha import GaneshaExportDriver, export_file
from shareflow.drivers.export.ganesha_server import GaneshaServer
from shareflow.system import netns
from shareflow.system.process import run
from tests.fixtures.export_env import new_volume, pseudo
from tests.fixtures.storage import NFS_PORT, TIMEOUT

LOOPBACK6 = "::1"
#: A unique-local address, only there so that Ganesha sees IPv6 configured.
GLOBAL6 = "fd5f::1"


class Ipv6Client:
    """libnfs tools in the server's namespace, reaching it on ``[::1]``.
    libnfs 4.0 reads an IPv6 server in a URL without brackets (with them,
    it fails to resolve "[::1]")."""

    def __init__(self, ns: str, server: str):
        self.ns, self.server = ns, server

    def _run(self, *argv: str) -> subprocess.CompletedProcess:
        return run(netns.exec_argv(self.ns, list(argv)), timeout=TIMEOUT, check=False)

    def url(self, path: str) -> str:
        return f"nfs://{self.server}{path}?version=4"

    def ls(self, path: str) -> subprocess.CompletedProcess:
        return self._run("nfs-ls", self.url(path))

    def put(self, path: str, data: bytes, tmp: Path) -> subprocess.CompletedProcess:
        src = tmp / f"put-{secrets.token_hex(4)}"
        src.write_bytes(data)
        return self._run("nfs-cp", str(src), self.url(path))


@pytest.fixture
def ipv6_ganesha(btrfs_config, tmp_path) -> Iterator[tuple[GaneshaServer, Ipv6Client]]:
    ns = f"sf{secrets.token_hex(3)}-v6"
    netns.create(ns)
    try:
        run(["ip", "-n", ns, "address", "add", f"{GLOBAL6}/128", "dev", "lo", "nodad"], timeout=TIMEOUT)
        server = GaneshaServer(GaneshaConfig(address=LOOPBACK6, port=NFS_PORT, state_dir=tmp_path / "ganesha",
                                             netns=ns, managed=False), timeout=TIMEOUT)
        server.start()
        try:
            yield server, Ipv6Client(ns, LOOPBACK6)
        finally:
            server.stop()
    finally:
        netns.delete(ns)


def test_an_ipv6_client_is_served_by_its_rules_only(ipv6_ganesha, btrfs_share_driver, tmp_path):
    server, client = ipv6_ganesha
    driver = GaneshaExportDriver({"v6": server}, timeout=TIMEOUT)
    share_server = {"id": "v6", "address": LOOPBACK6, "created": False}
    sid, path = new_volume(btrfs_share_driver)
    assert driver.add_export(share_server, sid, path) == [f"[::1]:/shares/{sid}"]
    nobody = client.ls(pseudo(sid))
    assert nobody.returncode != 0 and "NFS4ERR_NOENT" in nobody.stdout + nobody.stderr

    # The address itself, read-write: listed, written, and it is the volume.
    driver.update_access(share_server, sid, [ClientRule(LOOPBACK6, "rw")])
    listing = client.ls(pseudo(sid))
    assert listing.returncode == 0 and "hello" in listing.stdout, listing.stderr
    assert client.put(pseudo(sid, "over-v6"), b"over ipv6\n", tmp_path).returncode == 0
    assert Path(path, "over-v6").read_text() == "over ipv6\n"
    assert "Clients = ::1;" in export_file(server, sid).read_text()

    # Read-only: read, not written.
    driver.update_access(share_server, sid, [ClientRule(LOOPBACK6, "ro")])
    assert client.ls(pseudo(sid)).returncode == 0
    assert client.put(pseudo(sid, "ro"), b"no", tmp_path).returncode != 0
    assert not Path(path, "ro").exists()

    # A network the client is not in, then one it is in (::/1 holds ::1).
    driver.update_access(share_server, sid, [ClientRule("fd5f::/64", "rw"), ClientRule("2001:db8::1", "rw")])
    assert client.ls(pseudo(sid)).returncode != 0
    driver.update_access(share_server, sid, [ClientRule("::/1", "rw")])
    assert client.ls(pseudo(sid)).returncode == 0
    # Everyone of IPv6 (written as its two halves), and nobody again.
    driver.update_access(share_server, sid, [ClientRule("::/0", "rw")])
    assert client.ls(pseudo(sid)).returncode == 0
    assert "Clients = ::/1, 8000::/1;" in export_file(server, sid).read_text()
    driver.update_access(share_server, sid, [])
    assert client.ls(pseudo(sid)).returncode != 0
    assert gc.parse_export_file(export_file(server, sid).read_text()).clients == ()
