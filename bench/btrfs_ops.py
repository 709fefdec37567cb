#!/usr/bin/env python3
"""What one storage operation costs against the number of shares on the pool.

Issue 13, "No scans per operation": the cost of creating, resizing, reading
and deleting one volume (and a snapshot of it) must not grow with the number
of volumes already on the pool. Run as root from the repository root::

    .venv/bin/python bench/btrfs_ops.py [--on-pool 10,2000] [--ops 30]

For each N it makes a fresh sparse btrfs loop pool with quotas on
(``ensure_pool``, the same as ``shareflow run``), fills it with N volumes
laid out as the driver lays them out (each a subvolume with a qgroup limit
and its own mount; made by the commands themselves, so that filling costs
the same for every version of the driver) and lets btrfs settle; then it
times ``--ops`` rounds of create_volume, resize_volume, used_bytes,
create_snapshot, delete_snapshot and delete_volume on fresh ids, alternating between the pools (so the machine's
other load weighs on each N alike), and prints the median and p90 of each in
ms. Afterwards each pool is unmounted (every mount made from its loop device),
detached and its image deleted: everything by its own handle.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shareflow.config import BtrfsConfig  # noqa: E402
from shareflow.drivers.share.btrfs import BtrfsShareDriver  # noqa: E402
from shareflow.system import btrfs, btrfs_pool  # noqa: E402
from shareflow.system.process import run  # noqa: E402

TIMEOUT = 60.0
OPS = ("create_volume", "resize_volume", "used_bytes", "create_snapshot", "delete_snapshot", "delete_volume")


def _ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _fill(pool: btrfs_pool.BtrfsPool, cfg: BtrfsConfig, n: int) -> None:
    """N volumes as the driver lays them out (subvolume ``shares/ID`` with a
    1 GiB qgroup limit, mounted on ``exports/ID``), made with the commands
    themselves so that filling costs the same whichever driver version is
    being measured."""
    (pool.mount_point / "shares").mkdir(exist_ok=True)
    start = time.monotonic()
    for i in range(n):
        sid = str(uuid.uuid4())
        subvol, target = pool.mount_point / "shares" / sid, cfg.exports_dir / sid
        btrfs.subvolume_create(subvol, timeout=TIMEOUT)
        btrfs.qgroup_limit(subvol, 1 << 30, timeout=TIMEOUT)
        target.mkdir(parents=True)
        run(["mount", "-t", "btrfs", "-o", f"subvol=shares/{sid},nodev,nosuid", pool.device, str(target)],
            timeout=TIMEOUT)
        if i and i % 500 == 0:
            print(f"  {i} volumes on the pool ({time.monotonic() - start:.0f} s)", file=sys.stderr)


def _round(driver: BtrfsShareDriver, times: dict[str, list[float]]) -> None:
    """One of each operation on fresh ids, each timed."""
    sid, snap = str(uuid.uuid4()), str(uuid.uuid4())
    for op, args in (("create_volume", (sid, 1)), ("resize_volume", (sid, 2)), ("used_bytes", (sid,)),
                     ("create_snapshot", (sid, snap)), ("delete_snapshot", (snap,)),
                     ("delete_volume", (sid,))):
        t0 = time.perf_counter()
        getattr(driver, op)(*args)
        times[op].append(time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--on-pool", default="10,2000", help="volumes already on the pool, comma-separated")
    parser.add_argument("--ops", type=int, default=30, help="rounds of operations timed per N")
    args = parser.parse_args()
    ns = [int(x) for x in args.on_pool.split(",")]
    pools, drivers = [], {}
    results: dict[int, dict[str, list[float]]] = {n: {op: [] for op in OPS} for n in ns}
    with contextlib.ExitStack() as stack:
        for n in ns:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sf-bench-btrfs-")))
            pool = btrfs_pool.ensure_pool(base / "mnt", base / "pool.img", 16, timeout=TIMEOUT)
            pools.append(pool)
            stack.callback(btrfs_pool.destroy_pool, pool, timeout=TIMEOUT)
            cfg = BtrfsConfig(mount_point=pool.mount_point, exports_dir=base / "exports", image=None,
                              image_size_gb=16)
            start = time.monotonic()
            _fill(pool, cfg, n)
            # The pool at rest with N volumes: what filling left to commit and
            # clean is not counted against the first operations timed.
            btrfs.filesystem_sync(pool.mount_point, timeout=TIMEOUT)
            run(["btrfs", "subvolume", "sync", str(pool.mount_point)], timeout=TIMEOUT)
            print(f"  N={n}: pool filled in {time.monotonic() - start:.1f} s", file=sys.stderr)
            drivers[n] = BtrfsShareDriver(cfg, timeout=TIMEOUT)
        # Rounds alternate between the pools, so that whatever else the
        # machine does weighs on every N alike.
        for _ in range(args.ops):
            for n in ns:
                _round(drivers[n], results[n])
    print("| operation | " + " | ".join(f"N={n} p50 / p90 (ms)" for n in ns) + " |")
    print("| --- |" + " --- |" * len(ns))
    for op in OPS:
        cells = [f"{_ms(results[n][op], 0.5):.1f} / {_ms(results[n][op], 0.9):.1f}" for n in ns]
        print(f"| {op} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
