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
import subprocess
from collections.abc import Iterator

import pytest

from tests.fixtures.keystone import REGION
from tests.fixtures.manila_csi import microversion, replay_manila_csi
from tests.fixtures.stack import ServiceStack


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
    assert steps["api_version"]["id"] == "v2.0" and microversion(steps["api_version"]["version"]) >= (2, 9)
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


def test_manila_csi_request_sequence_ends_with_a_share_served_over_nfs(ks_stack, keystone_server, keystone_users):
    replay_manila_csi(ks_stack, keystone_server, keystone_users.alice)
