"""``/v2/jobs`` in process: listing with filters and pages, project
isolation, a job's steps and attempts, and the steering actions' errors.

No conductor runs here (see conftest): a share created through the API is
placed by the API, whose one ``create_share`` job waits ``posted`` on its
pool's board; a test that needs another state writes it on the record, as
a conductor would have. Listings of a project's jobs ask for
``create_share`` jobs (``CREATES``) where other jobs would not matter.
"""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import falcon.testing
import pytest
import sqlalchemy as sa

from shareflow.api.app import create_app
from shareflow.auth.tokens import TokenFile
from shareflow.db.models import Job
from shareflow.system.ports import free_port
from shareflow.wiring import Services, utcnow
from tests.api.conftest import MAX, assert_fault, check_response


#: The filter for the create jobs of a listing.
CREATES = {"operation": "create_share"}


def job_of(api, share_id: str, operation: str = "create_share") -> Job:
    with api.services.db.read() as s:
        return s.scalars(sa.select(Job).where(Job.resource_id == share_id, Job.operation == operation)).one()


def set_job(api, job_id: str, **values) -> None:
    with api.services.db.write() as s:
        s.execute(sa.update(Job).where(Job.id == job_id).values(**values))


def project_token(api, project: str, *, admin: bool = False) -> str:
    return TokenFile(api.config.auth.tokens_file).issue(project, f"user-{project}", admin=admin)[0]


@pytest.fixture(scope="module")
def paged(api):
    """Five jobs of a project of their own, a minute apart, oldest first."""
    token = project_token(api, "proj-pages")
    base = utcnow() - timedelta(hours=1)
    ids = []
    for i in range(5):
        job = job_of(api, api.create_share(token=token)["id"])
        set_job(api, job.id, created_at=base + timedelta(minutes=i))
        ids.append(job.id)
    return {"token": token, "ids": ids}


def listed(result) -> list[str]:
    assert result.status_code == 200, result.text
    return [j["id"] for j in result.json["jobs"]]


def test_a_created_share_has_a_posted_job_its_project_can_read(api):
    share = api.create_share(token=api.tokens["alice"])
    result = api.get("/v2/jobs", params={"resource_id": share["id"]})
    # The create's one job: the API placed the share and recorded it.
    (job,) = result.json["jobs"]
    assert job["operation"] == "create_share" and job["state"] == "posted"
    assert job["retry_of"] is None
    assert job["resource_type"] == "share" and job["project_id"] == "proj-a"
    assert "backend" not in job and "owner" not in job  # where it runs: for admins
    assert job["links"][0]["href"].endswith(f"/v2/jobs/{job['id']}")

    shown = api.get(f"/v2/jobs/{job['id']}").json["job"]
    assert shown["id"] == job["id"] and shown["state"] == "posted"
    # Its chain: itself, the first attempt.
    assert [a["id"] for a in shown["attempts"]] == [job["id"]]
    assert "failure" not in shown

    # With the project in the path too, like every /v2 route.
    assert api.get(f"/v2/proj-a/jobs/{job['id']}").json["job"]["id"] == job["id"]
    assert job["id"] in listed(api.get("/v2/proj-a/jobs", params={"resource_id": share["id"]}))

    admin_view = api.get(f"/v2/jobs/{job['id']}", token=api.tokens["admin"]).json["job"]
    assert admin_view["backend"] == "testhost@b1" and "failure" in admin_view
    assert [a["backend"] for a in admin_view["attempts"]] == ["testhost@b1"]


