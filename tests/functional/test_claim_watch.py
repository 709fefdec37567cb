"""The watch-based claim listener stops an engine at the first atom boundary
after its claim is gone (lock node deleted, or owned by another conductor),
as TaskFlow's CheckingClaimListener does, and lets it run while claimed."""

from __future__ import annotations

import json

from taskflow import engines, states, task
from taskflow.patterns import linear_flow

from shareflow.engine.listeners import ClaimWatchListener

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
