"""A conductor killed with SIGKILL while a job is inside a step: another
conductor of the pool resumes the job from its persisted state and finishes
it, with nothing done twice."""

from __future__ import annotations

import os
import signal

import sqlalchemy as sa

from shareflow.db.models import Job, Share
from tests.fixtures.stack import owner_pid, wait_until


def test_killed_conductor_job_is_finished_by_another(faults):
    stack = faults
    stack.set_faults({"create_volume": "hang"})
    m = stack.manila(stack.token("tenant-kill"))
    share = m.shares.create("NFS", 1, name="survivor")
    job = stack.job_inside(share.id, "create_share", "create_volume")
    first_owner, victim = job.owner, owner_pid(job)
    assert victim in stack.worker_pids()

    os.kill(victim, signal.SIGKILL)
    stack.clear_faults()

    share = stack.wait_for_share(m, share.id, {"available", "error"}, timeout=60)
    assert share.status == "available", stack.log("pool")[-4000:]
    job = stack.finished_job(share.id)
    services = stack.services()
    try:
        view = services.jobs.show(job.id)
    finally:
        services.close()

    assert job.state == "succeeded"
    assert job.owner != first_owner and owner_pid(job) != victim
    assert all(s.state == "SUCCESS" for s in view.steps)
    # Nothing twice: one share, one volume, one export, one job.
    with stack.db.read() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Share).where(Share.name == "survivor")) == 1
        assert s.scalar(sa.select(sa.func.count()).select_from(Job).where(
            Job.resource_id == share.id, Job.operation == "create_share")) == 1
    backend = stack.backend()
    assert backend.share.list_volumes().count(share.id) == 1
    exports = backend.export.list_exports(backend.server.server_for(share.id))
    assert share.id in exports
    conf = stack.exports_text()
    assert conf.count(f"/shares/{share.id}\"") == 1
    # The pool replaced the dead worker.
    wait_until(lambda: len(stack.worker_pids()) == 2 and victim not in stack.worker_pids(), 30,
               "the pool to restart the killed worker")
    m.shares.delete(share)
    wait_until(lambda: stack.share_row(share.id).deleted_at is not None, 30, "the share to be deleted")
