"""What a job's engine writes between its steps, and when.

TaskFlow's storage writes every change of an atom in a transaction of its
own, at once: per step RUNNING, progress 0.0, SUCCESS with the result,
progress 1.0 and (at the end) the step's duration - about 40 write
transactions per create_share job, ~1 ms each on PostgreSQL, on the critical
path. Resuming a job needs far less, and :class:`DeferringStorage` writes
only that:

* **No engine-made progress.** The engine's automatic progress marks (0.0
  when a step starts, 1.0 when it ends) are not persisted, nor kept: nothing
  reads them back (no shareflow task reports progress, and resumption
  decides on states, intentions and results). Progress a task reports itself
  (with details) is still written.
* **A step's SUCCESS is written with the next write.** A step that succeeded
  is recorded in the same transaction as whatever the engine writes next:
  the next step's RUNNING (always written before that step starts), a
  failure, a revert, or the flow's own state. So no step's side effects ever
  begin before every step before it is recorded SUCCESS, and a conductor
  that dies in between leaves the finished step RUNNING: the next conductor
  runs it again, exactly as when a conductor dies just before TaskFlow's own
  write - steps are idempotent (DESIGN.md). Every step recorded SUCCESS
  still did complete, so a resumed job skips exactly the steps recorded
  done.

* **A step's start carries a read.** :attr:`DeferringStorage.on_step_start`,
  when set, runs inside the transaction that records a step RUNNING (the
  conductor reads there whether an operator cancelled the job, instead of
  in a transaction of its own right after).

Everything else (states other than SUCCESS, flow states, intentions, failures,
revert results) is written as TaskFlow writes it, together with what waits.
A write that fails leaves what waited waiting (it is written with the next
one, or the step runs again elsewhere).

The engine's storage is the only writer of its flow's atoms while it holds
the job's claim (a conductor that lost it is suspended at the next atom
boundary, whose write is what TaskFlow would have written then too).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import tenacity
from taskflow import exceptions as tf_exc
from taskflow import states as tf_states
from taskflow import storage as tf_storage
from taskflow.engines.action_engine.engine import SerialActionEngine
from taskflow.utils import misc


class DeferringStorage(tf_storage.Storage):
    def __init__(self, flow_detail, backend=None, scope_fetcher=None):
        super().__init__(flow_detail, backend=backend, scope_fetcher=scope_fetcher)
        #: atom uuid -> atom detail (in memory, current) whose write waits.
        self._waiting: dict = {}
        #: ``(connection, atom_name)``, called in the transaction that
        #: records a step RUNNING (not for a step resumed already RUNNING,
        #: which is not written again).
        self.on_step_start: Callable[[Any, str], None] | None = None

    def set_task_progress(self, task_name, progress, details=None):
        if details is None:
            # The engine's own 0.0 / 1.0 around a step: see the module docstring.
            return
        super().set_task_progress(task_name, progress, details=details)

    @staticmethod
    def _can_wait(clone) -> bool:
        return clone.state == tf_states.SUCCESS and clone.intention == tf_states.EXECUTE

    def _save_atom_detail(self, conn, original_atom_detail, atom_detail):
        # Called by Storage with its write lock held.
        if self._can_wait(atom_detail):
            original_atom_detail.update(atom_detail)
            self._waiting[original_atom_detail.uuid] = original_atom_detail
            return original_atom_detail
        also = None
        if (self.on_step_start is not None and atom_detail.state == tf_states.RUNNING
                and atom_detail.intention == tf_states.EXECUTE):
            also = functools.partial(self.on_step_start, atom_name=atom_detail.name)
        if not self._waiting and also is None:
            return super()._save_atom_detail(conn, original_atom_detail, atom_detail)
        originals = [ad for ad in self._waiting.values() if ad is not original_atom_detail]
        written = self._write_many(conn, [*originals, atom_detail], also=also)
        for original, merged in zip([*originals, original_atom_detail], written):
            original.update(merged)
        self._waiting.clear()
        return original_atom_detail

    @tenacity.retry(
        retry=tenacity.retry_if_exception_type(exception_types=tf_exc.StorageFailure),
        stop=tenacity.stop_after_attempt(tf_storage.RETRY_ATTEMPTS),
        wait=tenacity.wait_fixed(tf_storage.RETRY_WAIT_TIMEOUT),
        reraise=True,
    )
    def _write_many(self, conn, atom_details: list, also=None) -> list:
        if hasattr(conn, "update_atom_details_many"):
            return conn.update_atom_details_many(atom_details, also=also)
        # Another backend: one by one, and no read alongside.
        return [conn.update_atom_details(ad) for ad in atom_details]

    def _save_flow_detail(self, conn, original_flow_detail, flow_detail):
        # Called by Storage with its write lock held.
        if not hasattr(conn, "update_flow_detail_and"):
            # TaskFlow's save writes every atom detail the flow detail holds
            # (the same objects as this storage's, waiting ones included).
            result = super()._save_flow_detail(conn, original_flow_detail, flow_detail)
            self._waiting.clear()
            return result
        # Every change of an atom passes through _save_atom_detail, written
        # or waiting: the atoms to write with the flow are the waiting ones
        # and those new to it (ensure_atoms, a new store).
        known = {ad.uuid for ad in original_flow_detail}
        atoms = [ad for ad in flow_detail if ad.uuid not in known or ad.uuid in self._waiting]
        _e_fd, merged = self._write_flow(conn, flow_detail, atoms)
        for ad, written in zip(atoms, merged):
            ad.update(written)
        original_flow_detail.update(flow_detail)
        self._waiting.clear()
        return original_flow_detail

    @tenacity.retry(
        retry=tenacity.retry_if_exception_type(exception_types=tf_exc.StorageFailure),
        stop=tenacity.stop_after_attempt(tf_storage.RETRY_ATTEMPTS),
        wait=tenacity.wait_fixed(tf_storage.RETRY_WAIT_TIMEOUT),
        reraise=True,
    )
    def _write_flow(self, conn, flow_detail, atom_details: list):
        return conn.update_flow_detail_and(flow_detail, atom_details)

    def flush(self) -> None:
        """Write what waits now, in one transaction."""
        with self._lock.write_lock():
            waiting = list(self._waiting.values())
            if not waiting:
                return
            written = self._with_connection(self._write_many, waiting)
            for original, merged in zip(waiting, written):
                original.update(merged)
            self._waiting.clear()


class ShareflowEngine(SerialActionEngine):
    """TaskFlow's serial engine over a :class:`DeferringStorage`."""

    @misc.cachedproperty
    def storage(self):
        def _scope_fetcher(atom_name):
            if self._compiled:
                return self._runtime.fetch_scopes_for(atom_name)
            return None

        return DeferringStorage(self._flow_detail, backend=self._backend, scope_fetcher=_scope_fetcher)
