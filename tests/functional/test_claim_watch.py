"""The watch-based claim listener stops an engine at the first atom boundary
after its claim is gone (lock node deleted, or owned by another conductor),
as TaskFlow's CheckingClaimListener does, and lets it run while claimed."""

from __future__ import annotations

import json
import threading

from taskflow import engines, states, task
from taskflow.patterns import linear_flow

from shareflow.engine.listeners import ClaimWatch, ClaimWatchListener

ran: list[str] = []


class FakeJob:
    def __init__(self, lock_path: str):
        self.lock_path = lock_path

    def __str__(self) -> str:
        return self.lock_path


class Step(task.Task):
    def execute(self, lose):
        ran.append(self.name)
        if self.name == "one":
            lose()  # the claim goes while this atom is still running


def run_flow(kazoo_client, zk_chroot, lose) -> str:
    ran.clear()
    lock = f"{zk_chroot}/job.lock"
    kazoo_client.create(lock, json.dumps({"owner": "me"}).encode())
    flow = linear_flow.Flow("f").add(Step("one"), Step("two"), Step("three"))
    holder = {}

    def lose_and_hear_of_it():
        if lose(lock) is not False:
            # Synchronise on the watch itself, not on a sleep.
            assert holder["listener"].lost.wait(10), "ZooKeeper never reported the lost claim"

    engine = engines.load(flow, store={"lose": lose_and_hear_of_it})
    with ClaimWatchListener(engine, FakeJob(lock), None, kazoo_client, "me") as listener:
        holder["listener"] = listener
        engine.run()
    return engine.storage.get_flow_state()


def test_runs_to_the_end_while_claimed(kazoo_client, zk_chroot):
    assert run_flow(kazoo_client, zk_chroot, lambda lock: False) == states.SUCCESS
    assert ran == ["one", "two", "three"]


def test_suspends_once_the_lock_is_gone(kazoo_client, zk_chroot):
    assert run_flow(kazoo_client, zk_chroot, kazoo_client.delete) == states.SUSPENDED
    assert ran == ["one"]


def test_suspends_once_another_conductor_owns_it(kazoo_client, zk_chroot):
    def taken(lock):
        kazoo_client.set(lock, json.dumps({"owner": "other"}).encode())

    assert run_flow(kazoo_client, zk_chroot, taken) == states.SUSPENDED
    assert ran == ["one"]


class ReadsOnly(task.Task):
    """A first step that only reads (as ``begin``)."""

    reads_only = True

    def execute(self, answer):
        ran.append(self.name)
        answer()


def test_a_step_that_only_reads_starts_before_the_watchs_first_answer(kazoo_client, zk_chroot):
    """The watch's first read is still unanswered when the flow's first
    step - one that only reads - starts: it starts without waiting for it
    (a wait that was 1.4-2.2 ms on a job's way to its first step), and the
    check at its end waits for the answer. Here the claim was gone already
    (another conductor owns the lock): the engine stops before the next
    step, which never runs."""
    ran.clear()
    lock = f"{zk_chroot}/job.lock"
    kazoo_client.create(lock, json.dumps({"owner": "other"}).encode())
    order: list[str] = []
    watch = ClaimWatch(kazoo_client, lock, "me")
    # Its read sent and not answered yet (answered below, from the step).
    watch._pending = kazoo_client.handler.async_result()
    settle = watch.settle

    def settling(timeout):
        order.append("settle")
        return settle(timeout)

    watch.settle = settling

    def answer():
        order.append("one runs")
        watch._pending.set(kazoo_client.get(lock))

    flow = linear_flow.Flow("f").add(ReadsOnly("one"), Step("two"))
    engine = engines.load(flow, store={"answer": answer, "lose": lambda: None})
    with ClaimWatchListener(engine, FakeJob(lock), None, kazoo_client, "me", watch, settle_timeout=0.5):
        engine.run()
    assert order[:2] == ["one runs", "settle"]  # without: ["settle", "one runs"] (after the timeout)
    assert engine.storage.get_flow_state() == states.SUSPENDED and watch.lost.is_set()
    assert ran == ["one"]


def test_a_step_with_an_effect_waits_for_the_watchs_first_answer(kazoo_client, zk_chroot):
    """The flow's first step is not one that only reads: it starts only once
    the watch's first answer is in, and here (the claim gone already) never."""
    ran.clear()
    lock = f"{zk_chroot}/job.lock"
    kazoo_client.create(lock, json.dumps({"owner": "other"}).encode())
    watch = ClaimWatch(kazoo_client, lock, "me")
    watch._pending = kazoo_client.handler.async_result()
    asked = threading.Event()
    settle = watch.settle

    def settling(timeout):
        asked.set()
        return settle(timeout)

    watch.settle = settling

    def answer_when_asked():  # ZooKeeper's answer, once the engine waits for it
        assert asked.wait(10)
        watch._pending.set(kazoo_client.get(lock))

    answering = threading.Thread(target=answer_when_asked, daemon=True)
    answering.start()
    flow = linear_flow.Flow("f").add(Step("two"))
    engine = engines.load(flow, store={"lose": lambda: None})
    with ClaimWatchListener(engine, FakeJob(lock), None, kazoo_client, "me", watch, settle_timeout=10):
        engine.run()
    answering.join(10)
    assert engine.storage.get_flow_state() == states.SUSPENDED and ran == []