def test_members_see_only_their_projects_jobs(api):
    mine = job_of(api, api.create_share(token=api.tokens["alice"])["id"])
    theirs = job_of(api, api.create_share(token=api.tokens["bob"])["id"])

    seen = listed(api.get("/v2/jobs"))
    assert mine.id in seen and theirs.id not in seen
    # A member's project_id filter does not widen the list.
    assert theirs.id not in listed(api.get("/v2/jobs", params={"project_id": "proj-b"}))

    message = assert_fault(api.get(f"/v2/jobs/{theirs.id}"), 404)
    assert message == f"Job {theirs.id} could not be found."
    # Same answer as for a job that does not exist at all.
    assert assert_fault(api.get(f"/v2/jobs/{uuid.uuid4()}"), 404).endswith("could not be found.")

    everyone = listed(api.get("/v2/jobs", token=api.tokens["admin"]))
    assert mine.id in everyone and theirs.id in everyone
    only_b = api.get("/v2/jobs", token=api.tokens["admin"], params={"project_id": "proj-b"}).json["jobs"]
    assert theirs.id in [j["id"] for j in only_b] and {j["project_id"] for j in only_b} == {"proj-b"}


def test_jobs_are_newest_first_and_paged(api, paged):
    newest_first = list(reversed(paged["ids"]))
    token = paged["token"]
    assert listed(api.get("/v2/jobs", token=token, params=CREATES)) == newest_first
    assert listed(api.get("/v2/jobs", token=token, params={"limit": "2", **CREATES})) == newest_first[:2]
    assert listed(api.get("/v2/jobs", token=token, params={"limit": "2", "offset": "2", **CREATES})) == \
        newest_first[2:4]
    assert listed(api.get("/v2/jobs", token=token, params={"offset": "4", **CREATES})) == newest_first[4:]
    assert listed(api.get("/v2/jobs", token=token, params={"offset": "5", **CREATES})) == []
    admin = api.get("/v2/jobs", token=api.tokens["admin"], params={"project_id": "proj-pages", "limit": "3",
                                                                   **CREATES})
    assert listed(admin) == newest_first[:3]
    assert "count" not in admin.json


def test_with_count_says_how_many_match_whatever_the_page(api, paged):
    token = paged["token"]
    page = api.get("/v2/jobs", token=token, params={"limit": "2", "with_count": "true", **CREATES}).json
    assert len(page["jobs"]) == 2 and page["count"] == 5
    assert api.get("/v2/jobs", token=token, params={"with_count": "true"}).json["count"] == 5  # no other jobs
    assert api.get("/v2/jobs", token=token, params={"state": "succeeded", "with_count": "1", **CREATES}
                   ).json["count"] == 0
    everyone = api.get("/v2/jobs", token=api.tokens["admin"], params={"with_count": "true", "limit": "1"}).json
    assert everyone["count"] > 5  # every project's
    assert_fault(api.get("/v2/jobs", params={"with_count": "maybe"}), 400)


@pytest.mark.parametrize("query, message", [
    ({"limit": "x"}, "limit param must be an integer"),
    ({"limit": "-1"}, "limit param must be positive"),
    ({"offset": "-3"}, "offset param must be positive"),
    ({"state": "exploded"}, "Invalid state filter 'exploded'"),
    ({"operation": "x" * 300}, "Invalid operation filter."),
    ({"resource_id": "a\x00b"}, "Invalid resource_id filter."),
])
def test_bad_list_parameters_are_400(api, query, message):
    assert assert_fault(api.get("/v2/jobs", params=query), 400).startswith(message)


def test_filters_state_operation_and_resource(api, paged):
    token = paged["token"]
    first, second, *rest = paged["ids"]
    set_job(api, first, state="succeeded", finished_at=utcnow())
    set_job(api, second, state="reverted", failed_step="create_volume", finished_at=utcnow())
    try:
        assert listed(api.get("/v2/jobs", token=token, params={"state": "succeeded", **CREATES})) == [first]
        # Repeated or comma-separated: either state.
        both = {"state": ["reverted", "succeeded"], **CREATES}
        assert set(listed(api.get("/v2/jobs", token=token, params=both))) == {first, second}
        assert set(listed(api.get("/v2/jobs", token=token, params={"state": "reverted,succeeded", **CREATES}))) \
            == {first, second}
        assert listed(api.get("/v2/jobs", token=token, params={"state": "posted"})) == list(reversed(rest))
        failed = api.get(f"/v2/jobs/{second}", token=token).json["job"]
        assert failed["state"] == "reverted" and failed["failed_step"] == "create_volume"
        assert failed["finished_at"] is not None

        assert len(listed(api.get("/v2/jobs", token=token, params={"operation": "create_share"}))) == 5
        assert listed(api.get("/v2/jobs", token=token, params={"operation": "delete_share"})) == []
        job = api.get(f"/v2/jobs/{rest[0]}", token=token).json["job"]
        assert listed(api.get("/v2/jobs", token=token, params={"resource_id": job["resource_id"], **CREATES})) \
            == [rest[0]]
        assert listed(api.get("/v2/jobs", token=token, params={"operation": "schedule_share"})) == []
    finally:
        set_job(api, first, state="posted", finished_at=None)
        set_job(api, second, state="posted", failed_step=None, finished_at=None)


