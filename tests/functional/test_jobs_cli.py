"""The operator's ``shareflow jobs`` command on the real stack: list, show
and their JSON, and ``watch`` following a running job step by step (a
"hang" fault holds the job inside ``create_volume``) until it ends."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest

from shareflow.services.context import Caller
from tests.fixtures.stack import ServiceStack, wait_until
from tests.functional.test_operations import shareflow_cli

FLOW = ["begin", "allocate_network", "provide_share_server", "create_volume", "export", "apply_access", "finish"]


ADMIN = Caller(project_id="admin", user_id="operator", is_admin=True)


@pytest.fixture(autouse=True)
def no_shares_left(stack):
    """Each test leaves the pool as it found it: the scheduler counts live
    shares, and a full pool fails a create before any job is posted."""
    yield
    services = stack.services()
    try:
        stack.delete_all_shares(services, ADMIN)
    finally:
        services.close()


class Watcher:
    """``shareflow jobs watch JOB`` in the background; its lines as they come."""

    def __init__(self, stack, job_id: str):
        env = {**os.environ, "SHAREFLOW_CONFIG": str(stack.config_path)}
        self.proc = subprocess.Popen([sys.executable, "-m", "shareflow.cli.main", "jobs", "watch", job_id],
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def until(self, predicate, timeout: float = 30) -> str:
        """Lines until one that ``predicate`` accepts (returned)."""
        while True:
            line = self._queue.get(timeout=timeout)
            assert line is not None, f"watch ended first:\n{self.text()}\n{self.proc.stderr.read()}"
            self.lines.append(line)
            if predicate(line):
                return line

    def finish(self, timeout: float = 60) -> int:
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return code

    def events(self) -> list[tuple[str, str]]:
        """(step, event) of every step line: ``HH:MM:SS step event [duration] [failure]``."""
        found = []
        for line in self.lines:
            words = line.split()
            if len(words) >= 3 and words[1] in FLOW:
                event = "revert failed" if words[2:4] == ["revert", "failed"] else words[2]
                found.append((words[1], event))
        return found

    def final(self) -> str:
        """The line that says how the job ended: ``job ID STATE after ...``."""
        return next(line for line in self.lines if line.startswith("job ") and " after " in line)

    def text(self) -> str:
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def job_on(stack, share_id: str) -> dict:
    """The share's create job, once recorded (by the create itself)."""
    def listed():
        done = shareflow_cli(stack, "jobs", "list", "--resource", share_id, "--operation", "create_share",
                             "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    (row,) = wait_until(listed, 30, "the share's create job to be recorded")
    return row


def test_list_filters_show_and_the_api_agree(stack):
    m = stack.manila(stack.token("tenant-jobs-cli"))
    share = m.shares.create("NFS", 1)
    stack.wait_for_share(m, share.id, {"available"})
    job = stack.finished_job(share.id, "create_share")

    rows = json.loads(shareflow_cli(stack, "jobs", "list", "--state", "succeeded", "--operation",
                                    "create_share", "--project", "tenant-jobs-cli", "--json").stdout)
    assert [r["id"] for r in rows] == [job.id]
    none = shareflow_cli(stack, "jobs", "list", "--resource", share.id, "--state", "reverted", "--json")
    assert none.returncode == 0 and json.loads(none.stdout) == []
    assert json.loads(shareflow_cli(stack, "jobs", "list", "--operation", "delete_share",
                                    "--resource", share.id, "--json").stdout) == []

    table = shareflow_cli(stack, "jobs", "list", "--resource", share.id)
    assert table.returncode == 0, table.stderr
    # The create's one job (the API placed the share).
    header, row = table.stdout.splitlines()
    assert header.split()[:4] == ["ID", "OPERATION", "RESOURCE", "STATE"]
    assert row.split()[:4] == [job.id, "create_share", f"share:{share.id}", "succeeded"]
    assert job.retry_of is None

    # --watch off a terminal prints each refresh after the last.
    watched = shareflow_cli(stack, "jobs", "list", "--resource", share.id, "--watch", "--count", "2",
                            "--interval", "0.1")
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.count(job.id) == 2 and watched.stdout.count("Ctrl-C to stop") == 2

    shown = json.loads(shareflow_cli(stack, "jobs", "show", job.id, "--json").stdout)
    assert [s["name"] for s in shown["steps"]] == FLOW
    assert [a["id"] for a in shown["attempts"]] == [job.id]  # the first of its chain

    # The API shows the same steps, to the job's own project too.
    request = urllib.request.Request(f"{stack.url}/jobs/{job.id}",
                                     headers={"X-Auth-Token": stack.token("tenant-jobs-cli")})
    with urllib.request.urlopen(request, timeout=10) as r:
        api_job = json.load(r)["job"]
    assert [(s["name"], s["state"]) for s in api_job["steps"]] == [(s, "SUCCESS") for s in FLOW]
    assert all(s["duration"] >= 0 for s in api_job["steps"])
    assert api_job["state"] == "succeeded" and api_job["flow_state"] == "SUCCESS"

    text = shareflow_cli(stack, "jobs", "show", job.id)
    assert text.returncode == 0, text.stderr
    step_lines = [line.split() for line in text.stdout.splitlines() if line.split()[:1] in ([s] for s in FLOW)]
    assert [(w[0], w[1]) for w in step_lines] == [(s, "SUCCESS") for s in FLOW]
    assert all(w[2].endswith("ms") or w[2].endswith("s") for w in step_lines)


def test_watch_prints_each_step_in_order_and_exits_0(faults):
    stack = faults
    stack.set_faults({"create_volume": "hang"})
    m = stack.manila(stack.token("tenant-watch"))
    share = m.shares.create("NFS", 1)
    watcher = Watcher(stack, job_on(stack, share.id)["id"])
    try:
        # Live: the step is announced while the fault still holds it.
        watcher.until(lambda line: line.split()[1:3] == ["create_volume", "started"])
        assert ("create_volume", "done") not in watcher.events()
        stack.clear_faults()
        assert watcher.finish() == 0, watcher.text()
    finally:
        watcher.stop()
    events = watcher.events()
    assert [s for s, e in events if e == "started"] == FLOW, watcher.text()
    assert [s for s, e in events if e == "done"] == FLOW, watcher.text()
    for step in FLOW:
        assert events.index((step, "started")) < events.index((step, "done"))
    done = next(line for line in watcher.lines if line.split()[1:3] == ["create_volume", "done"])
    assert done.split()[3].endswith("s")  # a duration
    assert watcher.final().split()[2] == "succeeded"
    # Then each step as the conductor measured it.
    summary = watcher.lines[watcher.lines.index(watcher.final()) + 1:]
    assert [line.split()[:2] for line in summary[1:]] == [[s, "SUCCESS"] for s in FLOW]
    assert all(line.split()[2] != "-" for line in summary[1:])
    assert stack.wait_for_share(m, share.id, {"available"}).status == "available"


def test_watch_of_a_job_that_fails_prints_its_reverts_and_exits_1(faults):
    stack = faults
    stack.set_faults({"create_volume": "hang"})
    m = stack.manila(stack.token("tenant-watch-fail"))
    share = m.shares.create("NFS", 1)
    watcher = Watcher(stack, job_on(stack, share.id)["id"])
    try:
        watcher.until(lambda line: line.split()[1:3] == ["create_volume", "started"])
        stack.set_faults({"create_volume": "fail"})  # the held call now fails
        assert watcher.finish() == 1, watcher.text()
    finally:
        watcher.stop()
    events = watcher.events()
    assert ("create_volume", "failed") in events, watcher.text()
    failed = next(line for line in watcher.lines if line.split()[1:3] == ["create_volume", "failed"])
    assert "injected fault" in failed
    # What ran before is undone after the failure, last first.
    reverted = [s for s, e in events if e == "reverted"]
    assert reverted[:1] != [] and events.index(("create_volume", "failed")) < events.index(
        (reverted[0], "reverted"))
    ran = ["begin", "allocate_network", "provide_share_server"]
    assert [s for s in reverted if s in ran] == list(reversed(ran)), watcher.text()
    assert ("export", "started") not in events
    assert watcher.final().split()[2] == "reverted"
    wait_until(lambda: stack.share_row(share.id).status == "error", 30, "the share to be error")


# --- steering from the command line ------------------------------------------------


@pytest.mark.parametrize("action", ["resume", "retry", "cancel"])
def test_steering_an_unknown_job_is_a_message_and_exit_1(stack, action):
    result = shareflow_cli(stack, "jobs", action, "no-such-job")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == "shareflow: Job no-such-job could not be found."


def test_cancel_of_a_create_held_in_create_volume_ends_cancelled(faults):
    """``cancel`` returns at once; the step in flight finishes (the fault is
    lifted) and the job stops at the next boundary, reverting everything."""
    stack = faults
    stack.set_faults({"create_volume": "hang"})
    m = stack.manila(stack.token("tenant-cancel-cli"))
    share = m.shares.create("NFS", 1)
    job = stack.job_inside(share.id, "create_share", "create_volume")
    watcher = Watcher(stack, job.id)
    try:
        watcher.until(lambda line: line.split()[1:3] == ["create_volume", "started"])
        cancelled = shareflow_cli(stack, "jobs", "cancel", job.id)
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"job {job.id}: cancel requested; now cancelling" in cancelled.stdout
        stack.clear_faults()
        assert watcher.finish() == 1, watcher.text()
    finally:
        watcher.stop()
    assert watcher.final().split()[2] == "cancelled"
    # The step in flight finished; the next one was refused by the cancel, and all reverted.
    events = watcher.events()
    assert ("create_volume", "done") in events and ("export", "done") not in events, watcher.text()
    refused = next(line for line in watcher.lines if line.split()[1:3] == ["export", "failed"])
    assert f"job {job.id} was cancelled" in refused
    assert [s for s, e in events if e == "reverted"][-4:] == [
        "create_volume", "provide_share_server", "allocate_network", "begin"]
    # Asking again what is done already changes nothing; resuming what was
    # undone completely is refused, with the reason.
    again = shareflow_cli(stack, "jobs", "cancel", job.id)
    assert again.returncode == 0 and "now cancelled" in again.stdout, again.stderr
    refused = shareflow_cli(stack, "jobs", "resume", job.id)
    assert refused.returncode == 1 and refused.stdout == ""
    assert refused.stderr.startswith(f"shareflow: Job {job.id} was undone completely"), refused.stderr


def test_retry_of_a_reverted_create_makes_the_same_share_available(faults):
    stack = faults
    stack.set_faults({"add_export": "fail"})
    m = stack.manila(stack.token("tenant-retry-cli"))
    share = m.shares.create("NFS", 1)
    stack.wait_for_share(m, share.id, {"error"})
    old = stack.finished_job(share.id, "create_share")
    stack.clear_faults()

    retried = shareflow_cli(stack, "jobs", "retry", old.id, "--json")
    assert retried.returncode == 0, retried.stderr
    new = json.loads(retried.stdout)
    assert new["id"] != old.id and new["resource"] == f"share:{share.id}"
    watcher = Watcher(stack, new["id"])
    try:
        assert watcher.finish() == 0, watcher.text()
    finally:
        watcher.stop()
    assert stack.wait_for_share(m, share.id, {"available"}).status == "available"
    shown = json.loads(shareflow_cli(stack, "jobs", "show", new["id"], "--json").stdout)
    # The chain: the reverted create (the first job: the API placed the share), its retry.
    assert old.retry_of is None
    assert [a["id"] for a in shown["attempts"]] == [old.id, new["id"]]
    # The old job has been retried: not again.
    again = shareflow_cli(stack, "jobs", "retry", old.id)
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.startswith("shareflow: The share ") and "moved on" in again.stderr, again.stderr


# --- stalled jobs -----------------------------------------------------------------

#: Small, so that the test waits little: the claim in ZooKeeper decides, not this.
STALL_AFTER = 1.0


@pytest.fixture(scope="module")
def stall_stack(zookeeper_server, btrfs_pool, tmp_path_factory):
    with ServiceStack(tmp_path_factory.mktemp("stall"), zk_hosts=zookeeper_server.hosts,
                      btrfs_pool=btrfs_pool, conductor={"stall_after": STALL_AFTER}) as s:
        yield s


def test_jobs_no_conductor_claims_are_listed_stalled_and_watch_sees_them_finish(stall_stack):
    """Every conductor SIGKILLed (their supervisor frozen so that none comes
    back): ``jobs list`` and ``GET /v2/jobs`` show the posted job ``stalled``
    with the reason; conductors back, ``watch`` sees it finish (exit 0)."""
    stack = stall_stack
    workers = stack.worker_pids()
    os.kill(stack.pool.pid, signal.SIGSTOP)
    watcher = None
    try:
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        m = stack.manila(stack.token("tenant-stalled-cli"))
        share = m.shares.create("NFS", 1)

        def stalled():
            rows = json.loads(shareflow_cli(stack, "jobs", "list", "--state", "stalled", "--resource", share.id,
                                            "--json").stdout)
            return rows[0] if rows else None

        row = wait_until(stalled, 60, "the job to be listed stalled", interval=0.5)
        # Every conductor dead: the create's one job waits on its pool's board.
        assert row["operation"] == "create_share" and row["owner"] == ""
        assert row["stalled_reason"].startswith("no live conductor has claimed it since ")
        assert json.loads(shareflow_cli(stack, "jobs", "list", "--state", "posted", "--resource", share.id,
                                        "--json").stdout) == []
        table = shareflow_cli(stack, "jobs", "list", "--resource", share.id)
        assert table.stdout.splitlines()[1].split()[3] == "stalled"
        assert f"{row['id']} stalled: no live conductor has claimed it" in table.stdout

        request = urllib.request.Request(f"{stack.url}/jobs?state=stalled&with_count=true",
                                         headers={"X-Auth-Token": stack.admin_token})
        with urllib.request.urlopen(request, timeout=10) as r:
            listed = json.load(r)
        assert listed["count"] == 1 and listed["jobs"][0]["id"] == row["id"]
        assert listed["jobs"][0]["state"] == "stalled" and listed["jobs"][0]["stalled_reason"]

        shown = json.loads(shareflow_cli(stack, "jobs", "show", row["id"], "--json").stdout)
        assert shown["state"] == "stalled" and shown["stalled_reason"] == row["stalled_reason"]
        watcher = Watcher(stack, row["id"])
        watcher.until(lambda line: line.startswith("job ") and line.endswith("stalled"))
    finally:
        os.kill(stack.pool.pid, signal.SIGCONT)
    try:
        assert watcher.finish() == 0, watcher.text()
    finally:
        watcher.stop()
    assert [s for s, e in watcher.events() if e == "done"] == FLOW
    assert stack.wait_for_share(m, share.id, {"available"}).status == "available"
    wait_until(lambda: len(stack.worker_pids()) == len(workers), 30, "the pool to restart its workers")


def api_post(stack, path: str, body: dict, token: str) -> tuple[int, dict]:
    request = urllib.request.Request(f"{stack.url}{path}", method="POST", data=json.dumps(body).encode(),
                                     headers={"X-Auth-Token": token, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_two_resumes_at_once_over_the_api_one_202_one_409(faults):
    """A create whose export fails and whose volume delete fails too is
    revert_failed; two admins resume it at the same instant through the API
    (two gunicorn workers): one 202, the other 409 with Manila's body. The
    revert completes; a member's resume is 403."""
    stack = faults
    stack.set_faults({"add_export": "fail", "delete_volume": "fail"})
    member = stack.token("tenant-resume-api")
    m = stack.manila(member)
    share = m.shares.create("NFS", 1)
    stack.wait_for_share(m, share.id, {"error"})
    job = stack.finished_job(share.id)
    assert job.state == "revert_failed"
    assert share.id in stack.backend().share.list_volumes()
    stack.clear_faults()

    path = f"/jobs/{job.id}/action"
    status, body = api_post(stack, path, {"resume": None}, member)
    assert (status, body["forbidden"]["message"]) == (403, "Policy doesn't allow job:resume to be performed.")
    admins = [stack.token("admin-a", admin=True), stack.token("admin-b", admin=True)]
    barrier = threading.Barrier(2)
    answers: list[tuple[int, dict]] = []

    def resume(token: str) -> None:
        barrier.wait()
        answers.append(api_post(stack, path, {"resume": None}, token))

    threads = [threading.Thread(target=resume, args=(t,)) for t in admins]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(status for status, _ in answers) == [202, 409], answers
    won = next(body for status, body in answers if status == 202)["job"]
    lost = next(body for status, body in answers if status == 409)
    assert won["id"] == job.id and won["attempt"] == 2
    assert lost["conflictingRequest"]["code"] == 409 and job.id in lost["conflictingRequest"]["message"]

    wait_until(lambda: json.loads(shareflow_cli(stack, "jobs", "show", job.id, "--json").stdout)["state"]
               == "reverted", 30, "the resumed revert to complete", interval=0.5)
    assert share.id not in stack.backend().share.list_volumes()
    shown = json.loads(shareflow_cli(stack, "jobs", "show", job.id, "--json").stdout)
    assert [(a["action"], a["from_state"]) for a in shown["actions"]] == [("resume", "revert_failed")]
    assert shown["actions"][0]["user_id"] in ("user-admin-a", "user-admin-b")
