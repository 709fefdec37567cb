"""The clients that log in through Keystone, on the real stack behind a real
Keystone (``[auth] strategy = "keystone"``; tests/fixtures/keystone.py).

* **gophercloud** (Debian's 0.12, the library of Kubernetes' manila-csi and
  Terraform's OpenStack provider): ``tests/clients/gophercloud/main.go``,
  built offline here, authenticates with a password, finds the share service
  in the token's catalog, reads the API version, creates a share, waits for
  it, grants an IP rule, reads its export locations and deletes it.
* **manila-csi's request sequence** (kubernetes/cloud-provider-openstack
  ``pkg/csi/manila``: ``CreateVolume`` -> NodeStage -> ``DeleteVolume``),
  replayed request by request with a fresh Keystone token per CSI call, as
  the driver builds a new client for each, at the microversions it uses
  (2.37 for everything, 2.45 to list access rules), ending with the share
  read and written over NFS from the allowed address, and not from another.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.fixtures.keystone import REGION
from tests.fixtures.stack import ServiceStack, wait_until

GOPHERCLOUD_PROGRAM = Path(__file__).resolve().parents[1] / "clients" / "gophercloud"
GOPATH = Path("/usr/share/gocode")


@pytest.fixture(scope="module")
def ks_stack(zookeeper_server, btrfs_pool, keystone_server, keystone_users, tmp_path_factory) -> Iterator[ServiceStack]:
    service = keystone_users.service
    auth = {"strategy": "keystone", "keystone": {
        "auth_url": keystone_server.url, "username": service.user_name, "password": service.password,
        "project_name": service.project_name, "cache_seconds": 60}}
    with ServiceStack(tmp_path_factory.mktemp("ks-stack"), zk_hosts=zookeeper_server.hosts,
                      btrfs_pool=btrfs_pool, auth=auth) as stack:
        with keystone_server.share_service(stack.url):
            yield stack


@pytest.fixture(scope="module")
def gophercloud_binary(tmp_path_factory) -> Path:
    go = shutil.which("go")
    assert go, "go is missing: scripts/bootstrap-test.sh installs golang-go (make test runs it)"
    out = tmp_path_factory.mktemp("gophercloud")
    binary = out / "gophercloud-client"
    # Offline, against Debian's packaged gophercloud: GOPATH mode, no modules, no network.
    env = {**os.environ, "GOPATH": str(GOPATH), "GO111MODULE": "off", "GOFLAGS": "",
           "GOCACHE": str(out / "cache"), "HOME": str(out), "GOPROXY": "off"}
    built = subprocess.run([go, "build", "-o", str(binary), "."], cwd=GOPHERCLOUD_PROGRAM, env=env,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr
    return binary


def test_gophercloud_password_login_and_a_share_lifecycle(ks_stack, keystone_server, keystone_users,
                                                          gophercloud_binary):
    alice = keystone_users.alice
    client = ks_stack.network.clients[0]
    env = {"PATH": os.environ["PATH"], "OS_AUTH_URL": keystone_server.url, "OS_USERNAME": alice.user_name,
           "OS_PASSWORD": alice.password, "OS_PROJECT_NAME": alice.project_name, "OS_DOMAIN_NAME": "Default",
           "OS_REGION_NAME": REGION, "SHARE_ACCESS_TO": client.address}
    ran = subprocess.run([str(gophercloud_binary)], env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr + ran.stdout
    steps = {}
    for line in ran.stdout.splitlines():
        record = json.loads(line)
        steps[record["step"]] = record["value"]
    assert list(steps) == ["authenticated", "endpoint", "api_version", "created", "available", "granted",
                           "rule_active", "export_locations", "deleted"]
    assert steps["endpoint"].rstrip("/") == ks_stack.url
    assert steps["api_version"]["id"] == "v2.0" and _mv(steps["api_version"]["version"]) >= (2, 9)
    share_id = steps["created"]["id"]
    # gophercloud parsed our timestamp (a zero time would print as year 1).
    assert not steps["created"]["created_at"].startswith("0001-")
    assert steps["granted"]["access_to"] == client.address
    (location,) = steps["export_locations"]
    assert location["path"].endswith(share_id) or share_id in location["path"]
    assert steps["deleted"] == share_id
    row = ks_stack.share_row(share_id)
    assert row is None or row.status == "deleted"
    assert row is None or row.project_id == alice.project_id


class CsiDriver:
    """manila-csi's calls, one CSI request = one new client = one new token."""

    def __init__(self, stack: ServiceStack, keystone, principal):
        self.stack, self.keystone, self.principal = stack, keystone, principal
        self.tokens: list[str] = []

    def client(self) -> requests.Session:
        """``manilaclient.New``: authenticate, then check the server's
        microversions against the minimum the driver needs (2.37)."""
        token = self.keystone.token(self.principal.user_name, self.principal.password, self.principal.project_name)
        self.tokens.append(token)
        s = requests.Session()
        s.headers.update({"X-Auth-Token": token, "X-OpenStack-Manila-API-Version": "2.37",
                          "Accept": "application/json"})
        r = s.get(f"{self.stack.url}/")
        assert r.status_code == 200, r.text
        (version,) = r.json()["versions"]  # gophercloud refuses more than one
        assert _mv(version["min_version"]) <= (2, 37) <= _mv(version["version"])
        s.server_max = version["version"]
        return s

    def url(self, path: str) -> str:
        return f"{self.stack.url}{path}"


