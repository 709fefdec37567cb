"""``shareflow jobs watch``: successive looks at a job's steps become one
line per event, in the order the engine ran them."""

from __future__ import annotations

from shareflow.cli.jobs import StepFollower
from shareflow.services.jobs import JobView, StepView

STEPS = ["a", "b", "c"]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def view(*states, durations=None, failures=None) -> JobView:
    durations = durations or {}
    failures = failures or {}
    return JobView(job=None, flow_state=None, steps=[
        StepView(name=n, state=s, duration=durations.get(n), failure=failures.get(n))
        for n, s in zip(STEPS, states, strict=True)])


def test_each_step_starts_then_ends_with_the_time_it_was_seen_taking():
    clock = Clock()
    follower = StepFollower(clock)
    assert follower.look(view("PENDING", "PENDING", "PENDING")) == []
    assert follower.look(view("RUNNING", "PENDING", "PENDING")) == [("a", "started", None, None, False)]
    assert follower.look(view("RUNNING", "PENDING", "PENDING")) == []  # nothing new: nothing said
    clock.now += 2.5
    # a ended and b ran whole between two looks: b also started.
    # b's duration is at most the time between the looks, until the conductor's is written.
    assert follower.look(view("SUCCESS", "SUCCESS", "RUNNING")) == [
        ("a", "done", 2.5, None, False), ("b", "started", None, None, False), ("b", "done", 2.5, None, True),
        ("c", "started", None, None, False)]


def test_the_conductors_own_duration_wins_once_written():
    follower = StepFollower(Clock())
    follower.look(view("RUNNING", "PENDING", "PENDING"))
    assert follower.look(view("SUCCESS", "PENDING", "PENDING", durations={"a": 0.004}))[0] == (
        "a", "done", 0.004, None, False)


def test_a_failure_and_its_reverts_seen_at_once_come_in_engine_order():
    clock = Clock()
    follower = StepFollower(clock)
    follower.look(view("SUCCESS", "SUCCESS", "RUNNING"))
    clock.now += 1
    events = follower.look(view("REVERTED", "REVERTED", "REVERTED", failures={"c": "boom"}))
    assert [(e.step, e.event) for e in events] == [("c", "failed"), ("c", "reverted"), ("b", "reverted"),
                                                  ("a", "reverted")]
    assert events[0] == ("c", "failed", 1.0, "boom", True)


def test_a_step_reverted_unseen_after_it_succeeded_is_done_then_reverted():
    """A cancel's shape: the step in flight ends, the next one is refused, all is undone."""
    clock = Clock()
    follower = StepFollower(clock)
    follower.look(view("SUCCESS", "RUNNING", "PENDING"))
    clock.now += 3
    events = follower.look(view("REVERTED", "REVERTED", "REVERTED", failures={"c": "cancelled"}))
    assert [(e.step, e.event) for e in events] == [
        ("b", "done"), ("c", "started"), ("c", "failed"), ("c", "reverted"), ("b", "reverted"), ("a", "reverted")]
    assert events[0] == ("b", "done", 3.0, None, True)


def test_a_revert_that_fails_names_its_failure():
    follower = StepFollower(Clock())
    follower.look(view("SUCCESS", "FAILURE", "PENDING", failures={"b": "no space"}))
    events = follower.look(view("REVERT_FAILURE", "REVERTED", "PENDING",
                                failures={"a": "busy", "b": "no space"}))
    assert [(e.step, e.event, e.failure) for e in events] == [
        ("b", "reverted", None), ("a", "revert failed", "busy")]


def test_a_step_that_never_ran_says_nothing():
    follower = StepFollower(Clock())
    follower.look(view("FAILURE", "PENDING", "PENDING", failures={"a": "x"}))
    events = follower.look(view("REVERTED", "IGNORE", "IGNORE", failures={"a": "x"}))
    assert [(e.step, e.event) for e in events] == [("a", "reverted")]
