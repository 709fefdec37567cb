"""Rescheduling a create that failed on its pool (Manila's scheduler retry).

A ``create_share`` job whose ``create_volume`` step fails with a driver error
(``StorageError``, ``BackendError``, ``InjectedFault``: the pool could not make
the volume, not a bad request or an operator's cancel) reverts on its pool as
any failed flow does; then, instead of failing the share, its ``begin`` step's
revert (the last thing the flow undoes, so nothing of this attempt is left on
the pool) asks :func:`reschedule` for the next attempt:

* the conductor runs the filter scheduler (its own ``[scheduler]``) over the
  reported pools, ignoring every pool this share was already tried on (the
  job's ``tried_pools`` store key, carried from attempt to attempt, and the
  pool of the attempt that just failed: the RetryFilter);
* in one transaction it moves the share to the new pool (``host`` and
  ``backend``, conditionally: only while the share is ``creating`` on the
  failed attempt's pool, so a share reset or deleted meanwhile is left alone)
  and records the next attempt's job;
* after the commit the job is posted to the new pool's ``host@backend`` board.

(The same machinery as the first placement's, the API's or a scheduling
job's, ``shareflow.engine.placement``; only the guard differs: there the
share is not placed yet.)

Job identity across attempts: each attempt is a ``create_share`` job row of
its own (its own board posting, logbook and flow detail, so a conductor of the
new pool's host runs a fresh flow with nothing of the old one's atom states),
linked to the attempt it follows by ``retry_of`` (as an operator's ``jobs
retry`` is): ``GET /v2/jobs/{id}`` and ``shareflow jobs show`` of any attempt
list them all, oldest first, each with the backend it ran on. The share's
``host`` never goes through "unplaced": it moves from the failed pool to the
next one in the same transaction that records the next attempt.

Resumption: a conductor that dies anywhere in here re-runs the ``begin``
revert; it first looks for the next attempt by ``retry_of`` and, finding one
recorded but never posted, posts it (and does nothing when it was posted),
so a create is neither lost nor placed twice. A next attempt recorded but
never posted because ZooKeeper was away is failed by the housekeeping of
unposted jobs like any other (the share ``error`` with a message).

A share stays ``error`` (the flow's usual outcome) when the failure is not a
pool's, when it comes from a snapshot (it stays on its snapshot's pool), when
``[scheduler] max_attempts`` pools have been tried, or when no other pool
passes the filters; its user message then names the pools tried.
"""

from __future__ import annotations

import json
import logging

from taskflow.types.failure import Failure

from shareflow import exceptions as exc
from shareflow.db import metadata as metadata_db
from shareflow.db import jobs as jobs_db
from shareflow.db import shares as shares_db
from shareflow.db.models import Job, ShareType
from shareflow.domain import states
from shareflow.engine import checkpoints, placement
from shareflow.scheduler.scheduler import Scheduler, request_spec
from shareflow.services import scheduler_hints

LOG = logging.getLogger(__name__)

OPERATION = "create_share"
#: The step whose driver failure sends a create to another pool.
STEP = "create_volume"
#: The failures that are the pool's: anything else (a bad request, a cancel,
#: the share changing status) is not made better by another pool.
POOL_FAILURES = (exc.StorageError, exc.InjectedFault, exc.BackendError)
NOT_POOL_FAILURES = (exc.JobCancelled, exc.ResourceStateChanged, exc.NoValidHost, exc.ExportError,
                     exc.NetworkError)
#: The store key listing the pools earlier attempts ran on.
TRIED_POOLS = placement.TRIED_POOLS


def reschedulable(operation: str, step: str | None, failure: Failure | None) -> bool:
    """Whether this failure of a job's step sends the create to another pool."""
    if operation != OPERATION or step != STEP or failure is None:
        return False
    if failure.check(*NOT_POOL_FAILURES):
        return False
    return failure.check(*POOL_FAILURES) is not None


def tried_pools(session, job: Job) -> list[str]:
    """The pools the share of ``job`` was tried on so far, this attempt's last."""
    share = shares_db.get_any(session, job.resource_id)
    store = json.loads(job.store) if job.store else {}
    tried = [p for p in store.get(TRIED_POOLS, []) if isinstance(p, str)]
    if share is not None and share.host and share.host not in tried:
        tried.append(share.host)
    return tried


def reschedule(runtime, job_id: str) -> str | None:
    """The next attempt of the failed create ``job_id``, recorded and posted
    (or found, when this runs again): its job id. None when the share is not
    to be tried elsewhere (see the module's docstring); then nothing changed."""
    with runtime.db.write() as s:
        job = jobs_db.get(s, job_id)
        if placement.following(s, job.id) is None and _next_attempt(runtime, s, job) is None:
            return None
        backend = job.backend
    return placement.post_following(runtime, job_id, _checkpoints(runtime, backend), checkpoints.RESCHEDULED)


def _next_attempt(runtime, session, job: Job) -> Job | None:
    share = shares_db.get_any(session, job.resource_id)
    if share is None or share.deleted_at is not None or share.status != states.CREATING \
            or share.snapshot_id is not None or not share.host or share.backend != job.backend:
        # Not this attempt's any more (reset, deleted, or moved by another
        # attempt), or from a snapshot: it stays where it is.
        return None
    tried = tried_pools(session, job)
    if len(tried) >= runtime.config.scheduler.max_attempts:
        LOG.info("share %s: not rescheduled, %d pool(s) tried (max_attempts %d)", share.id, len(tried),
                 runtime.config.scheduler.max_attempts)
        return None
    stype = session.get(ShareType, share.share_type_id) if share.share_type_id else None
    # The create's affinity hints hold for every attempt (Manila keeps its
    # filter properties across a reschedule).
    same_host, different_host = scheduler_hints.resolve(session, metadata_db.get_all(session, share.id))
    spec = request_spec(size_gb=share.size, share_proto=share.share_proto, share_type=stype,
                        ignore_hosts=tried, same_host=same_host, different_host=different_host)
    try:
        chosen = Scheduler.from_config(runtime.config, clock=runtime.clock).place(session, spec)
    except exc.NoValidHost as e:
        LOG.info("share %s: no other pool than %s: %s", share.id, ", ".join(tried), e)
        return None
    following = placement.move_and_record(session, share, chosen, poster=runtime.poster, now=runtime.clock(),
                                          from_host=share.host, requested_by=job, retry_of=job.id, tried=tried)
    if following is not None:
        LOG.warning("share %s: create failed on %s, rescheduled to %s (attempt %d of %d)", share.id, tried[-1],
                    chosen.host, len(tried) + 1, runtime.config.scheduler.max_attempts)
    return following


def _checkpoints(runtime, backend: str) -> checkpoints.Checkpoints:
    """The test checkpoints of the failed attempt's backend (none unless its
    configuration names a fault plan)."""
    bare = backend.rpartition("@")[2]
    plan = next((b.fault_plan for b in runtime.config.backends if b.name == bare), None)
    return checkpoints.Checkpoints(plan, hang_limit=runtime.config.conductor.step_timeout)


def tried_text(pools: list[str]) -> str:
    """What a user message says of the pools a create was tried on."""
    if len(pools) <= 1:
        return ""
    return f" (tried on {len(pools)} pools: {', '.join(pools)})"
