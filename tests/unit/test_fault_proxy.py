"""The fault-injecting proxy: fail and hang, steered through its plan file."""

import json
import threading
import time

import pytest

from shareflow.drivers.fault import FaultInjectingProxy
from shareflow.exceptions import InjectedFault


class Inner:
    def __init__(self):
        self.calls = []
        self.name = "inner"

    def create_volume(self, share_id, size_gb):
        self.calls.append(("create_volume", share_id, size_gb))
        return f"/exports/{share_id}"

    def delete_volume(self, share_id):
        self.calls.append(("delete_volume", share_id))


def write_plan(path, plan):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(plan))
    tmp.replace(path)  # atomic, as a test steering conductors should do


@pytest.fixture
def plan(tmp_path):
    return tmp_path / "faults.json"


@pytest.fixture
def inner():
    return Inner()


def test_no_plan_file_means_no_faults(inner, plan):
    proxy = FaultInjectingProxy(inner, plan)
    assert proxy.create_volume("a", 1) == "/exports/a"
    assert inner.calls == [("create_volume", "a", 1)]
    assert proxy.name == "inner"  # attributes pass through


def test_fail(inner, plan):
    write_plan(plan, {"create_volume": "fail"})
    proxy = FaultInjectingProxy(inner, plan)
    with pytest.raises(InjectedFault) as e:
        proxy.create_volume("a", 1)
    assert e.value.point == "create_volume"
    assert inner.calls == []  # the fault comes before the real call
    proxy.delete_volume("a")  # other methods are untouched
    assert inner.calls == [("delete_volume", "a")]


def test_plan_is_reread_on_every_call(inner, plan):
    proxy = FaultInjectingProxy(inner, plan)
    write_plan(plan, {"create_volume": "fail"})
    with pytest.raises(InjectedFault):
        proxy.create_volume("a", 1)
    write_plan(plan, {})
    assert proxy.create_volume("a", 1) == "/exports/a"


def _call_in_thread(fn):
    box = {}

    def target():
        try:
            box["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, box


def test_hang_is_released_by_removing_the_entry(inner, plan):
    write_plan(plan, {"create_volume": "hang"})
    proxy = FaultInjectingProxy(inner, plan, hang_limit=10)
    t, box = _call_in_thread(lambda: proxy.create_volume("a", 1))
    time.sleep(0.2)
    assert t.is_alive() and inner.calls == []  # still hanging
    write_plan(plan, {})
    t.join(2)
    assert not t.is_alive()
    assert box == {"result": "/exports/a"}


def test_hang_changed_to_fail_fails(inner, plan):
    write_plan(plan, {"create_volume": "hang"})
    proxy = FaultInjectingProxy(inner, plan, hang_limit=10)
    t, box = _call_in_thread(lambda: proxy.create_volume("a", 1))
    time.sleep(0.1)
    # Replaced in one rename: removing it first would release the hang with
    # no plan at all (the real call) if the proxy looked in between.
    write_plan(plan, {"create_volume": "fail"})
    t.join(2)
    assert isinstance(box.get("error"), InjectedFault)
    assert inner.calls == []


def test_hang_is_bounded(inner, plan):
    write_plan(plan, {"delete_volume": "hang"})
    proxy = FaultInjectingProxy(inner, plan, hang_limit=0.2)
    start = time.monotonic()
    with pytest.raises(InjectedFault):
        proxy.delete_volume("a")
    assert 0.2 <= time.monotonic() - start < 2
    assert inner.calls == []


def test_fail_if_args_contain_fails_only_calls_with_those_arguments(plan, inner):
    proxy = FaultInjectingProxy(inner, plan)
    write_plan(plan, {"create_volume": {"fail_if_args_contain": "'refused-share'"}})
    with pytest.raises(InjectedFault):
        proxy.create_volume("refused-share", 1)
    with pytest.raises(InjectedFault):
        proxy.create_volume(share_id="refused-share", size_gb=2)
    assert proxy.create_volume("other-share", 1) == "/exports/other-share"
    assert proxy.delete_volume("refused-share") is None  # another method: not in the plan
    assert inner.calls == [("create_volume", "other-share", 1), ("delete_volume", "refused-share")]
    # An entry without text to look for fails nothing.
    write_plan(plan, {"create_volume": {"something": "else"}})
    assert proxy.create_volume("refused-share", 1) == "/exports/refused-share"
