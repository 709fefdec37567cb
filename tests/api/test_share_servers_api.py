"""``/share-servers`` in-process (no conductor runs): Manila's fields per
microversion, admin-only policy, delete's refusals and its job, reset_status."""

from __future__ import annotations

import uuid

import pytest

from shareflow.db import networks as networks_db
from shareflow.db import share_servers as servers_db
from shareflow.db import shares as shares_db
from shareflow.db.models import Job, ShareServer
from shareflow.domain import states
from shareflow.wiring import utcnow
from tests.api.conftest import assert_fault


def make_server(api, *, status: str = states.SERVER_ACTIVE, name: str | None = "tenant-net",
                project: str = "proj-a") -> tuple[str, str]:
    """A share network with a server on it (as a create would have left them)."""
    sn_id, server_id = str(uuid.uuid4()), str(uuid.uuid4())
    with api.services.db.write() as s:
        sn = networks_db.create_share_network(
            s, now=utcnow(), share_network_id=sn_id, subnet_id=str(uuid.uuid4()), project_id=project,
            user_id=None, name=name, description=None, provider_network_id=None,
        )
        servers_db.create(s, now=utcnow(), id=server_id, share_network_id=sn_id,
                          share_network_subnet_id=sn.subnets[0].id, project_id=project, backend="testhost@b1",
                          host="testhost@b1", address="198.51.100.100", allocation_id=None,
                          is_auto_deletable=True)
        s.get(ShareServer, server_id).status = status
    return sn_id, server_id


def bind_share(api, server_id: str, sn_id: str) -> str:
    share_id = str(uuid.uuid4())
    with api.services.db.write() as s:
        shares_db.create(s, now=utcnow(), id=share_id, project_id="proj-a", size=1, share_proto="NFS",
                         status=states.AVAILABLE, backend="testhost@b1", host="testhost@b1#pool0", share_network_id=sn_id,
                         share_server_id=server_id, is_public=False)
    return share_id


@pytest.fixture
def admin(api):
    return api.tokens["admin"]


def test_members_are_refused(api):
    sn_id, server_id = make_server(api)
    for method, path, action in (("GET", "/v2/share-servers", "index"),
                                 ("GET", f"/v2/share-servers/{server_id}", "show"),
                                 ("GET", f"/v2/share-servers/{server_id}/details", "details"),
                                 ("DELETE", f"/v2/share-servers/{server_id}", "delete")):
        msg = assert_fault(api.request(method, path), 403)
        assert msg == f"Policy doesn't allow share_server:{action} to be performed."
    r = api.post(f"/v2/share-servers/{server_id}/action", {"reset_status": {"status": "error"}})
    assert_fault(r, 403)


def test_views_per_microversion(api, admin):
    sn_id, server_id = make_server(api)
    listed = api.get("/v2/share-servers", token=admin, version="2.48").json["share_servers"]
    (one,) = [s for s in listed if s["id"] == server_id]
    assert set(one) == {"id", "project_id", "updated_at", "status", "host", "share_network_name",
                        "share_network_id"}
    assert (one["status"], one["host"], one["share_network_name"]) == ("active", "testhost@b1", "tenant-net")
    shown = api.get(f"/v2/share-servers/{server_id}", token=admin, version="2.65").json["share_server"]
    assert shown["is_auto_deletable"] is True and shown["identifier"] == server_id
    assert shown["share_network_subnet_id"] and shown["task_state"] is None
    assert shown["source_share_server_id"] is None and shown["security_service_update_support"] is False
    assert shown["backend_details"]["address"] == "198.51.100.100"
    assert shown["created_at"].count(":") == 2
    details = api.get(f"/v2/share-servers/{server_id}/details", token=admin).json["details"]
    assert details["netns"] == f"sf-srv-{server_id}"
    # A share network without a name shows its id (Manila's share_network_name).
    _, unnamed = make_server(api, name=None)
    body = api.get(f"/v2/share-servers/{unnamed}", token=admin).json["share_server"]
    assert body["share_network_name"] == body["share_network_id"]
    missing = str(uuid.uuid4())
    assert assert_fault(api.get(f"/v2/share-servers/{missing}", token=admin), 404) == \
        f"Share server {missing} could not be found."