def test_an_active_job_its_board_lost_is_stalled_filtered_and_counted(api):
    """ZooKeeper decides: the job's board node is not there (its record names
    another) and nothing changed for longer than stall_after."""
    token = project_token(api, "proj-stalled")
    lost, fresh = (job_of(api, api.create_share(token=token)["id"]) for _ in range(2))
    long_ago = utcnow() - timedelta(hours=2)
    set_job(api, lost.id, board_job_id=str(uuid.uuid4()), created_at=long_ago, updated_at=long_ago)

    everything = api.get("/v2/jobs", token=token, params=CREATES).json["jobs"]
    assert {j["id"]: j["state"] for j in everything} == {lost.id: "stalled", fresh.id: "posted"}
    assert listed(api.get("/v2/jobs", token=token, params={"state": "stalled"})) == [lost.id]
    assert listed(api.get("/v2/jobs", token=token, params={"state": "posted"})) == [fresh.id]
    counted = api.get("/v2/jobs", token=api.tokens["admin"], params={
        "state": "stalled", "project_id": "proj-stalled", "with_count": "true"}).json
    assert counted["count"] == 1
    assert counted["jobs"][0]["stalled_reason"].startswith("its board no longer holds it since ")
    shown = api.get(f"/v2/jobs/{lost.id}", token=token).json["job"]
    assert shown["state"] == "stalled" and "stalled_reason" not in shown  # the why: for admins
    # Resuming it posts it again (a conductor would run it); it is no longer stalled.
    resumed = action(api, lost.id, {"resume": None})
    assert resumed.status_code == 202, resumed.text
    assert resumed.json["job"]["state"] == "posted" and resumed.json["job"]["attempt"] == 2


def test_a_job_no_conductor_has_loaded_has_no_steps_yet(api):
    """A flow's atoms are persisted by the conductor that first loads it;
    until then the job is its record and nothing more (the steps of a job
    that ran are tested on the stack, tests/functional/test_jobs_cli.py)."""
    job = job_of(api, api.create_share(token=api.tokens["alice"])["id"])
    shown = api.get(f"/v2/jobs/{job.id}").json["job"]
    assert shown["steps"] == [] and shown["state"] == "posted"


# --- steering: /v2/jobs/{id}/action -------------------------------------------


def action(api, job_id: str, body, token=None):
    return api.post(f"/v2/jobs/{job_id}/action", body, token=token or api.tokens["admin"])


@pytest.mark.parametrize("name", ["resume", "retry", "cancel"])
def test_members_may_not_steer_jobs(api, name):
    job = job_of(api, api.create_share(token=api.tokens["alice"])["id"])
    before = api.get(f"/v2/jobs/{job.id}").json["job"]
    message = assert_fault(action(api, job.id, {name: None}, token=api.tokens["alice"]), 403)
    assert message == f"Policy doesn't allow job:{name} to be performed."
    # Another project's job, or none: still 403, nothing is told about it.
    assert_fault(action(api, str(uuid.uuid4()), {name: None}, token=api.tokens["bob"]), 403)
    assert api.get(f"/v2/jobs/{job.id}").json["job"] == before


@pytest.mark.parametrize("name", ["resume", "retry", "cancel"])
def test_steering_an_unknown_job_is_404(api, name):
    missing = str(uuid.uuid4())
    message = assert_fault(action(api, missing, {name: None}), 404)
    assert message == f"Job {missing} could not be found."


