#!/usr/bin/env python3
"""Conductor pool restart with N shares exported: time until every export is
served again.

Run from the repository root, as root::

    .venv/bin/python bench/restart.py --shares N [--rounds R]

It starts, privately in a fresh temporary directory, what
``bench/create_share.py`` starts (ZooKeeper, a sparse btrfs loop pool, a
:class:`tests.fixtures.stack.ServiceStack` with NFS-Ganesha in a network
namespace), then stops the conductor pool and puts N shares on its backend
the quick way - N subvolumes made by ioctl, and N exports, each allowing the
stack's first NFS client, written as the export driver's state and Ganesha
file (what N creates and allows leave behind, minus the qgroup limits, which
a restart does not touch). That is not the API: this benchmark measures the
restart, not the creates (``bench/create_share.py`` does those).

Restarts of the conductor pool are timed: the first start after the shares
were put in place, then ``--rounds`` pairs of

* **warm**: mounts in place (a restart of the service alone);
* **cold**: every share's mount removed first, as after a reboot - the pool
  must mount all N volumes, then start NFS-Ganesha with all N exports (the
  first start is cold too).

Each is timed from just before the pool process is started until every
check passes: ``shareflow backend show`` reports this ensure finished (its
``ensure_seconds`` is printed too) and a sample of exports (first, last and
every N/20-th) answers a READDIR over NFS from the allowed client. (Ganesha
loads every export block before it serves at all; libnfs hangs listing the
pseudo-filesystem, so that is not used to count them.) After the timed part
every one of the N exports is read over NFS (untimed: N nfs-ls processes,
4 at a time) and one that is not served fails the run. Results go to stdout (``--json`` for machine-readable) with
the machine's load, since other work may share the cores.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import os
import platform
import re
import struct
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from create_share import Infrastructure, log, remove_base, signals_as_interrupt, signals_ignored  # noqa: E402

#: btrfs ioctls (linux/btrfs.h): struct btrfs_ioctl_vol_args is an fd and a
#: 4088-byte name; _IOW(0x94, 14 | 15, that struct).
BTRFS_IOC_SUBVOL_CREATE = 0x5000940E
BTRFS_IOC_SNAP_DESTROY = 0x5000940F
MNT_DETACH = 2
READY_TIMEOUT = 600.0


def vol_args(name: str) -> bytearray:
    return bytearray(struct.pack("q4088s", 0, name.encode()))


def make_subvolumes(parent: Path, names: list[str]) -> None:
    parent.mkdir(exist_ok=True)
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            fcntl.ioctl(fd, BTRFS_IOC_SUBVOL_CREATE, vol_args(name), True)
    finally:
        os.close(fd)


def delete_subvolumes(parent: Path, names: list[str]) -> None:
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in names:
            try:
                fcntl.ioctl(fd, BTRFS_IOC_SNAP_DESTROY, vol_args(name), True)
            except FileNotFoundError:
                pass
    finally:
        os.close(fd)


def unmount_under(directory: Path) -> int:
    """Every mount below ``directory`` (newest first), by umount2 in process:
    N umount processes would take longer than what is measured."""
    from shareflow.system import mounts

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    below = mounts.mounts_under(directory)
    for m in below:
        if libc.umount2(m.mount_point.encode(), 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"umount {m.mount_point}: {os.strerror(err)}")
    return len(below)


def write_exports(stack, share_ids: list[str], client_address: str) -> None:
    """The export driver's records and Ganesha's files for all shares, as N
    adds and N allows leave them: one file per export (``exports.d``, with
    ``export-ids``) where the driver keeps them so, else its older single
    state file with the rendered ``exports.conf``."""
    from shareflow.drivers.base import ClientRule
    from shareflow.drivers.export import ganesha as gd
    from shareflow.drivers.export import ganesha_config as gc
    from shareflow.drivers.export.ganesha_server import GaneshaServer
    from shareflow.system import filelock
    from shareflow.system.atomic_file import write_atomic

    server = GaneshaServer(stack.config.backend("b1").ganesha)
    exports = {
        sid: gc.ExportSpec(export_id=gd.FIRST_EXPORT_ID + i, path=str(Path(stack.btrfs.exports_dir) / sid),
                           pseudo=gc.pseudo_path(sid), clients=(ClientRule(client_address, "rw"),))
        for i, sid in enumerate(share_ids)
    }
    if hasattr(gd, "export_file"):
        ids_dir = server.state_dir / gd.IDS_DIR
        ids_dir.mkdir(parents=True, exist_ok=True)
        for sid, spec in exports.items():
            path = gd.export_file(server, sid)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, gc.render_export_file(spec))
            os.symlink(sid, ids_dir / str(spec.export_id))
        return  # the exports file that includes them is written at each start
    with filelock.locked(server.state_dir / gd.LOCK_FILE, timeout=30):
        state = gd.State(serial=1_000_000, exports=exports)
        write_atomic(server.state_dir / gd.STATE_FILE, state.to_json())
        write_atomic(server.exports_path, gc.render_exports(exports.values()))
        write_atomic(server.state_dir / gd.APPLIED_FILE, f"{state.serial}\n")


def drop_exports(stack, share_ids: list[str]) -> None:
    import shutil

    from shareflow.drivers.export import ganesha as gd
    from shareflow.drivers.export import ganesha_config as gc
    from shareflow.drivers.export.ganesha_server import GaneshaServer
    from shareflow.system.atomic_file import write_atomic

    server = GaneshaServer(stack.config.backend("b1").ganesha)
    if hasattr(gd, "export_file"):
        for sid in share_ids:
            gd.export_file(server, sid).unlink(missing_ok=True)
        shutil.rmtree(server.state_dir / gd.IDS_DIR, ignore_errors=True)
        return
    for name in (gd.STATE_FILE, gd.APPLIED_FILE):
        (server.state_dir / name).unlink(missing_ok=True)
    write_atomic(server.exports_path, gc.render_exports([]))


def backend_show(stack) -> dict:
    from shareflow.services.backends import BackendService

    view = BackendService(stack.db).get("b1")
    # The ensure's fields are the pool's (a backend view lists its pools).
    pools = getattr(view, "pools", None)
    return (pools[0] if pools else view).__dict__


class Probe:
    """Whether the restarted pool serves everything, from the NFS client."""

    def __init__(self, stack, share_ids: list[str]):
        self.stack = stack
        self.client = stack.nfs(0)
        self.ids = share_ids
        step = max(1, len(share_ids) // 20)
        self.sample = sorted(set(share_ids[::step]) | {share_ids[0], share_ids[-1]})

    def reads(self, sid: str) -> bool:
        return self.client.ls(f"/shares/{sid}").returncode == 0

    def served(self, since: datetime) -> bool:
        shown = backend_show(self.stack)
        if shown["ensure_finished_at"] is None or shown["ensure_finished_at"] < since:
            return False
        with ThreadPoolExecutor(4) as pool:
            return all(pool.map(self.reads, self.sample))

    def all_served(self) -> list[str]:
        with ThreadPoolExecutor(4) as pool:
            ok = list(pool.map(self.reads, self.ids))
        return [sid for sid, good in zip(self.ids, ok, strict=True) if not good]


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def _at(line: str) -> datetime | None:
    m = _STAMP.match(line)
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f") if m else None


def pool_log_phases(text: str) -> dict:
    """From the last start in the pool's log: how long the volume mounts and
    NFS-Ganesha's start (all exports read) took."""
    lines = text.splitlines()
    out = {}
    mounted = [line for line in lines if "volumes mounted" in line]
    if mounted:
        m = re.search(r"volumes mounted, ([0-9.]+) s", mounted[-1])
        out["mount_s"] = float(m.group(1)) if m else None
    begin = [i for i, line in enumerate(lines) if "ganesha.nfsd -F" in line]
    up = [i for i, line in enumerate(lines) if "is up (pid" in line]
    if begin and up and up[-1] > begin[-1]:
        a, b = _at(lines[begin[-1]]), _at(lines[up[-1]])
        if a and b:
            out["ganesha_start_s"] = round((b - a).total_seconds(), 2)
    return out


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def wait_served(stack, probe: Probe, since: datetime) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while not probe.served(since):
        if time.monotonic() > deadline:
            raise RuntimeError(f"not served within {READY_TIMEOUT} s; see {stack.base / 'pool.log'}")
        if stack.pool.poll() is not None:
            raise RuntimeError(f"the pool exited with {stack.pool.returncode}; see {stack.base / 'pool.log'}")
        time.sleep(0.05)


