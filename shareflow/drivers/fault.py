"""A proxy that injects faults into driver calls, for tests only.

Wraps any driver; before each public method call it reads a JSON plan file
``{"<method name>": "fail" | "hang" | {"fail_if_args_contain": TEXT}}``
(the last fails only the calls whose arguments' ``repr`` holds TEXT: an
export server that refuses one client of a list, and takes the lists
without it). A plan with ``"_calls": PATH`` also
appends each method name called to PATH, one a line (a test counts which
driver calls a job made). "fail" raises
:class:`InjectedFault`; "hang" blocks until the entry is removed or changed
(a test holds a conductor inside a step, kills it, then lets go), bounded so
that a forgotten plan cannot hang a run forever. No file: no faults.

The plan is re-read on every call, so a test steers running conductors in
other processes just by rewriting the file (atomically, with a rename).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time

from shareflow.exceptions import ConfigError, InjectedFault

log = logging.getLogger(__name__)

FAIL, HANG = "fail", "hang"
#: Key of a plan entry that fails a call only for some arguments.
FAIL_IF_ARGS_CONTAIN = "fail_if_args_contain"
#: Plan key naming the file each call is logged to.
CALLS_KEY = "_calls"
POLL_INTERVAL = 0.02
DEFAULT_HANG_LIMIT = 60.0


def read_plan(path: str | os.PathLike) -> dict[str, str]:
    """The plan at ``path``; {} when there is none. A half-written file (a test
    that did not write atomically) is read again briefly before giving up."""
    for _ in range(25):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            return {}
        try:
            plan = json.loads(text)
        except json.JSONDecodeError:
            time.sleep(POLL_INTERVAL)
            continue
        if not isinstance(plan, dict):
            raise ConfigError(f"fault plan {path} must be a JSON object")
        return plan
    raise ConfigError(f"fault plan {path} is not valid JSON")


class FaultInjectingProxy:
    def __init__(self, inner: object, plan_path: str | os.PathLike, *, hang_limit: float = DEFAULT_HANG_LIMIT):
        self._inner = inner
        self._plan_path = os.fspath(plan_path)
        self._hang_limit = hang_limit

    def __getattr__(self, name: str):
        attr = getattr(self._inner, name)
        if name.startswith("_") or not callable(attr):
            return attr

        @functools.wraps(attr)
        def call(*args, **kwargs):
            self._checkpoint(name, args=(args, kwargs))
            return attr(*args, **kwargs)

        return call

    def _checkpoint(self, name: str, *, count: bool = True, args=None) -> None:
        plan = read_plan(self._plan_path)
        calls = plan.get(CALLS_KEY)
        if count and isinstance(calls, str):
            with open(calls, "a", encoding="utf-8") as f:
                f.write(name + "\n")
        action = plan.get(name)
        if isinstance(action, dict):
            text = action.get(FAIL_IF_ARGS_CONTAIN)
            if isinstance(text, str) and args is not None and text in repr(args):
                log.info("injecting failure into %s (arguments hold %r)", name, text)
                raise InjectedFault(name)
            return
        if action == FAIL:
            log.info("injecting failure into %s", name)
            raise InjectedFault(name)
        if action != HANG:
            return
        log.info("hanging in %s until the plan changes", name)
        deadline = time.monotonic() + self._hang_limit
        while read_plan(self._plan_path).get(name) == HANG:
            if time.monotonic() >= deadline:
                raise InjectedFault(name)
            time.sleep(POLL_INTERVAL)
        # Released: whatever the plan says now applies ("fail" after a hang
        # fails; anything else proceeds).
        self._checkpoint(name, count=False, args=args)

    def __repr__(self) -> str:
        return f"FaultInjectingProxy({self._inner!r}, {self._plan_path!r})"