@pytest.mark.parametrize("body, message", [
    ({}, "Malformed request body"),
    ({"resume": None, "cancel": None}, "Malformed request body"),
    ({"restart": None}, "There is no such action: restart"),
    ({"resume": {"force": True}}, "Invalid body for resume: it takes no arguments (null)."),
    ({"retry": 1}, "Invalid body for retry: it takes no arguments (null)."),
    ({"cancel": "now"}, "Invalid body for cancel: it takes no arguments (null)."),
    ([], "Malformed request body"),
])
def test_action_bodies_are_validated_before_anything(api, body, message):
    job = job_of(api, api.create_share(token=api.tokens["alice"])["id"])
    assert assert_fault(action(api, job.id, body), 400) == message
    assert job_of(api, job.resource_id).state == "posted"


@pytest.mark.parametrize("name, state", [
    ("resume", "succeeded"),   # nothing left to do
    ("retry", "posted"),       # only a reverted job is retried
    ("retry", "succeeded"),
    ("cancel", "succeeded"),   # only a posted or running job stops
])
def test_a_state_that_does_not_allow_the_action_is_409(api, name, state):
    job = job_of(api, api.create_share(token=api.tokens["alice"])["id"])
    set_job(api, job.id, state=state)
    message = assert_fault(action(api, job.id, {name: None}), 409)
    assert message.startswith(f"Job {job.id} is {state}: only ")
    assert job_of(api, job.resource_id).state == state


def test_cancel_a_posted_job_is_202_with_the_job_and_its_history(api):
    job = job_of(api, api.create_share(token=api.tokens["alice"])["id"])
    result = action(api, job.id, {"cancel": {}})
    assert result.status_code == 202, result.text
    answered = result.json["job"]
    assert answered["id"] == job.id and answered["state"] == "cancelling"
    (done,) = answered["actions"]
    assert (done["action"], done["from_state"], done["to_state"], done["user_id"]) == (
        "cancel", "posted", "cancelling", "root")
    # Asking again what is being done already changes nothing.
    again = action(api, job.id, {"cancel": None})
    assert again.status_code == 202 and len(again.json["job"]["actions"]) == 1
    # The member sees the job cancelling too, and what was done to it.
    mine = api.get(f"/v2/jobs/{job.id}").json["job"]
    assert mine["state"] == "cancelling" and mine["actions"][0]["action"] == "cancel"
    assert "user_id" not in mine["actions"][0]  # which operator: not the tenant's business
    assert "cancelling" in [j["state"] for j in api.get(
        "/v2/jobs", params={"state": "cancelling", "resource_id": job.resource_id}).json["jobs"]]


def test_without_zookeeper_jobs_are_listed_as_recorded_and_stalled_is_503(api):
    """Stalled is ZooKeeper's answer, never a guess: when it cannot be asked
    the list shows the records' states, and asking for stalled jobs is a 503."""
    job = job_of(api, api.create_share(token=api.tokens["alice"])["id"])
    zk = dataclasses.replace(api.config.zookeeper, hosts=f"127.0.0.1:{free_port()}", connect_timeout=1.0)
    config = dataclasses.replace(api.config, zookeeper=zk)
    services = Services(config)
    client = falcon.testing.TestClient(create_app(config, services))
    headers = {"X-Auth-Token": api.tokens["admin"], "X-OpenStack-Manila-API-Version": MAX}
    try:
        result = client.simulate_get("/v2/jobs", params={"resource_id": job.resource_id, **CREATES},
                                     headers=headers)
        check_response(result)
        assert [(j["id"], j["state"]) for j in result.json["jobs"]] == [(job.id, "posted")]
        shown = client.simulate_get(f"/v2/jobs/{job.id}", headers=headers)
        check_response(shown)
        assert shown.json["job"]["state"] == "posted"
        # (A 503, which check_response refuses: Manila's body is checked here.)
        result = client.simulate_get("/v2/jobs", params={"state": "stalled"}, headers=headers)
        message = assert_fault(result, 503, "serviceUnavailable")
        assert message == "the coordination service is unavailable, try again later"
    finally:
        services.close()
