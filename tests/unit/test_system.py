"""The command boundary, name validation and file locks (no root needed)."""

import threading
import time

import pytest

from shareflow.exceptions import CommandError, NetworkError, StorageError
from shareflow.system import filelock, netns
from shareflow.system.process import run


def test_run_returns_text():
    out = run(["printf", "a\\nb"], timeout=5)
    assert out.returncode == 0 and out.stdout == "a\nb"


def test_run_passes_input_and_never_a_shell():
    assert run(["cat"], timeout=5, input=b"x; echo injected").stdout == "x; echo injected"
    assert run(["echo", "$(id)", ";", "ls"], timeout=5).stdout == "$(id) ; ls\n"


def test_run_non_zero_exit():
    with pytest.raises(CommandError) as e:
        run(["sh", "-c", "echo oops >&2; exit 3"], timeout=5)
    assert e.value.returncode == 3 and e.value.stderr == "oops"
    assert run(["false"], timeout=5, check=False).returncode == 1


def test_run_missing_binary():
    with pytest.raises(CommandError) as e:
        run(["/nonexistent/tool", "x"], timeout=5)
    assert e.value.returncode == 127


def test_run_timeout_kills():
    start = time.monotonic()
    with pytest.raises(CommandError) as e:
        run(["sleep", "10"], timeout=0.2)
    assert e.value.returncode is None
    assert time.monotonic() - start < 5


@pytest.mark.parametrize("name", ["br0", "veth-a.1", "x" * 15])
def test_interface_names_ok(name):
    assert netns.ifname(name) == name


@pytest.mark.parametrize("name", ["", "x" * 16, "a b", "a/b", "..", ".", ".hidden", "eth0;", "-n", None])
def test_interface_names_refused(name):
    with pytest.raises(NetworkError):
        netns.ifname(name)


@pytest.mark.parametrize("name", ["", "a/../b", "..", "x" * 65, "ns name", "--net"])
def test_namespace_names_refused(name):
    with pytest.raises(NetworkError):
        netns.nsname(name)


def test_exec_argv_uses_network_namespace_only():
    assert netns.exec_argv("", ["true"]) == ["true"]
    assert netns.exec_argv("sfx-s", ["true"]) == ["nsenter", "--net=/run/netns/sfx-s", "--", "true"]


def test_lock_excludes_threads_and_times_out(tmp_path):
    path = tmp_path / "lock"
    inside = threading.Event()
    release = threading.Event()

    def holder():
        with filelock.locked(path, timeout=5):
            inside.set()
            release.wait(5)

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(5)
    with pytest.raises(StorageError):
        with filelock.locked(path, timeout=0.1, error=StorageError):
            pass
    release.set()
    t.join()
    with filelock.locked(path, timeout=1):
        pass


def test_removed_lock_file_is_not_a_lock(tmp_path):
    """A waiter that locked a file its holder removed must start over."""
    path = tmp_path / "lock"
    order = []
    inside = threading.Event()

    def holder():
        with filelock.locked(path, timeout=5, remove=True):
            inside.set()
            time.sleep(0.2)
            order.append("holder done")

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(5)
    with filelock.locked(path, timeout=5):
        order.append("waiter in")
        assert path.exists()
    t.join()
    assert order == ["holder done", "waiter in"]
