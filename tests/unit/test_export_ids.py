"""Export ids of one Ganesha server (``export-ids/<id>`` symlinks): a take
after the first starts after the last id this process took - one symlink, no
listing of every export - skips ids another process took, wraps around at
Ganesha's largest id, and falls back to the smallest free id when a run of
ids after its last one is taken."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from shareflow.drivers.export import ganesha
from shareflow.drivers.export.ganesha_config import MAX_EXPORT_ID

FIRST = ganesha.FIRST_EXPORT_ID


@pytest.fixture
def ids(tmp_path, monkeypatch):
    monkeypatch.setattr(ganesha._Ids, "_next", {})  # no pointer from another test's directory
    return ganesha._Ids(SimpleNamespace(state_dir=tmp_path))


def _owner(ids, export_id: int) -> str:
    return os.readlink(ids.dir / str(export_id))


def test_takes_follow_the_last_one_not_the_smallest_free(ids):
    assert [ids.take(f"s{i}") for i in range(3)] == [FIRST, FIRST + 1, FIRST + 2]
    ids.give_back(FIRST, "s0")
    assert ids.take("s3") == FIRST + 3  # the freed id waits for the wrap-around
    assert _owner(ids, FIRST + 3) == "s3"


def test_an_id_another_process_took_is_skipped(ids):
    assert ids.take("s0") == FIRST
    os.symlink("theirs", ids.dir / str(FIRST + 1))
    assert ids.take("s1") == FIRST + 2
    assert _owner(ids, FIRST + 1) == "theirs"


def test_ids_wrap_around_to_the_first(ids):
    ids._next[ids.dir] = MAX_EXPORT_ID
    ids.dir.mkdir(parents=True)
    assert ids.take("last") == MAX_EXPORT_ID
    assert ids.take("wrapped") == FIRST


def test_a_run_of_taken_ids_falls_back_to_the_smallest_free(ids):
    assert ids.take("s0") == FIRST
    for i in range(1, ids.PROBES + 2):
        os.symlink(f"theirs{i}", ids.dir / str(FIRST + i))
    ids.give_back(FIRST, "s0")
    assert ids.take("s1") == FIRST


def test_a_take_given_back_at_once_is_taken_again(ids):
    """An export Ganesha refused gives its id back: no gap is left."""
    assert ids.take("s0") == FIRST
    assert ids.take("refused") == FIRST + 1
    ids.give_back(FIRST + 1, "refused")
    assert ids.take("s1") == FIRST + 1