def timed_restart(stack, probe: Probe, *, cold: bool, before=None, kept: bool = False) -> dict:
    """``kept``: the pool being stopped runs with export_servers_at_exit =
    keep (the default outside ``shareflow run``): its NFS-Ganesha goes on
    serving; the sample is read while no pool runs, and the new pool adopts
    that server (same pid) - the figure is then the ensure, not a start."""
    unmounted = []
    served_while_down = []
    ganesha_pid = []

    def meanwhile():
        from shareflow.drivers.export.ganesha_server import GaneshaServer

        gs = GaneshaServer(stack.config.backend("b1").ganesha, timeout=300)
        if kept:
            ganesha_pid.append(gs.pid())
            with ThreadPoolExecutor(4) as pool:
                served_while_down.append(all(pool.map(probe.reads, probe.sample)))
        # The stack waits 60 s for the pool to stop, then kills it; an
        # NFS-Ganesha left running then would make the next start look fast.
        elif gs.is_running():
            log("NFS-Ganesha outlived the stopped pool; stopping it before the timed start")
            gs.stop()
        if cold:
            unmounted.append(unmount_under(Path(stack.btrfs.exports_dir)))
        if before is not None:
            before()

    # Not rounded: a quick restart ends within the second the last one did.
    since = datetime.utcnow()
    load_before = loadavg()
    cpu_before = os.times()
    spawned = None

    def meanwhile_then_mark():
        nonlocal spawned
        meanwhile()
        spawned = datetime.utcnow()

    stack.restart_pool(meanwhile_then_mark)  # returns right after the spawn
    t0 = time.monotonic()
    wait_served(stack, probe, since)
    served = time.monotonic() - t0
    shown = backend_show(stack)
    phases = pool_log_phases(stack.log("pool"))
    if kept:
        phases.pop("ganesha_start_s", None)  # none started: the log's last one is an earlier restart's
    extra = {}
    if kept:
        from shareflow.drivers.export.ganesha_server import GaneshaServer

        extra = {"served_while_no_pool_ran": served_while_down[0],
                 "ganesha_adopted": ganesha_pid[0] is not None
                 and GaneshaServer(stack.config.backend("b1").ganesha).pid() == ganesha_pid[0]}
    return {
        "kind": "kept" if kept else "cold" if cold else "warm",
        **extra,
        "restart_to_served_s": round(served, 2),
        "ensure_s": shown["ensure_seconds"],
        "ensure_volumes": shown["ensure_volumes"],
        "ensure_failures": shown["ensure_failures"],
        # Spawn to the ensure's start: the interpreter, imports, configuration.
        "process_start_s": round((shown["ensure_started_at"] - spawned).total_seconds(), 2),
        **phases,
        "mounts_removed_first": unmounted[0] if unmounted else 0,
        "load_before": load_before,
        "load_after": loadavg(),
        "bench_cpu_s": round(sum(os.times()[:4]) - sum(cpu_before[:4]), 2),
    }


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/restart.py", description=__doc__.splitlines()[0])
    p.add_argument("--shares", type=int, default=1000, help="shares on the backend (default 1000)")
    p.add_argument("--rounds", type=int, default=1,
                   help="warm+cold restart pairs after the first (cold) start (default 1)")
    p.add_argument("--workers", type=int, default=2, help="conductor workers (default 2)")
    p.add_argument("--pool-gb", type=int, default=64, help="sparse pool image size (default 64)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs) afterwards")
    p.add_argument("--kept", action="store_true",
                   help="then also time restarts of a pool whose NFS-Ganesha keeps serving "
                        "(conductor.export_servers_at_exit = keep, the default outside shareflow run)")
    args = p.parse_args(argv)
    if args.rounds < 0:
        p.error("--rounds must be >= 0")
    if args.shares < 1 or args.shares > 60000:
        p.error("--shares must be 1..60000 (Ganesha export ids are 16 bit)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print("bench/restart.py needs root (loop devices, mounts, namespaces)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="shareflow-bench-restart-"))
    infra = Infrastructure(base, workers=args.workers, pool_gb=args.pool_gb, log=log)
    results, problems, missing = [], [], []
    ids: list[str] = []
    try:
        with signals_as_interrupt():
            infra.start()
            stack = infra.stack
            ids = sorted(str(uuid.uuid4()) for _ in range(args.shares))

            def populate():
                t = time.monotonic()
                make_subvolumes(Path(stack.btrfs.mount_point) / "shares", ids)
                write_exports(stack, ids, stack.network.clients[0].address)
                log(f"{len(ids)} subvolumes and exports written ({time.monotonic() - t:.1f} s)")

            probe = Probe(stack, ids)
            # The first start after the shares were put in place is a cold one
            # (no volume mounted yet); then each round a warm and a cold one.
            plan = [(True, populate)] + [(cold, None) for _ in range(args.rounds) for cold in (False, True)]
            if args.kept:
                # A pool started with "keep" first (untimed), then restarts
                # whose NFS-Ganesha keeps serving: what an operator's restart
                # of shareflow-conductor does by default.
                plan.append((False, "switch"))
                plan += [(False, "kept")] * max(1, args.rounds)
            for i, (cold, before) in enumerate(plan):
                if before == "switch":
                    stack._export_servers_at_exit = "keep"
                    timed_restart(stack, probe, cold=False)
                    continue
                kept = before == "kept"
                res = timed_restart(stack, probe, cold=cold, before=None if kept else before, kept=kept)
                res["run"] = i
                results.append(res)
                log(f"restart {i} {res['kind']}: served after {res['restart_to_served_s']} s "
                    f"(ensure {res['ensure_s']} s, Ganesha start {res.get('ganesha_start_s')} s, "
                    f"load {res['load_before']} -> {res['load_after']})")
            for r in results:
                if r["kind"] == "kept" and not (r["served_while_no_pool_ran"] and r["ganesha_adopted"]):
                    problems.append(f"restart {r['run']}: exports not served throughout a kept restart: {r}")
            t = time.monotonic()
            missing = probe.all_served()
            log(f"every export read over NFS: {len(ids) - len(missing)}/{len(ids)} "
                f"({time.monotonic() - t:.1f} s)")
    except KeyboardInterrupt as e:
        problems.append(f"interrupted ({e})")
    finally:
        with signals_ignored():
            stack = infra.stack
            if stack is not None and stack.pool is not None:
                stack._terminate(stack.pool)  # Ganesha stops with it (unless --kept) ...
                try:
                    from shareflow.drivers.export.ganesha_server import GaneshaServer

                    # ...unless the pool was killed before it could stop it.
                    GaneshaServer(stack.config.backend("b1").ganesha, timeout=300).stop()
                    unmount_under(Path(stack.btrfs.exports_dir))
                    delete_subvolumes(Path(stack.btrfs.mount_point) / "shares", ids)
                    for sid in ids:
                        with contextlib.suppress(FileNotFoundError):
                            (Path(stack.btrfs.exports_dir) / sid).rmdir()
                    drop_exports(stack, ids)
                except OSError as e:
                    problems.append(f"bulk cleanup: {e!r}")
            problems += infra.stop()
            if not args.keep:
                left = remove_base(base)
                if left:
                    problems.append(left)
    out = {
        "shares": args.shares, "results": results, "not_served": missing[:20], "not_served_count": len(missing),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version()},
        "problems": problems,
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"shares: {args.shares}   cpus: {os.cpu_count()}   kernel: {platform.release()}")
        print(f"{'run':>5}  {'kind':<5} {'served s':>9} {'ensure s':>9} {'start s':>8} {'mount s':>8} "
              f"{'ganesha s':>9}  load before -> after")
        for r in results:
            print(f"{r['run']:>5}  {r['kind']:<5} {r['restart_to_served_s']:>9} {r['ensure_s']:>9} "
                  f"{r['process_start_s']:>8} {r.get('mount_s', '-')!s:>8} {r.get('ganesha_start_s', '-')!s:>9}  "
                  f"{r['load_before']} -> {r['load_after']}"
                  + (f"  served while no pool ran: {r['served_while_no_pool_ran']}, "
                     f"same NFS-Ganesha adopted: {r['ganesha_adopted']}" if r["kind"] == "kept" else ""))
        print(f"not served over NFS: {len(missing)}")
        for p in problems:
            print(f"problem: {p}")
    return 0 if results and not missing and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