def test_list_filters(api, admin):
    sn_id, server_id = make_server(api, status=states.ERROR)

    def ids(**params):
        r = api.get("/v2/share-servers", token=admin, params=params)
        return {s["id"] for s in r.json["share_servers"]}

    assert server_id in ids(status="error") and server_id not in ids(status="active")
    assert ids(share_network_id=sn_id) == {server_id} == ids(share_network=sn_id)
    assert server_id in ids(host="testhost@b1") and server_id in ids(project_id="proj-a")
    assert ids(bogus="1") == set()  # Manila: an unknown filter matches nothing


def test_delete_refusals_and_job(api, admin):
    sn_id, server_id = make_server(api)
    share_id = bind_share(api, server_id, sn_id)
    assert assert_fault(api.delete(f"/v2/share-servers/{server_id}", token=admin), 409) == \
        f"Share server {server_id} is in use."
    with api.services.db.write() as s:
        s.get(type(api.share_row(share_id)), share_id).deleted_at = utcnow()
    _, creating = make_server(api, status=states.CREATING)
    msg = assert_fault(api.delete(f"/v2/share-servers/{creating}", token=admin), 403)
    assert msg == "Share server's actual status is creating, allowed statuses for deletion are ['error', 'active']."

    r = api.delete(f"/v2/share-servers/{server_id}", token=admin)
    assert r.status_code == 202 and r.text == ""
    with api.services.db.read() as s:
        assert s.get(ShareServer, server_id).status == states.DELETING
        job = s.query(Job).filter(Job.resource_id == server_id).one()
    assert (job.operation, job.resource_type, job.backend) == ("delete_share_server", "share_server", "testhost@b1")
    assert_fault(api.delete(f"/v2/share-servers/{server_id}", token=admin), 403)


def test_reset_status(api, admin):
    _, server_id = make_server(api)
    path = f"/v2/share-servers/{server_id}/action"
    assert_fault(api.post(path, {"reset_status": {"status": "error"}}, token=admin, version="2.48"), 404)
    r = api.post(path, {"reset_status": {"status": "error"}}, token=admin, version="2.49")
    assert r.status_code == 202
    assert api.get(f"/v2/share-servers/{server_id}", token=admin).json["share_server"]["status"] == "error"
    msg = assert_fault(api.post(path, {"reset_status": {"status": "bogus"}}, token=admin), 400)
    assert msg == "Invalid state. Valid states: active, creating, deleting, error."
    assert assert_fault(api.post(path, {"reset_status": {}}, token=admin), 400) == "Must specify 'status'"
    assert_fault(api.post(path, {"unmanage": {}}, token=admin), 400)
    assert_fault(api.post(path, {"nope": {}}, token=admin), 400)


def test_reset_task_state(api, admin):
    """Manila's reset_task_state (2.57): there are no migrations here, so None
    is the one task state (openstack share server set --status sends it)."""
    _, server_id = make_server(api)
    path = f"/v2/share-servers/{server_id}/action"
    assert_fault(api.post(path, {"reset_task_state": {"task_state": None}}, token=admin, version="2.56"), 404)
    r = api.post(path, {"reset_task_state": {"task_state": None}}, token=admin, version="2.57")
    assert r.status_code == 202
    assert api.get(f"/v2/share-servers/{server_id}", token=admin).json["share_server"]["task_state"] is None
    msg = assert_fault(api.post(path, {"reset_task_state": {"task_state": "migration_error"}}, token=admin), 400)
    assert msg == "Share server migration is not supported by this service; the task state can only be reset to None."
    assert "Invalid task_state" in assert_fault(
        api.post(path, {"reset_task_state": {"task_state": "bogus"}}, token=admin), 400)
    assert assert_fault(api.post(path, {"reset_task_state": {}}, token=admin), 400) == "Must specify 'task_state'"
    assert_fault(api.post(path, {"reset_task_state": {"task_state": None}}), 403)
    missing = str(uuid.uuid4())
    assert_fault(api.post(f"/v2/share-servers/{missing}/action", {"reset_task_state": {"task_state": None}},
                          token=admin), 404)
