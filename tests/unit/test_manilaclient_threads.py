"""Tests share one manilaclient between threads (races, concurrent creates);
the session's setting of its completion cache must make that safe."""

from __future__ import annotations

import threading

from manilaclient import base


class _Manager(base.Manager):
    resource_class = type("Share", (base.Resource,), {})


def test_a_client_shared_between_threads_does_not_race_on_its_completion_cache():
    manager = _Manager.__new__(_Manager)  # the cache needs no API behind it
    errors: list[Exception] = []

    def use():
        for _ in range(500):
            try:
                with manager.completion_cache("uuid", _Manager.resource_class, mode="a"):
                    pass
            except AttributeError as e:
                errors.append(e)

    threads = [threading.Thread(target=use) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
