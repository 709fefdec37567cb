#!/usr/bin/env python3
"""An idle conductor's ZooKeeper traffic against the number of jobs on its board.

DESIGN.md's target: "an idle conductor's ZooKeeper traffic does not grow with
the number of jobs on its board". Run from the repository root::

    .venv/bin/python bench/idle_conductor.py [--jobs 0,100,1000] [--seconds 10]

It starts a private ZooKeeper on a free loopback port and, for each N, posts
N jobs on a fresh board and claims every one of them from a second ZooKeeper
session (they are "running on another conductor"). Then one conductor - as
the workers run it (:class:`ShareflowConductor` on a
:class:`ConductorJobBoard`, polling every 0.5 s and woken by the board's
notifications) - sits idle for ``--seconds``, and the requests ZooKeeper
received on *that conductor's own connection* are counted (the ``cons``
four-letter word reports them per session), so the other session's traffic
is not mixed in. The same is measured with TaskFlow's own
``ZookeeperJobBoard`` for comparison. Everything is torn down by its own
handle; traffic goes to 127.0.0.1 only; the run is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskflow.jobs.backends.impl_zookeeper import ZookeeperJobBoard  # noqa: E402

from shareflow.config import DEFAULT_ZK_REQUEST_TIMEOUT, ZooKeeperConfig  # noqa: E402
from shareflow.engine.boards import ConductorJobBoard  # noqa: E402
from shareflow.engine.conductor import ShareflowConductor  # noqa: E402
from shareflow.engine.zk import start_client, stop_client  # noqa: E402
from shareflow.system.ports import free_port  # noqa: E402
from shareflow.system.zookeeper import ZooKeeperServer, four_letter_word  # noqa: E402

POLL_INTERVAL = 0.5
SESSION_TIMEOUT = 10.0


def received_on(host: str, port: int, session_id: int) -> int:
    """Requests ZooKeeper has received on one session's connection."""
    text = four_letter_word(host, port, "cons")
    sid = f"sid=0x{session_id:x}"
    for line in text.splitlines():
        if sid in line:
            m = re.search(r"recved=(\d+)", line)
            if m:
                return int(m.group(1))
    raise RuntimeError(f"session {sid} not in 'cons' output")


def fill_board(zk_cfg: ZooKeeperConfig, path: str, jobs: int):
    """A board with ``jobs`` jobs, each claimed by another session (returned,
    so its claims live until it is stopped)."""
    other = start_client(zk_cfg)
    board = ZookeeperJobBoard("filler", {"path": path}, client=other)
    board.connect()
    for i in range(jobs):
        job = board.post(f"bench-{i}", details={})
        board.claim(job, "another-conductor")
    return other, board


def measure(zk_cfg: ZooKeeperConfig, host: str, port: int, path: str, board_class, seconds: float) -> float:
    """Requests per second of one idle conductor on the board at ``path``."""
    client = start_client(zk_cfg)
    board = board_class("bench", {"path": path}, client=client)
    board.connect()
    conductor = ShareflowConductor("idle", board, None, None, poll_interval=POLL_INTERVAL, client=client)
    thread = threading.Thread(target=conductor.run, daemon=True)
    try:
        thread.start()
        time.sleep(2 * POLL_INTERVAL)  # past start-up: registering, first listing
        session = client.client_id[0]
        before = received_on(host, port, session)
        time.sleep(seconds)
        after = received_on(host, port, session)
        return (after - before) / seconds
    finally:
        conductor.stop()
        conductor.wait(10)
        thread.join(5)
        board.close()
        stop_client(client)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="0,100,1000", help="comma-separated numbers of jobs on the board")
    parser.add_argument("--seconds", type=float, default=10.0, help="idle time measured per case")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.jobs.split(",")]
    with tempfile.TemporaryDirectory(prefix="shareflow-idle-") as tmp:
        port = free_port()
        zk = ZooKeeperServer(Path(tmp) / "zk", port)
        zk.start()
        try:
            zk_cfg = ZooKeeperConfig(
                hosts=f"127.0.0.1:{port}", chroot="/bench", session_timeout=SESSION_TIMEOUT,
                connect_timeout=10.0, request_timeout=DEFAULT_ZK_REQUEST_TIMEOUT, embedded=False,
                data_dir=Path(tmp) / "zk",
            )
            print(f"idle conductor, poll {POLL_INTERVAL} s, session {SESSION_TIMEOUT:g} s, "
                  f"{args.seconds:g} s per case; ZooKeeper requests/s on the conductor's connection")
            print(f"{'jobs on board':>14}  {'shareflow board':>16}  {'taskflow board':>15}")
            for n in counts:
                path = f"/bench/n{n}/jobs"
                other, filler = fill_board(zk_cfg, path, n)
                try:
                    ours = measure(zk_cfg, "127.0.0.1", port, path, ConductorJobBoard, args.seconds)
                    theirs = measure(zk_cfg, "127.0.0.1", port, path, ZookeeperJobBoard, args.seconds)
                finally:
                    with contextlib.suppress(Exception):
                        filler.close()
                    stop_client(other)
                print(f"{n:>14}  {ours:>16.1f}  {theirs:>15.1f}", flush=True)
        finally:
            zk.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
