"""One TaskFlow jobboard per share service ``host@backend``, all over one
kazoo client, and posting jobs to them within a bound.

A post is ours, not the board's ``post``: TaskFlow's waits for ZooKeeper
without limit (kazoo's synchronous calls have no timeout, and kazoo queues a
request made while it reconnects and sends it whenever ZooKeeper is back). A
post here waits at most ``[zookeeper] request_timeout`` for the connection
and the answer; past that the caller gets CoordinationError (503) and undoes
its request. A create that was already on its way may still land on the board
later: the conductor then finds its job withdrawn and drops it without acting
(see :mod:`shareflow.engine.posting`).

A conductor worker may also hand a job to one of its own conductors: post
it already claimed for that conductor, job node and lock in one transaction
(:meth:`ConductorJobBoard.post_claimed`, :meth:`Boards.hand_off`), which a
placed share's create job takes when the worker that placed it serves the
chosen pool and its conductor there is idle.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import threading
import time

from kazoo.client import KazooClient
from kazoo import exceptions as k_exc
from kazoo.exceptions import KazooException
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol import paths as k_paths
from kazoo.protocol.states import KazooState
from taskflow import exceptions as tf_exc
from taskflow.utils import kazoo_utils
from oslo_serialization import jsonutils
from oslo_utils import uuidutils
from taskflow.jobs.backends.impl_zookeeper import ZookeeperJob, ZookeeperJobBoard
from taskflow.jobs import base as jobs_base
from taskflow.jobs.base import JobBoard, JobPriority, format_posting
from taskflow.utils import misc

from shareflow.config import DEFAULT_ZK_REQUEST_TIMEOUT
from shareflow.engine import once
from shareflow.engine.zk import board_path, list_boards, make_client, stop_client, translate_errors
from shareflow.exceptions import ConfigError, CoordinationError

LOG = logging.getLogger(__name__)

UNAVAILABLE = "the coordination service is unavailable, try again later"


#: How many times a post sends its transaction again after ZooKeeper refused
#: it for a reason the next try settles (a name met, the board's nodes not
#: made yet, a stale marker removed).
POST_TRIES = 4


def post_job(client: KazooClient, path: str, name: str, *, book, details: dict, timeout: float,
             key: str | None = None, clock=time.time_ns) -> str:
    """Put a job on the board at ``path`` as TaskFlow's ZooKeeper board does
    (a node holding its posting), waiting at most ``timeout`` seconds for
    ZooKeeper's answers. Returns the job's board uuid.

    ``key`` (the database job's id): posted at most once (see
    :mod:`shareflow.engine.once`) - the job node (named by the clock,
    :func:`handed_job_name`, since the marker must name it before ZooKeeper
    answers) and its marker in one transaction; when the job was posted
    already and is still on the board, nothing is posted and that job's uuid
    is the answer. Without it, a sequential node, as TaskFlow's."""
    if timeout <= 0:
        raise CoordinationError(f"posting {name}: no time left to reach ZooKeeper", user_message=UNAVAILABLE)
    if key is not None:
        return _post_once(client, path, name, book=book, details=details, key=key,
                          deadline=time.monotonic() + timeout, clock=clock)
    job_uuid = uuidutils.generate_uuid()
    posting = format_posting(job_uuid, name, book=book, details=details, priority=JobPriority.NORMAL)
    value = misc.binary_encode(jsonutils.dumps(posting))
    result = client.create_async(k_paths.join(path, ZookeeperJobBoard.JOB_PREFIX), value,
                                 sequence=True, makepath=True)
    try:
        result.get(timeout=timeout)
    except KazooTimeoutError as e:
        raise CoordinationError(
            f"posting {name}: ZooKeeper did not answer within {timeout:.1f}s", user_message=UNAVAILABLE,
        ) from e
    except KazooException as e:
        raise CoordinationError(f"posting {name}: ZooKeeper failed: {e!r}", user_message=UNAVAILABLE) from e
    return job_uuid


