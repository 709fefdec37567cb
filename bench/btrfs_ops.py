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
the same for every version of the driver), lets btrfs settle, then times ``--ops`` rounds of
create_volume, resize_volume, used_bytes, create_snapshot, delete_snapshot
and delete_volume on fresh ids, and prints the median and p90 of each in ms.
Afterwards the pool is unmounted (every mount made from its loop device),
detached and its image deleted: everything by its own handle.
"""

from __future__ import annotations

import argparse
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


def measure(n: int, ops: int, base: Path) -> dict[str, list[float]]:
    pool = btrfs_pool.ensure_pool(base / "mnt", base / "pool.img", 16, timeout=TIMEOUT)
    try:
        cfg = BtrfsConfig(mount_point=pool.mount_point, exports_dir=base / "exports", image=None, image_size_gb=16)
        driver = BtrfsShareDriver(cfg, timeout=TIMEOUT)
        start = time.monotonic()
        _fill(pool, cfg, n)
        # The pool at rest with N volumes: what filling left to commit and
        # clean is not counted against the first operations timed.
        btrfs.filesystem_sync(pool.mount_point, timeout=TIMEOUT)
        run(["btrfs", "subvolume", "sync", str(pool.mount_point)], timeout=TIMEOUT)
        print(f"  N={n}: pool filled in {time.monotonic() - start:.1f} s", file=sys.stderr)
        times: dict[str, list[float]] = {op: [] for op in OPS}

        def timed(op, fn, *args):
            t0 = time.perf_counter()
            result = fn(*args)
            times[op].append(time.perf_counter() - t0)
            return result

        for _ in range(ops):
            sid, snap = str(uuid.uuid4()), str(uuid.uuid4())
            timed("create_volume", driver.create_volume, sid, 1)
            timed("resize_volume", driver.resize_volume, sid, 2)
            timed("used_bytes", driver.used_bytes, sid)
            timed("create_snapshot", driver.create_snapshot, sid, snap)
            timed("delete_snapshot", driver.delete_snapshot, snap)
            timed("delete_volume", driver.delete_volume, sid)
        return times
    finally:
        btrfs_pool.destroy_pool(pool, timeout=TIMEOUT)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--on-pool", default="10,2000", help="volumes already on the pool, comma-separated")
    parser.add_argument("--ops", type=int, default=30, help="rounds of operations timed per N")
    args = parser.parse_args()
    results = {}
    for n in (int(x) for x in args.on_pool.split(",")):
        with tempfile.TemporaryDirectory(prefix="sf-bench-btrfs-") as tmp:
            results[n] = measure(n, args.ops, Path(tmp))
    ns = list(results)
    print("| operation | " + " | ".join(f"N={n} p50 / p90 (ms)" for n in ns) + " |")
    print("| --- |" + " --- |" * len(ns))
    for op in OPS:
        cells = [f"{_ms(results[n][op], 0.5):.1f} / {_ms(results[n][op], 0.9):.1f}" for n in ns]
        print(f"| {op} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