def _mv(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def test_manila_csi_request_sequence_ends_with_a_share_served_over_nfs(ks_stack, keystone_server, keystone_users):
    csi = CsiDriver(ks_stack, keystone_server, keystone_users.alice)
    node, other = ks_stack.nfs(0), ks_stack.nfs(1)
    pvc = f"pvc-{uuid.uuid4()}"

    # CreateVolume: look the volume up by name, create it, wait for it.
    c = csi.client()
    r = c.get(csi.url("/shares/detail"), params={"name": pvc})
    assert r.status_code == 200 and r.json()["shares"] == []
    r = c.post(csi.url("/shares"), json={"share": {
        "share_proto": "NFS", "size": 1, "name": pvc, "description": "provisioned-by=manila.csi.openstack.org",
        "share_type": "default", "metadata": {"manila.csi.openstack.org/cluster": "k8s-1",
                                              "csi.storage.k8s.io/pvc/name": "data",
                                              "csi.storage.k8s.io/pvc/namespace": "default"}}})
    assert r.status_code == 200, r.text
    share_id = r.json()["share"]["id"]

    def status() -> str:
        got = c.get(csi.url(f"/shares/{share_id}"))
        assert got.status_code == 200, got.text
        assert got.json()["share"]["status"] in ("creating", "available"), got.text
        return got.json()["share"]["status"]

    wait_until(lambda: status() == "available", 120, "the share to be available")
    # GetOrGrantAccess: list the rules (2.45's GET when the server has it), then allow.
    assert _mv(c.server_max) >= (2, 45)
    r = c.get(csi.url("/share-access-rules"), params={"share_id": share_id},
              headers={"X-OpenStack-Manila-API-Version": "2.45"})
    assert r.status_code == 200 and r.json()["access_list"] == []
    r = c.post(csi.url(f"/shares/{share_id}/action"), json={"allow_access": {
        "access_type": "ip", "access_to": node.address, "access_level": "rw"}})
    assert r.status_code == 200, r.text
    rule_id = r.json()["access"]["id"]

    # NodeStageVolume (a new client): the share, its rule, its export location.
    c = csi.client()

    def rule_state() -> str:
        got = c.get(csi.url("/share-access-rules"), params={"share_id": share_id},
                    headers={"X-OpenStack-Manila-API-Version": "2.45"})
        assert got.status_code == 200, got.text
        (rule,) = got.json()["access_list"]
        assert rule["id"] == rule_id and rule["state"] in ("queued_to_apply", "applying", "active"), rule
        return rule["state"]

    wait_until(lambda: rule_state() == "active", 60, "the rule to be active")
    r = c.get(csi.url(f"/shares/{share_id}/export_locations"))
    assert r.status_code == 200, r.text
    locations = r.json()["export_locations"]
    # The driver takes the preferred location, or the first one.
    location = next((el for el in locations if el["preferred"]), locations[0])
    _, _, path = location["path"].partition(":")
    # The node mounts it: written and read back over NFS from the allowed address only.
    assert node.put(f"{path}/pod.txt", b"written by the pod\n").returncode == 0
    assert node.cat(f"{path}/pod.txt").stdout == "written by the pod\n"
    assert other.cat(f"{path}/pod.txt").returncode != 0

    # DeleteVolume (a new client): delete, and the share is gone.
    c = csi.client()
    r = c.delete(csi.url(f"/shares/{share_id}"))
    assert r.status_code == 202, r.text

    def gone() -> bool:
        got = c.get(csi.url(f"/shares/{share_id}"))
        assert got.status_code in (200, 404), got.text
        return got.status_code == 404

    wait_until(gone, 120, "the share to be deleted")
    # Three CSI calls, three logins: each token was a distinct Keystone token.
    assert len(set(csi.tokens)) == 3