def _post_once(client: KazooClient, path: str, name: str, *, book, details: dict, key: str,
               deadline: float, clock) -> str:
    marker = once.marker_path(path, key)
    job_uuid = uuidutils.generate_uuid()
    posting = format_posting(job_uuid, name, book=book, details={**details, once.DETAILS_KEY: key},
                             priority=JobPriority.NORMAL)
    value = misc.binary_encode(jsonutils.dumps(posting))
    what = f"posting {name}"
    for _ in range(POST_TRIES):
        job_path = k_paths.join(path, handed_job_name(clock()))
        txn = client.transaction()
        txn.create(job_path, value)
        txn.create(marker, once.marker_value(job_uuid, job_path))
        # An answer that never comes (timeout, connection lost) may hide a
        # transaction that landed: the caller's retry then finds its marker.
        results = once.answer(txn.commit_async(), what, deadline)
        if not once.refused(results):
            return job_uuid
        if once.failed_on(results, 1, k_exc.NodeExistsError):
            posted = once.existing(client, marker, deadline)
            if posted is not None:
                LOG.info("%s: job %s is on %s already, as %s; not posted again", what, key, path, posted)
                return posted
        elif once.failed_on(results, 0, k_exc.NodeExistsError):
            continue  # another post's name (the same nanosecond): a new one
        elif any(isinstance(r, k_exc.NoNodeError) for r in results):
            # The board's first post: its node and its markers' are made once.
            for needed in (path, once.marker_root(path)):
                once.answer(client.ensure_path_async(needed), what, deadline)
        else:
            raise CoordinationError(f"{what}: ZooKeeper refused it: {results!r}", user_message=UNAVAILABLE)
    raise CoordinationError(f"{what}: ZooKeeper refused it {POST_TRIES} times", user_message=UNAVAILABLE)


def handed_job_name(now_ns: int) -> str:
    """The node name of a job posted with its marker, or posted and claimed
    in one transaction (its lock, ``<name>.lock``, created in the same
    transaction): the name must be known before ZooKeeper answers, so it
    cannot be sequential. It has 19 digits where ZooKeeper's sequential names
    have 10, so it never meets one (and sorts after them: TaskFlow orders
    jobs by the number); two posts to one board in the same nanosecond meet
    each other, and the second tries again (a hand-off: posts plainly)."""
    return f"{ZookeeperJobBoard.JOB_PREFIX}{now_ns:019d}"


