#!/usr/bin/env python3
"""NFS-Ganesha's export creation against the host's mount table vs its own.

Run from the repository root, as root, in a mount namespace of its own (so
that nothing it mounts can outlive it on the host)::

    unshare -m --propagation private .venv/bin/python bench/ganesha_mtab.py \\
        [--other-mounts 0,1000] [--exports 10] [--adds 20] [--modes host,own] [--json]

In a temporary directory made a *shared* mount (what systemd makes every
mount; a new share's mount then reaches a Ganesha in a namespace of its own)
it makes a btrfs pool on a sparse loop image (no quotas: not what is
measured), and for each count M of ``--other-mounts``: M subvolumes
bind-mounted on ``other/`` (the mounts of shares not on this server, or of
anything else on the host), N subvolumes mounted on ``exports/`` and
exported from the start. Then for each mode - ``host``: Ganesha reads the
host's mount table, as before; ``own``: ``mount_table = "own"``
(``shareflow/drivers/export/ganesha_mtab.py``); ``replay``: a prototype,
``own`` started with no exports, then every export file added over D-Bus
the way the driver adds one (its start time is until the last is added) - it starts one Ganesha on
127.0.0.1 on its private bus through ``GaneshaServer`` and adds ``--adds``
exports through ``GaneshaExportDriver.add_export``, each a subvolume created
and mounted *after* Ganesha started (the way a share is created), then
removes them. Reported: the start (wall seconds and Ganesha's CPU), and per
add the driver's wall time and Ganesha's CPU (utime+stime from
/proc/PID/stat, 10 ms ticks, so the mean over the adds). Once per mode an
NFS client (``nfs-ls``) reads an added export and a start export. The
number of lines of the namespace's own mount table is printed too: the host's
mounts are in it (copies), and they are what the ``host`` mode reads.
Everything is unmounted and removed at the end, by path, in this namespace.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from exports import free_port, nfs_ls  # noqa: E402
from restart import delete_subvolumes, make_subvolumes  # noqa: E402

from shareflow.config import GaneshaConfig  # noqa: E402
from shareflow.drivers.base import ClientRule  # noqa: E402
from shareflow.drivers.export import ganesha as driver_mod  # noqa: E402
from shareflow.drivers.export import ganesha_config as gc  # noqa: E402
from shareflow.drivers.export.ganesha_server import GaneshaServer  # noqa: E402
from shareflow.system import mounts  # noqa: E402

ADDRESS = "127.0.0.1"
SERVER_ID = "bench"
TIMEOUT = 1500.0
MS_SHARED = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def table_lines() -> int:
    with open("/proc/self/mounts") as f:
        return sum(1 for _ in f)


def make_shared(path: Path) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    mounts.bind_mount(path, path)
    if libc.mount(None, os.fsencode(path), None, MS_SHARED, None) != 0:
        raise OSError(ctypes.get_errno(), f"make-shared {path}")


def mount_subvolumes(pool: Path, target: Path, names: list[str]) -> None:
    target.mkdir(exist_ok=True)
    make_subvolumes(pool / "shares", names)
    for name in names:
        (target / name).mkdir()
        mounts.bind_mount(pool / "shares" / name, target / name, flags="nodev,nosuid")


def unmount_all(target: Path, names: list[str]) -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    for name in names:
        libc.umount2(os.fsencode(target / name), 0)


def write_export_files(gs: GaneshaServer, exports: Path, names: list[str]) -> None:
    gs.exports_dir.mkdir(parents=True, exist_ok=True)
    ids = gs.state_dir / driver_mod.IDS_DIR
    ids.mkdir(parents=True, exist_ok=True)
    for i, sid in enumerate(names):
        spec = gc.ExportSpec(driver_mod.FIRST_EXPORT_ID + i, str(exports / sid), gc.pseudo_path(sid),
                             (ClientRule(ADDRESS, "rw"),))
        (gs.exports_dir / f"{sid}.conf").write_text(gc.render_export_file(spec))
        os.symlink(sid, ids / str(spec.export_id))


def run_mode(mode: str, base: Path, pool: Path, start_names: list[str], adds: int, tag: str) -> dict:
    exports = base / "exports"
    state = base / f"ganesha-{mode}-{tag}"
    port = free_port()
    replay = mode == "replay"
    gs = GaneshaServer(GaneshaConfig(address=ADDRESS, port=port, state_dir=state, netns="", managed=True,
                                     mount_table="own" if replay else mode), timeout=TIMEOUT, restart_wait=0.0)
    if not replay:
        write_export_files(gs, exports, start_names)
    t0 = time.perf_counter()
    gs.start()
    if replay:
        # A prototype of a start that creates every export over D-Bus,
        # each with a table of its own line: Ganesha starts empty, then
        # each export file is added as the driver adds one.
        write_export_files(gs, exports, start_names)
        mgr = gs.export_manager()
        for conf in gs.export_files():
            spec = gc.parse_export_file(conf.read_text())
            with gs.creating_export(conf.stem, spec.path):
                mgr.add(str(conf), spec.export_id)
    start_s = time.perf_counter() - t0
    pid = gs.pid()
    start_cpu = cpu_seconds(pid)
    added: list[str] = []
    try:
        driver = driver_mod.GaneshaExportDriver({SERVER_ID: gs}, timeout=TIMEOUT)
        server = {"id": SERVER_ID}
        walls, cpus = [], []
        for _ in range(adds):
            sid = str(uuid.uuid4())
            mount_subvolumes(pool, exports, [sid])  # after the start: must reach Ganesha's namespace
            added.append(sid)
            c, t = cpu_seconds(pid), time.perf_counter()
            driver.add_export(server, sid, str(exports / sid))
            walls.append(time.perf_counter() - t)
            cpus.append(cpu_seconds(pid) - c)
        served = True
        if added:
            driver.update_access(server, added[0], [ClientRule(ADDRESS, "rw")])
            served &= nfs_ls(port, gc.pseudo_path(added[0]))
        if start_names:
            served &= nfs_ls(port, gc.pseudo_path(start_names[-1]))
        for sid in added:
            driver.remove_export(server, sid)
        return {
            "mode": mode, "table_lines": table_lines(), "start_exports": len(start_names),
            "start_s": round(start_s, 2), "start_cpu_s": round(start_cpu, 2), "adds": adds,
            "add_p50_ms": round(statistics.median(walls) * 1000, 1) if walls else None,
            "add_max_ms": round(max(walls) * 1000, 1) if walls else None,
            "ganesha_cpu_per_add_ms": round(sum(cpus) / len(cpus) * 1000, 1) if cpus else None,
            "nfs_read_ok": served,
        }
    finally:
        gs.stop()
        unmount_all(exports, added)
        delete_subvolumes(pool / "shares", added)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/ganesha_mtab.py", description=__doc__.splitlines()[0])
    p.add_argument("--other-mounts", default="0,1000", help="comma-separated counts of unrelated mounts")
    p.add_argument("--exports", type=int, default=10, help="exports served from the start")
    p.add_argument("--adds", type=int, default=20, help="exports added over D-Bus per mode")
    p.add_argument("--modes", default="host,own")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    base = Path(tempfile.mkdtemp(prefix="shareflow-mtab-"))
    pool = base / "pool"
    image = base / "pool.img"
    shared = False
    results = []
    other, start_names = [], []
    try:
        make_shared(base)
        shared = True
        with open(image, "wb") as f:
            f.truncate(8 << 30)
        subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True)
        pool.mkdir()
        subprocess.run(["mount", "-o", "loop", str(image), str(pool)], check=True)
        (pool / "shares").mkdir()
        start_names = [str(uuid.uuid4()) for _ in range(args.exports)]
        mount_subvolumes(pool, base / "exports", start_names)
        for m in (int(x) for x in args.other_mounts.split(",")):
            more = [str(uuid.uuid4()) for _ in range(m - len(other))]
            mount_subvolumes(pool, base / "other", more)
            other += more
            for mode in args.modes.split(","):
                r = run_mode(mode, base, pool, start_names, args.adds, f"{m}")
                r["other_mounts"] = m
                r["load"] = os.getloadavg()[0]
                results.append(r)
                print(json.dumps(r) if args.json else
                      f"other mounts {m:>5} (table {r['table_lines']} lines) {mode:>4}: start {r['start_s']} s"
                      f" (Ganesha CPU {r['start_cpu_s']} s) with {r['start_exports']} exports; add p50"
                      f" {r['add_p50_ms']} ms, max {r['add_max_ms']} ms, Ganesha CPU/add"
                      f" {r['ganesha_cpu_per_add_ms']} ms; NFS read ok: {r['nfs_read_ok']}; load {r['load']:.1f}",
                      flush=True)
    finally:
        unmount_all(base / "other", other)
        unmount_all(base / "exports", start_names)
        if pool.is_dir():
            subprocess.run(["umount", str(pool)], check=False)
        if shared:
            subprocess.run(["umount", str(base)], check=False)
        shutil.rmtree(base, ignore_errors=True)
    return 0 if all(r["nfs_read_ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
