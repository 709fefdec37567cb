"""``shareflow jobs list|show|watch|resume|retry|cancel``: what the
conductors are doing and did, and an operator's way to steer it.

Runs on the service's host, directly on its database and ZooKeeper, through
the same ``JobService`` the ``/v2/jobs`` API uses (as the operator: every
project's jobs). Tables and live views are drawn by ``rich``; ``--json``
prints plain JSON for scripts. Errors go to stderr with exit status 1.

    shareflow jobs list --state reverted --operation create_share
    shareflow jobs list --watch              # refreshed until Ctrl-C
    shareflow jobs show JOB
    shareflow jobs watch JOB                 # exit 0 when it succeeds, 1 otherwise
    shareflow jobs resume|retry|cancel JOB
    shareflow jobs boards                    # every host's boards, from ZooKeeper
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from shareflow import config as config_mod
from shareflow.cli import output
from shareflow.cli.output import console
from shareflow.domain import states
from shareflow.services.context import Caller
from shareflow.services.jobs import JobView
from shareflow.wiring import Services, new_uuid, utcnow

#: States in which a job may still change by itself (a conductor holds it or
#: will): ``watch`` follows a job until it leaves them. A stalled job is
#: waiting for a conductor, or for an operator's resume: still not over.
ACTIVE_STATES = states.JOB_ACTIVE | {states.JOB_STALLED}
STATE_STYLES = {
    states.JOB_POSTED: "cyan", states.JOB_RUNNING: "yellow", states.JOB_SUCCEEDED: "green",
    states.JOB_REVERTED: "red", states.JOB_REVERT_FAILED: "bold red", states.JOB_TRASHED: "magenta",
    states.JOB_STALLED: "bold magenta", states.JOB_CANCELLING: "yellow", states.JOB_CANCELLED: "red",
}
STEP_STYLES = {"SUCCESS": "green", "RUNNING": "yellow", "FAILURE": "red", "REVERTING": "yellow",
               "REVERTED": "red", "REVERT_FAILURE": "bold red", "PENDING": "dim"}


def register(sub) -> None:
    p = sub.add_parser("jobs", help="inspect and steer jobs")
    jsub = p.add_subparsers(dest="jobs_command", required=True)

    ls = jsub.add_parser("list", help="jobs, newest first, with their owning conductor")
    ls.add_argument("--state", action="append", choices=sorted(states.JOB_STATES), metavar="STATE",
                    help=f"only jobs in this state (repeatable): {', '.join(sorted(states.JOB_STATES))}")
    ls.add_argument("--operation", help="only jobs of this operation (create_share, ...)")
    ls.add_argument("--resource", help="only jobs on this resource id")
    ls.add_argument("--project", help="only jobs of this project")
    ls.add_argument("--limit", type=_positive, default=50, help="at most N jobs (default 50)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.add_argument("--watch", action="store_true", help="refresh the table until Ctrl-C (or --count)")
    ls.add_argument("--interval", type=_seconds, default=2.0, help="seconds between refreshes (default 2)")
    ls.add_argument("--count", type=_positive, default=None, help="with --watch: stop after N refreshes")
    ls.set_defaults(func=list_jobs)

    boards = jsub.add_parser("boards", help="every jobboard (host@backend) ZooKeeper has, with its jobs")
    boards.add_argument("--json", action="store_true", help="machine-readable output")
    boards.set_defaults(func=list_boards)

    show = jsub.add_parser("show", help="one job, each step of its flow and its attempts")
    show.add_argument("job", help="job id (ours or the jobboard's)")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=show_job)

    watch = jsub.add_parser("watch", help="follow one job live until it ends (exit 0: succeeded)")
    watch.add_argument("job", help="job id (ours or the jobboard's)")
    watch.add_argument("--interval", type=_seconds, default=0.2, help="seconds between looks (default 0.2)")
    watch.set_defaults(func=watch_job)

    for name, text in (
        ("resume", "post a revert_failed, stalled, cancelled or trashed job again with its persisted flow"),
        ("retry", "run a reverted job again as a new job on the same resource"),
        ("cancel", "stop a posted or running job at its next step and revert what it did"),
    ):
        steer = jsub.add_parser(name, help=text)
        steer.add_argument("job", help="job id (ours or the jobboard's)")
        steer.add_argument("--json", action="store_true", help="machine-readable output")
        steer.set_defaults(func=steer_job, action=name)


def _positive(value: str) -> int:
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return n


def _seconds(value: str) -> float:
    n = float(value)
    if not 0.05 <= n <= 3600:
        raise argparse.ArgumentTypeError("must be between 0.05 and 3600 seconds")
    return n


def operator() -> Caller:
    """Who steers from this host: recorded on the job as the one who asked."""
    try:
        login = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's uid)
        login = "unknown"
    return Caller(project_id="shareflow-cli", user_id=f"cli:{login}", is_admin=True,
                  request_id=f"req-{new_uuid()}")


@contextlib.contextmanager
def _services(args):
    config = config_mod.load(args.config)
    services = Services(config)
    try:
        yield config, services
    finally:
        services.close()


# --- boards -----------------------------------------------------------------

def list_boards(args) -> int:
    """Boards are discovered in ZooKeeper, whatever host they are of: this
    host's configuration does not know the others'."""
    with _services(args) as (_config, services):
        boards = services.jobs.boards()
    if args.json:
        print(json.dumps([{"board": b.key, "jobs": b.jobs, "claimed": b.claimed, "legacy": b.legacy}
                          for b in boards], indent=2))
        return 0
    rows = output.table("BOARD", "JOBS", "CLAIMED", "")
    for b in boards:
        rows.add_row(b.key, str(b.jobs), str(b.claimed), "legacy (drained by its backend's conductors)"
                      if b.legacy else "")
    console().print(rows)
    return 0


# --- list -------------------------------------------------------------------


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def _rows(services, args) -> tuple[list[dict], str]:
    listing = services.jobs.listing(states_in=args.state, operation=args.operation, resource_id=args.resource,
                                    project_id=args.project, limit=args.limit)
    note = ""
    if not listing.claims_known and any(row.job.state in states.JOB_ACTIVE for row in listing.jobs):
        note = "(ZooKeeper unreachable: states and owners as last recorded; stalled jobs not detected)"
    now = utcnow()
    rows = []
    for row in listing.jobs:
        j = row.job
        if row.claim is not None:
            owner = row.claim.owner or ""  # who holds it now, from ZooKeeper ("": nobody)
        else:
            owner = j.owner or ""  # finished, or ZooKeeper unreachable: the last recorded
        rows.append({
            "id": j.id, "operation": j.operation, "resource": f"{j.resource_type}:{j.resource_id}",
            "state": row.state, "attempt": j.attempt, "retry_of": j.retry_of, "owner": owner,
            "age": _age(services.jobs.age(j, now)),
            "stalled_reason": row.claim.reason if row.claim is not None and row.claim.stalled else None,
        })
    return rows, note


def _state(value: str) -> Text:
    return Text(value, style=STATE_STYLES.get(value, ""))


def _table(rows: list[dict], note: str) -> Group | Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    columns = ["id", "operation", "resource", "state", "attempt", "owner", "age"]
    for name in columns:
        table.add_column(name.upper(), no_wrap=name in ("id", "resource", "state"))
    for r in rows:
        table.add_row(*[_state(r[c]) if c == "state" else str(r[c] if r[c] is not None else "")
                        for c in columns])
    stalled = [r for r in rows if r["stalled_reason"]]
    notes = [Text(f"{r['id']} stalled: {r['stalled_reason']}", style="magenta") for r in stalled]
    if note:
        notes.append(Text(note, style="dim"))
    return Group(table, *notes) if notes else table


def list_jobs(args) -> int:
    with _services(args) as (_, services):
        if args.json:
            rows, _ = _rows(services, args)
            print(json.dumps(rows, indent=2))
            return 0
        out = console()
        if not args.watch:
            out.print(_table(*_rows(services, args)))
            return 0
        return _watch_table(out, args, lambda: _table(*_rows(services, args)))


def _watch_table(out: Console, args, draw: Callable[[], Group | Table]) -> int:
    """Redraw the table in place until Ctrl-C or ``--count`` refreshes. Off
    a terminal (a pipe, a log) each refresh is printed after the last one."""

    def frame() -> Group:
        when = time.strftime("%H:%M:%S")
        return Group(Text(f"{when}  every {args.interval:g}s, Ctrl-C to stop", style="dim"), draw())

    refreshes = 0
    live = Live(console=out, auto_refresh=False) if out.is_terminal else None
    try:
        if live is not None:
            live.start()
        while args.count is None or refreshes < args.count:
            if refreshes:
                time.sleep(args.interval)
            refreshes += 1
            if live is not None:
                live.update(frame(), refresh=True)
            else:
                out.print(frame())
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass  # Ctrl-C ends a watch; the last table stays on screen
    finally:
        if live is not None:
            live.stop()
    return 0


# --- show -------------------------------------------------------------------


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def record(view: JobView) -> dict:
    j = view.job
    return {
        "id": j.id, "board_job_id": j.board_job_id, "operation": j.operation,
        "resource": f"{j.resource_type}:{j.resource_id}", "backend": j.backend,
        "project_id": j.project_id, "user_id": j.user_id, "request_id": j.request_id,
        "state": view.state or j.state, "attempt": j.attempt, "retry_of": j.retry_of,
        "current_step": view.current_step, "flow_state": view.flow_state,
        "owner": (view.claim.owner if view.claim is not None else j.owner),
        "stalled_reason": view.claim.reason if view.claim is not None and view.claim.stalled else None,
        "created_at": _iso(j.created_at), "started_at": _iso(j.started_at), "finished_at": _iso(j.finished_at),
        "failed_step": j.failed_step, "failure": j.failure,
        "steps": [{"name": s.name, "state": s.state, "duration": s.duration, "failure": s.failure}
                  for s in view.steps],
        "attempts": [{"id": a.id, "state": a.state, "retry_of": a.retry_of, "backend": a.backend,
                      "created_at": _iso(a.created_at),
                      "finished_at": _iso(a.finished_at), "failed_step": a.failed_step}
                     for a in view.attempts],
        "retried_by": list(view.retried_by),
        "actions": [{"action": a.action, "from_state": a.from_state, "to_state": a.to_state,
                     "user_id": a.user_id, "request_id": a.request_id, "note": a.note,
                     "created_at": _iso(a.created_at)} for a in view.actions],
    }


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 120:
        return f"{seconds:.2f}s"
    return f"{seconds / 60:.1f}m"


def _render_job(view: JobView, rec: dict) -> Group:
    head = Table.grid(padding=(0, 2))
    head.add_column(justify="right", style="bold")
    head.add_column()
    for key in ("id", "board_job_id", "operation", "resource", "backend", "project_id", "user_id",
                "request_id", "state", "stalled_reason", "attempt", "retry_of", "current_step", "flow_state",
                "owner", "created_at", "started_at", "finished_at", "failed_step"):
        if key in ("stalled_reason", "retry_of") and rec[key] is None:
            continue
        value = rec[key]
        head.add_row(key, _state(value) if key == "state" else str(value if value is not None else "-"))
    parts: list = [head, Text("")]
    steps = Table(box=None, header_style="bold", pad_edge=False)
    for name, justify in (("STEP", "left"), ("STATE", "left"), ("DURATION", "right"), ("FAILURE", "left")):
        steps.add_column(name, justify=justify, no_wrap=name != "FAILURE")
    for s in view.steps:
        steps.add_row(s.name, Text(s.state, style=STEP_STYLES.get(s.state, "")), _duration(s.duration),
                      s.failure or "")
    if not view.steps:
        parts.append(Text("(no steps recorded yet: no conductor has loaded this job's flow)", style="dim"))
    else:
        parts.append(steps)
    if len(view.attempts) > 1:
        attempts = Table(title="attempts", title_justify="left", box=None, header_style="bold", pad_edge=False)
        for name in ("#", "JOB", "BACKEND", "STATE", "CREATED", "FAILED STEP"):
            attempts.add_column(name, no_wrap=True)
        for n, a in enumerate(view.attempts, 1):
            marker = " <" if a.id == view.job.id else ""
            attempts.add_row(str(n), a.id + marker, a.backend, _state(a.state), _iso(a.created_at) or "-",
                             a.failed_step or "")
        parts += [Text(""), attempts]
    if view.actions:
        history = Table(title="steering", title_justify="left", box=None, header_style="bold", pad_edge=False)
        for name in ("WHEN", "ACTION", "BY", "FROM", "TO", "NOTE"):
            history.add_column(name, no_wrap=name != "NOTE")
        for a in view.actions:
            history.add_row(_iso(a.created_at) or "-", a.action, a.user_id or "-", a.from_state or "-",
                            a.to_state or "-", a.note or "")
        parts += [Text(""), history]
    if view.job.failure:
        parts += [Text(""), Text("failure detail:", style="bold"), Text(view.job.failure)]
    return Group(*parts)


def show_job(args) -> int:
    with _services(args) as (_, services):
        view = services.jobs.show(args.job, live=True)
        rec = record(view)
        if args.json:
            print(json.dumps(rec, indent=2))
            return 0
        console().print(_render_job(view, rec))
        return 0


# --- watch ------------------------------------------------------------------


#: What a step's new state says happened.
EVENTS = {"RUNNING": "started", "SUCCESS": "done", "FAILURE": "failed", "REVERTING": "reverting",
          "REVERTED": "reverted", "REVERT_FAILURE": "revert failed"}
REVERT_STATES = frozenset({"REVERTING", "REVERTED", "REVERT_FAILURE"})
ENDED = frozenset({"SUCCESS", "FAILURE", "REVERTED", "REVERT_FAILURE"})


class Event(NamedTuple):
    step: str
    event: str
    #: Seconds; with ``at_most`` an upper bound (the step ran whole between two looks).
    duration: float | None = None
    failure: str | None = None
    at_most: bool = False


class StepFollower:
    """Turns successive looks at a job's steps into one line per event: a
    step starting, ending (with its duration), reverting and reverted.

    A look sees states, not transitions: what happened between two looks is
    inferred - a step PENDING then SUCCESS also started (and took at most the
    time between the looks, until the conductor writes its own measure at
    the flow's end); one RUNNING then REVERTED failed first if it has a
    failure of its own, else it had succeeded.
    In one look, steps that went forward come in flow order, then reverts
    last step first, as the engine runs them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._seen: dict[str, str] = {}
        self._since: dict[str, float] = {}
        self._last: float | None = None

    def look(self, view: JobView) -> list[Event]:
        """The events of everything that changed since the last look."""
        now = self._clock()
        last, self._last = self._last, now
        forward, backward = [], []
        for step in view.steps:
            before = self._seen.get(step.name, "PENDING")
            if step.state == before:
                continue
            self._seen[step.name] = step.state
            if step.state not in EVENTS:
                continue  # PENDING again (a retry reset it), IGNORE: it never ran
            if step.state in REVERT_STATES:
                if before in ("PENDING", "RUNNING"):
                    # It ended, and its undo began, between two looks: with a
                    # failure of its own it failed, else it had succeeded.
                    failed = step.failure and step.state != "REVERT_FAILURE"
                    forward += self._ended(step, "FAILURE" if failed else "SUCCESS", now, before, last)
                backward.append(self._event(step, step.state, now, last))
            else:
                forward += self._ended(step, step.state, now, before, last)
        return forward + backward[::-1]

    def _ended(self, step, state: str, now: float, before: str, last: float | None) -> list[Event]:
        events = []
        if state != "RUNNING" and before == "PENDING":
            events.append(Event(step.name, "started"))
        events.append(self._event(step, state, now, last, own=state == step.state))
        return events

    def _event(self, step, state: str, now: float, last: float | None, own: bool = True) -> Event:
        if state in ("RUNNING", "REVERTING"):
            self._since[step.name] = now
            return Event(step.name, EVENTS[state])
        failure = step.failure if state in ("FAILURE", "REVERT_FAILURE") else None
        started = self._since.pop(step.name, None)
        if own and step.duration is not None:
            # The conductor's own measure, written at the flow's end.
            return Event(step.name, EVENTS[state], step.duration, failure)
        if started is not None:
            # As this watch saw it; an upper bound when it ended unseen.
            return Event(step.name, EVENTS[state], now - started, failure, at_most=not own)
        if last is not None:
            return Event(step.name, EVENTS[state], now - last, failure, at_most=True)
        return Event(step.name, EVENTS[state], None, failure)


def _event_line(e: Event) -> Text:
    parts = [time.strftime("%H:%M:%S "), (f"{e.step:<22}", "bold"),
             (f" {e.event}", STEP_STYLES.get(_EVENT_STATES.get(e.event, ""), ""))]
    if e.duration is not None or e.failure:
        parts.append(" " * (13 - len(e.event)))
        duration = f"{'<' if e.at_most else ''}{_duration(e.duration)}" if e.duration is not None else ""
        parts.append(f" {duration:>9}")
    if e.failure:
        parts.append(f"  {e.failure}")
    return Text.assemble(*parts)


def _summary(view: JobView) -> Table:
    """Each step as the conductor measured it, once the job is over."""
    steps = Table(box=None, header_style="bold", pad_edge=False)
    for name, justify in (("STEP", "left"), ("STATE", "left"), ("DURATION", "right")):
        steps.add_column(name, justify=justify, no_wrap=True)
    for s in view.steps:
        steps.add_row(s.name, Text(s.state, style=STEP_STYLES.get(s.state, "")), _duration(s.duration))
    return steps


#: How often ``watch`` asks ZooKeeper whether the job is claimed (to say
#: ``stalled``), in seconds: the other looks read the database only.
CLAIM_EVERY = 2.0


def watch_job(args) -> int:
    out = console()
    with _services(args) as (_, services):
        view = services.jobs.show(args.job, live=True)
        job = view.job
        state = shown = view.state or job.state
        checked = job.state  # the record's state at the last claim check
        out.print(Text.assemble(f"job {job.id}: {job.operation} of {job.resource_type} {job.resource_id}, ",
                                _state(state)), soft_wrap=True)
        sys.stdout.flush()
        follower = StepFollower()
        began = asked = time.monotonic()
        try:
            while True:
                for event in follower.look(view):
                    out.print(_event_line(event), soft_wrap=True)
                if shown != state:
                    state = shown
                    out.print(Text.assemble(time.strftime("%H:%M:%S "), "job is now ", _state(state)),
                              soft_wrap=True)
                sys.stdout.flush()
                if state not in ACTIVE_STATES:
                    break
                time.sleep(args.interval)
                live = time.monotonic() - asked >= CLAIM_EVERY
                view = services.jobs.show(job.id, live=live)
                shown = view.state or view.job.state
                if live:
                    asked, checked = time.monotonic(), view.job.state
                elif state == states.JOB_STALLED and view.job.state == checked:
                    shown = state  # nothing changed since ZooKeeper said stalled
        except KeyboardInterrupt:
            out.print(f"stopped watching; job {job.id} is {state}", soft_wrap=True)
            return 130
        # The conductor writes its measures as the flow ends, a moment around
        # the job's record: give them a few looks to arrive.
        for _ in range(5):
            if all(s.duration is not None for s in view.steps if s.state in ENDED):
                break
            time.sleep(args.interval)
            view = services.jobs.show(job.id)
        out.print(Text.assemble(f"job {job.id} ", _state(state),
                                f" after {_duration(time.monotonic() - began)} of watching"), soft_wrap=True)
        out.print(_summary(view))
        return 0 if state == states.JOB_SUCCEEDED else 1


_EVENT_STATES = {v: k for k, v in EVENTS.items()}


# --- resume / retry / cancel -----------------------------------------------


def steer_job(args) -> int:
    with _services(args) as (_, services):
        job = services.jobs.get(args.job)
        steered = getattr(services.jobs, args.action)(job.id, operator())
        view = services.jobs.show(steered.id, live=True)
        rec = record(view)
        if args.json:
            print(json.dumps(rec, indent=2))
            return 0
        out = console()
        what = {"resume": f"job {job.id} resumed (attempt {steered.attempt})",
                "retry": f"job {job.id} retried as job {steered.id}",
                "cancel": f"job {job.id}: cancel requested"}[args.action]
        out.print(Text.assemble(f"{what}; now ", _state(rec["state"])), soft_wrap=True)
        if view.actions and view.actions[-1].note:
            out.print(view.actions[-1].note, soft_wrap=True)
        out.print(f"follow it with: shareflow jobs watch {steered.id}", soft_wrap=True)
        return 0
