"""HostLocks: a share's lock between the processes of one host (flock)."""

from __future__ import annotations

import multiprocessing

import pytest

from shareflow.engine.locks import BUSY_MESSAGE, HostLocks
from shareflow.exceptions import BackendError


def _try_lock(directory, queue) -> None:
    try:
        with HostLocks(directory, timeout=0.1).hold("share", "s1"):
            queue.put("taken")
    except BackendError as e:
        queue.put(("busy", e.user_message))


def test_another_process_waits_a_bounded_time_and_is_told_why(tmp_path):
    locks = HostLocks(tmp_path, timeout=5)
    queue = multiprocessing.Queue()
    with locks.hold("share", "s1"):
        other = multiprocessing.Process(target=_try_lock, args=(tmp_path, queue))
        other.start()
        other.join(10)
        assert queue.get(timeout=5) == ("busy", BUSY_MESSAGE)
    other = multiprocessing.Process(target=_try_lock, args=(tmp_path, queue))
    other.start()
    other.join(10)
    assert queue.get(timeout=5) == "taken"


def test_the_last_hold_removes_the_lock_file(tmp_path):
    locks = HostLocks(tmp_path, timeout=1)
    with locks.hold("share", "s1"):
        assert locks.path("share", "s1").exists()
    assert locks.path("share", "s1").exists()  # kept for the share's next job
    with locks.hold("share", "s1", last=True):
        pass
    assert not locks.path("share", "s1").exists()


@pytest.mark.parametrize("bad", ["", "../x", "a/b", ".hidden"])
def test_a_resource_id_cannot_leave_its_directory(tmp_path, bad):
    with pytest.raises(ValueError):
        HostLocks(tmp_path, timeout=1).path("share", bad)