class ConductorJobBoard(ZookeeperJobBoard):
    """TaskFlow's ZooKeeper board, for conductors: ``iterjobs`` offers only
    the jobs that are not claimed, known from the board's own children
    listing (a claim is the sibling node ``<job>.lock``), instead of asking
    ZooKeeper for the state of every job on the board (three round trips
    each) on every pass - and then trying, and failing, to claim the ones
    running elsewhere. A listing a moment old only costs a claim that fails
    (UnclaimableJob / NotFound, which the conductor expects) or a job picked
    up at the next poll."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._locked: frozenset[str] = frozenset()
        #: job path -> the version of its node when the board read it.
        self._versions: dict[str, int] = {}
        #: job path -> [job, owner, confirmed, marked] of the jobs posted
        #: here already claimed for this board's conductor
        #: (:meth:`post_claimed`), not yet taken up; ``confirmed`` once
        #: ZooKeeper said it made them; ``marked`` once the job's record was
        #: marked running for that conductor by the job that handed it
        #: (:meth:`mark_handed_running`: whether it may run), None until then.
        self._handed: dict[str, list] = {}
        #: job path -> whether it may run, for a handed job taken up (claimed)
        #: after its record was marked running (:meth:`marked_running`).
        self._marked: dict[str, bool] = {}
        #: The job nodes of the board's last listing.
        self._listed: frozenset[str] = frozenset()
        #: Names the nodes of handed jobs (:func:`handed_job_name`).
        self.name_clock = time.time_ns
        #: Called on kazoo's thread as soon as a listing has made a job
        #: known: the conductor's wake-up, without the hop through the
        #: board's notifier thread that its POSTED notification takes.
        self.on_new_job = None

    def connect(self, timeout=10.0):
        """TaskFlow's, and the node of the board's posted-once markers made
        (as TaskFlow makes its trash's): a hand-off, whose transaction cannot
        make it, then never finds it missing (:mod:`shareflow.engine.once`)."""
        super().connect(timeout=timeout)
        try:
            self._client.ensure_path(once.marker_root(self.path))
        except (KazooTimeoutError, KazooException) as e:
            raise tf_exc.JobFailure(f"Failed to make {once.marker_root(self.path)}: {e!r}") from e

    def _process_child(self, path, request, quiet=True):
        known = path in self._known_jobs
        super()._process_child(path, request, quiet=quiet)
        if not known and path in self._known_jobs and self.on_new_job is not None:
            self.on_new_job()
        # The read that made the job known is answered already: keep the
        # node's version for the claim, which then need not read it again.
        try:
            _data, stat = request.get(block=False)
        except Exception:  # noqa: BLE001 - the job is not known then; the claim reads it
            return
        if path in self._known_jobs:
            self._versions.setdefault(path, stat.version)

    def _remove_job(self, path):
        if path in self._handed:
            # Not from a listing: one taken before our transaction landed
            # would drop the job, then leave it locked for us and unknown.
            return False
        self._versions.pop(path, None)
        return super()._remove_job(path)

    @property
    def holds_handed(self) -> bool:
        """Whether a job handed to this board's conductor waits to be taken up."""
        return bool(self._handed)

    def holds(self, job_uuid: str) -> bool:
        """Whether ``job_uuid`` is a job this process posted claimed for its
        conductor (:meth:`post_claimed`) that the conductor has not taken up
        yet - not one found on the board already."""
        with self._job_cond:
            return any(entry[0].uuid == job_uuid for entry in self._handed.values())

    def post_claimed(self, name: str, *, book, details: dict, owner: str, timeout: float,
                     key: str | None = None, notify: bool = True):
        """Post a job to this board and claim it for ``owner`` (this board's
        conductor) in one ZooKeeper transaction: the job node and its
        ephemeral lock, as a claim makes it. The conductor then finds the job
        first in :meth:`iterjobs` and its :meth:`claim` is already done: no
        wait for the board's watch, no claim round trip, no race with the
        conductors of other workers. Should this process die before the job
        ends, its session's end removes the lock and any conductor of the
        board claims the job as it would any whose owner died.

        Returns the job's board uuid; None when the transaction was refused
        (nothing was created: the caller posts plainly). Raises
        CoordinationError when ZooKeeper did not answer within ``timeout``:
        the transaction may still land, and the job is then this board's
        conductor's to take up once a listing shows it (its record withdrawn
        meanwhile, it is dropped unrun as any withdrawn job).

        ``key`` (the database job's id): with its marker, in the same
        transaction (:mod:`shareflow.engine.once`); a job posted already and
        still on the board is not posted again, and its uuid is the answer.

        ``notify=False``: no POSTED notification once it landed (which wakes
        the board's conductor from the board's notifier thread): the caller
        wakes the conductor itself (:meth:`Boards.hand_off`)."""
        deadline = time.monotonic() + timeout
        job_uuid = uuidutils.generate_uuid()
        if key is not None:
            details = {**details, once.DETAILS_KEY: key}
        posting = format_posting(job_uuid, name, book=book, details=details, priority=JobPriority.NORMAL)
        path = k_paths.join(self.path, handed_job_name(self.name_clock()))
        job = ZookeeperJob(self, name, self._client, path, backend=self._persistence, uuid=job_uuid,
                           book=book, details=details, book_data=posting.get("book"),
                           created_on=datetime.datetime.now(datetime.timezone.utc),
                           priority=JobPriority.NORMAL)
        if timeout <= 0:
            raise CoordinationError(f"posting {name}: no time left to reach ZooKeeper", user_message=UNAVAILABLE)
        txn = self._client.transaction()
        txn.create(path, misc.binary_encode(jsonutils.dumps(posting)))
        txn.create(job.lock_path, misc.binary_encode(jsonutils.dumps({"owner": owner})), ephemeral=True)
        marker = once.marker_path(self.path, key) if key is not None else None
        if marker is not None:
            txn.create(marker, once.marker_value(job_uuid, path))
        # Known before the answer: a transaction that lands after a timeout
        # is still taken up here (its lock is ours, no other conductor would).
        self._adopt(job, owner)
        try:
            results = txn.commit_async().get(timeout=timeout)
        except KazooTimeoutError as e:
            raise CoordinationError(
                f"posting {name}: ZooKeeper did not answer within {timeout:.1f}s", user_message=UNAVAILABLE,
            ) from e
        except KazooException as e:  # the connection lost: its outcome unknown, as above
            raise CoordinationError(f"posting {name}: ZooKeeper failed: {e!r}", user_message=UNAVAILABLE) from e
        if once.refused(results):
            # Rolled back (a name met, the board's node gone, the job posted
            # already): nothing of it exists.
            self._forget(path)
            if marker is not None and once.failed_on(results, 2, k_exc.NodeExistsError):
                posted = once.existing(self._client, marker, deadline)
                if posted is not None:
                    LOG.info("posting %s: job %s is on %s already, as %s; not posted again", name, key,
                             self.path, posted)
                    return posted
            LOG.info("posting %s claimed on %s was refused (%s); posting it plainly", name, self.path, results)
            return None
        entry = self._handed.get(path)
        if entry is not None:
            entry[2] = True
        if notify:
            self._try_emit(jobs_base.POSTED, details={"job": job})
        return job_uuid

    def _adopt(self, job, owner: str) -> None:
        with self._job_cond:
            self._handed[job.path] = [job, owner, False, None]
            self._known_jobs[job.path] = job
            self._job_cond.notify_all()

    def mark_handed_running(self, job_uuid: str, runnable: bool) -> bool:
        """The record of handed job ``job_uuid`` (:meth:`post_claimed`) was
        marked running for its conductor (``jobs_db.set_running``, committed;
        ``runnable``: what that answered) by the job that handed it, in that
        job's last write: the conductor, taking it up, need not mark it
        again. False when the conductor has taken it up already (it marks
        the record itself, as from the same board job it may again)."""
        with self._job_cond:
            for entry in self._handed.values():
                if entry[0].uuid == job_uuid and entry[2]:
                    entry[3] = runnable
                    return True
        return False

    def marked_running(self, job) -> bool | None:
        """For ``job``, claimed: whether it may run, when its record was
        marked running for its conductor before it was taken up
        (:meth:`mark_handed_running`); None otherwise (the conductor marks it)."""
        with self._job_cond:
            return self._marked.pop(job.path, None)

    def _forget(self, path: str) -> None:
        with self._job_cond:
            self._handed.pop(path, None)
            self._known_jobs.pop(path, None)

    @jobs_base.check_who
    def claim(self, job, who):
        """TaskFlow's claim (one transaction: the job node still at the
        version read, and our ephemeral lock created beside it) without the
        read of the job node TaskFlow makes first for that version: the
        board read it when the job appeared, and a job node is never
        rewritten (posting creates it, consume or trash deletes it) - one
        ZooKeeper round trip less per job. Should the node have changed all
        the same, the check fails and TaskFlow's claim, reading it afresh,
        decides.

        A job posted here claimed for ``who`` (:meth:`post_claimed`) is
        ours already: nothing is asked."""
        with self._job_cond:
            handed = self._handed.pop(job.path, None)
            self._marked.pop(job.path, None)
        if handed is not None and handed[0] is job and handed[1] == who:
            # One whose transaction's answer never came is ours only if its
            # lock says so (the session may have ended meanwhile).
            if handed[2] or self.find_owner(job) == who:
                if handed[3] is not None:
                    with self._job_cond:
                        self._marked[job.path] = handed[3]
                return None
        version = self._versions.get(job.path)
        if version is None:
            return super().claim(job, who)
        value = misc.binary_encode(jsonutils.dumps({"owner": who}))
        with self._wrap(job.uuid, job.path, fail_msg_tpl="Claiming failure: %s"):
            txn = self._client.transaction()
            txn.check(job.path, version=version)
            txn.create(job.lock_path, value=value, ephemeral=True)
            try:
                kazoo_utils.checked_commit(txn)
                return None
            except kazoo_utils.KazooTransactionException as e:
                failures = e.failures
        # (operation, error) pairs: the one that failed, the others rolled back.
        errors = [error for _op, error in failures]
        if any(isinstance(error, k_exc.NoNodeError) for error in errors):
            raise tf_exc.NotFound(f"Job {job.uuid} not found to be claimed")
        if any(isinstance(error, k_exc.BadVersionError) for error in errors):
            self._versions.pop(job.path, None)
            return super().claim(job, who)
        if any(isinstance(error, k_exc.NodeExistsError) for error in errors):
            raise tf_exc.UnclaimableJob(f"Job {job.uuid} already claimed")
        raise tf_exc.UnclaimableJob(f"Job {job.uuid} claim failed due to transaction not succeeding")

    def _read_owned(self, job, who: str):
        """The lock's and the job's versions and the job's posting, read at
        once (TaskFlow reads one, then the other), when ``who`` holds it."""
        reads = [self._client.get_async(job.lock_path), self._client.get_async(job.path)]
        try:
            lock_raw, lock_stat = reads[0].get()
            raw, data_stat = reads[1].get()
        except k_exc.NoNodeError:
            raise tf_exc.NotFound(f"Can not finish a job {job.uuid} which we can not determine the owner of")
        if misc.decode_json(lock_raw).get("owner") != who:
            raise tf_exc.JobFailure(f"Can not finish a job {job.uuid} which is not owned by {who}")
        return lock_stat, misc.decode_json(raw), data_stat

    def _commit_with_marker(self, build, marker: str) -> None:
        """Commit the transaction ``build`` makes, removing ``marker`` in it.
        The marker is this job's: a job whose posting names one was posted
        with it, in one transaction, and a marker is replaced only once its
        job is gone (:mod:`shareflow.engine.once`) - so it is not read first.
        Should it be missing all the same (removed by hand), the transaction
        goes again without it."""
        txn = build()
        txn.delete(marker)
        try:
            kazoo_utils.checked_commit(txn)
            return
        except kazoo_utils.KazooTransactionException as e:
            if not any(getattr(op, "path", None) == marker and isinstance(error, k_exc.NoNodeError)
                       for op, error in e.failures):
                raise
        LOG.warning("the posted-once marker %s was missing; finishing its job without it", marker)
        kazoo_utils.checked_commit(build())

    @jobs_base.check_who
    def consume(self, job, who):
        """TaskFlow's consume (lock and job node deleted in one transaction),
        which also removes the job's posted-once marker
        (:mod:`shareflow.engine.once`) in that transaction."""
        key = once.key_of(job.details)
        if key is None:
            return super().consume(job, who)
        with self._wrap(job.uuid, job.path, fail_msg_tpl="Consumption failure: %s"):
            lock_stat, _data, data_stat = self._read_owned(job, who)

            def build():
                txn = self._client.transaction()
                txn.delete(job.lock_path, version=lock_stat.version)
                txn.delete(job.path, version=data_stat.version)
                return txn

            self._commit_with_marker(build, once.marker_path(self.path, key))
            self._remove_job(job.path)

    @jobs_base.check_who
    def trash(self, job, who):
        """TaskFlow's trash (the job moved to the board's trash, its lock
        deleted, in one transaction), which also removes the job's
        posted-once marker in that transaction: resuming a trashed job posts
        it again (:mod:`shareflow.engine.once`)."""
        key = once.key_of(job.details)
        if key is None:
            return super().trash(job, who)
        with self._wrap(job.uuid, job.path, fail_msg_tpl="Trash failure: %s"):
            lock_stat, data, data_stat = self._read_owned(job, who)

            def build():
                txn = self._client.transaction()
                txn.create(job.path.replace(self.path, self.trash_path),
                           value=misc.binary_encode(jsonutils.dumps(data)))
                txn.delete(job.lock_path, version=lock_stat.version)
                txn.delete(job.path, version=data_stat.version)
                return txn

            self._commit_with_marker(build, once.marker_path(self.path, key))

    def _on_job_posting(self, children, delayed=True):
        post = len(self.LOCK_POSTFIX)
        self._listed = frozenset(k_paths.join(self.path, c) for c in children if not c.endswith(self.LOCK_POSTFIX))
        self._locked = frozenset(
            k_paths.join(self.path, c[:-post]) for c in children if c.endswith(self.LOCK_POSTFIX)
        )
        super()._on_job_posting(children, delayed=delayed)

    def iterjobs(self, only_unclaimed=False, ensure_fresh=False):
        # The jobs handed to this conductor first: they are claimed (so
        # locked in the listing) for it alone.
        # (One whose transaction's answer never came: once a listing shows it.)
        listed = self._listed
        handed = [job for job, _owner, confirmed, _marked in list(self._handed.values())
                  if confirmed or job.path in listed]
        locked = self._locked
        return iter(handed + [j for j in self._fetch_jobs(ensure_fresh=ensure_fresh)
                              if j.path not in locked and j.path not in self._handed])


def every_job(board: JobBoard) -> list:
    """Every job on ``board`` now, claimed or not, after one fresh listing: a
    :class:`ConductorJobBoard`'s own ``iterjobs`` offers only unclaimed ones,
    so a look at the claims over a conductor's boards asks TaskFlow's."""
    return list(ZookeeperJobBoard.iterjobs(board, ensure_fresh=True))


class Boards:
    def __init__(self, client: KazooClient, chroot: str, keys: list[str], persistence, *,
                 conductor: bool = False, request_timeout: float = DEFAULT_ZK_REQUEST_TIMEOUT):
        """The boards of ``keys`` (``host@backend``). ``conductor``: boards for
        claiming jobs (see :class:`ConductorJobBoard`), exactly those of
        ``keys``; otherwise TaskFlow's own, which report every job with its
        state, and :meth:`get` also opens the board of any other key that
        ZooKeeper has (a look at the claims of jobs on every host)."""
        self._board_class = ConductorJobBoard if conductor else ZookeeperJobBoard
        self._conductor = conductor
        self._client = client
        self._chroot = chroot
        self._persistence = persistence
        self._request_timeout = request_timeout
        self._connected = False
        self._boards: dict[str, JobBoard] = {}
        #: key -> this process's conductor of that board, for hand-offs.
        self._runners: dict = {}
        for key in keys:
            self._boards[key] = self._make(key)

    def _make(self, key: str) -> JobBoard:
        try:
            conf = {"board": "zookeeper", "path": board_path(self._chroot, key)}
        except ValueError as e:
            raise ConfigError(f"no jobboard for {key!r}: {e}") from None
        return self._board_class(f"shareflow-{key}", conf, client=self._client, persistence=self._persistence)

    def connect(self) -> None:
        for name, board in self._boards.items():
            with translate_errors(f"connecting jobboard {name}"):
                board.connect()
        self._connected = True

    def get(self, key: str) -> JobBoard:
        board = self._boards.get(key)
        if board is None:
            if self._conductor:
                raise ConfigError(f"no jobboard for {key!r} in this conductor")
            board = self._make(key)
            with translate_errors(f"looking for jobboard {key}"):
                if self._client.exists(board.path) is None:
                    # Never posted to: no API ever scheduled anything there.
                    raise ConfigError(f"no jobboard for {key!r}")
            if self._connected:
                with translate_errors(f"connecting jobboard {key}"):
                    board.connect()
            self._boards[key] = board
        return board

    def items(self):
        return self._boards.items()

    def discover(self) -> list[str]:
        """The keys of every board ZooKeeper has (see :func:`list_boards`)."""
        return list_boards(self._client, self._chroot)

    def post(self, key: str, name: str, *, book, details: dict, once_key: str | None = None) -> str:
        """Post within ``request_timeout`` to the board of ``key`` (any
        ``host@backend``, served here or not); returns the job's board uuid.
        ``once_key``: see :func:`post_job`."""
        board = self._boards.get(key)
        try:
            path = board.path if board is not None else board_path(self._chroot, key)
        except ValueError as e:
            raise ConfigError(f"no jobboard for {key!r}: {e}") from None
        return post_job(self._client, path, name, book=book, details=details, timeout=self._request_timeout,
                        key=once_key)

    def posted_as(self, key: str, job_id: str) -> str | None:
        """The board job on the board of ``key`` that database job ``job_id``
        was posted as, if it is there (its posted-once marker, read within
        ``request_timeout``). Raises CoordinationError when ZooKeeper cannot
        tell."""
        try:
            path = board_path(self._chroot, key)
        except ValueError as e:
            raise ConfigError(f"no jobboard for {key!r}: {e}") from None
        return once.on_board(self._client, once.marker_path(path, job_id),
                             time.monotonic() + self._request_timeout)

    def serve(self, key: str, conductor) -> None:
        """``conductor`` (of this process) runs the jobs of board ``key``:
        :meth:`hand_off` may post a job there already claimed for it."""
        self._runners[key] = conductor

    def hand_off(self, key: str, name: str, *, book, details: dict, once_key: str | None = None,
                 before_wake=None) -> str | None:
        """Post to the board of ``key`` a job claimed, in the same
        ZooKeeper transaction, for this process's conductor of that board
        (:meth:`ConductorJobBoard.post_claimed`) - only when that conductor
        is idle, so a job never waits behind another here while a conductor
        elsewhere could run it. The job's board uuid; None when not handed
        (no such conductor, busy, or the transaction refused): the caller
        posts it plainly. Raises CoordinationError as :meth:`post` does.

        The conductor is woken here, by its ``wake()`` (not by the board's
        POSTED notification, from the board's notifier thread), after
        ``before_wake(job_uuid, handed)`` if given; ``handed`` says whether
        the job is the one posted claimed here, or one of the same
        ``once_key`` found on the board already (posted plainly before).
        A job handed with its ``once_key`` (the database job's id) is told
        to the conductor by ``handed(job_uuid, once_key)`` instead of
        ``wake()``: the job running in this thread may mark its record
        running for the conductor in its own last write."""
        conductor = self._runners.get(key)
        if conductor is None or not conductor.idle:
            return None
        board = self._boards[key]
        job_uuid = board.post_claimed(name, book=book, details=details, owner=conductor.name,
                                      timeout=self._request_timeout, key=once_key, notify=False)
        if job_uuid is not None:
            held = False
            try:
                held = board.holds(job_uuid)
                if before_wake is not None:
                    before_wake(job_uuid, held)
            finally:
                if held and once_key is not None:
                    # Its record marked running for the conductor by the
                    # handing job's last write, when there is one (then the
                    # conductor is woken after it): see ShareflowConductor.handed.
                    conductor.handed(job_uuid, once_key)
                else:
                    conductor.wake()
        return job_uuid

    def close(self) -> None:
        for board in self._boards.values():
            with contextlib.suppress(Exception):
                board.close()


class PostingBoards:
    """The boards of a process that only posts jobs (an API worker, the CLI).

    Its kazoo client starts on the first post (after gunicorn has forked) and
    connects in kazoo's own thread, reconnecting for as long as the process
    lives; no request thread ever waits for that. A post waits for the
    connection and ZooKeeper's answer together at most ``request_timeout``
    seconds, and not at all once ZooKeeper has been unreachable that long
    already: during an outage a write is answered 503 at once and the API's
    threads stay free for reads, which never touch ZooKeeper.
    """

    def __init__(self, zk_config, *, clock=time.monotonic):
        """Boards are not configured: a job goes to the board its record names
        (``host@backend``, the share service its resource is on)."""
        self._zk_config = zk_config
        self._timeout = zk_config.request_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._client: KazooClient | None = None
        self._connected = threading.Event()
        #: When the connection was last lost (or first asked for); None while connected.
        self._down_since: float | None = None

    def _on_state(self, state) -> None:
        # Called on kazoo's connection thread: record, never block.
        if state == KazooState.CONNECTED:
            if self._down_since is not None:
                LOG.info("connected to ZooKeeper after %.1f s", self._clock() - self._down_since)
            self._down_since = None
            self._connected.set()
        else:
            if self._down_since is None:
                self._down_since = self._clock()
            self._connected.clear()
            LOG.warning("ZooKeeper connection %s: job posts answer 503 until it is back", state)

    def _start(self) -> KazooClient:
        with self._lock:
            if self._client is None:
                client = make_client(self._zk_config)
                client.add_listener(self._on_state)
                self._down_since = self._clock()
                client.start_async()
                self._client = client
            return self._client

    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def started(self) -> bool:
        """Whether this process has ever needed ZooKeeper (made its client)."""
        return self._client is not None

    def post(self, key: str, name: str, *, book, details: dict, once_key: str | None = None) -> str:
        try:
            path = board_path(self._zk_config.chroot, key)
        except ValueError as e:
            raise ConfigError(f"no jobboard for {key!r}: {e}") from None
        deadline = self._clock() + self._timeout
        client = self._start()
        down_since = self._down_since
        wait = deadline - self._clock()
        if down_since is not None and self._clock() - down_since >= self._timeout:
            wait = 0.0
        if not self._connected.wait(max(0.0, wait)):
            raise CoordinationError(
                f"posting {name}: not connected to ZooKeeper at {self._zk_config.hosts}",
                user_message=UNAVAILABLE,
            )
        return post_job(client, path, name, book=book, details=details, timeout=deadline - self._clock(),
                        key=once_key)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.remove_listener(self._on_state)
                stop_client(self._client)
                self._client = None
                self._connected.clear()
