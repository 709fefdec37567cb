#!/usr/bin/env python3
"""Export changes on one NFS-Ganesha with N exports: SIGHUP vs D-Bus.

Run from the repository root, as root::

    .venv/bin/python bench/exports.py [--exports 10,1000,5000] [--repeat 10] [--json]

For each N the script makes, in a fresh temporary directory, N plain
directories and the export driver's files for them (one file per export and
its export id, written directly in the driver's own format: the fast path of
the set-up; no btrfs subvolumes - Ganesha's VFS FSAL exports plain directories
of one filesystem just as well, and what is measured here is Ganesha's and
the driver's work, not the storage's). Then, twice - once with Ganesha on its
private D-Bus (``GaneshaServer.start``, what shareflow runs), once with the
same Ganesha started without a bus (the driver then falls back to rewriting
the include list and SIGHUP, which re-reads every export, as every change did
before) - it times, through ``GaneshaExportDriver`` itself:

* start: Ganesha start with N exports until it listens (what a restart costs);
* add: ``add_export`` of one more export (file written, then AddExport or SIGHUP);
* update: ``update_access`` changing its client list (UpdateExport or SIGHUP);
* remove: ``remove_export`` (RemoveExport or SIGHUP);

``--repeat`` times each (median and max reported, in ms), checking once with
a real NFS client (libnfs ``nfs-ls``) that an added export is served and a
removed one is not. Ganesha binds to 127.0.0.1 on a free port. Everything is
stopped by its own pid and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shareflow.config import GaneshaConfig  # noqa: E402
from shareflow.drivers.base import ClientRule  # noqa: E402
from shareflow.drivers.export import ganesha as driver_mod  # noqa: E402
from shareflow.drivers.export import ganesha_config as gc  # noqa: E402
from shareflow.drivers.export.ganesha_server import BINARY, READY_MARK, GaneshaServer, _listening  # noqa: E402

SERVER_ID = "bench"
#: How long one change may take (a SIGHUP re-reads every export: minutes at 5,000 here).
RELOAD_TIMEOUT = 900
ADDRESS = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


def populate(gs: GaneshaServer, data: Path, n: int) -> None:
    """N directories and their export files, in the driver's format."""
    gs.exports_dir.mkdir(parents=True, exist_ok=True)
    ids = gs.state_dir / driver_mod.IDS_DIR
    ids.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sid = str(uuid.uuid4())
        d = data / sid
        d.mkdir()
        spec = gc.ExportSpec(driver_mod.FIRST_EXPORT_ID + i, str(d), gc.pseudo_path(sid),
                             (ClientRule(ADDRESS, "ro"),))
        (gs.exports_dir / f"{sid}.conf").write_text(gc.render_export_file(spec))
        os.symlink(sid, ids / str(spec.export_id))


def start_without_bus(gs: GaneshaServer) -> subprocess.Popen:
    """Ganesha as an operator would run it on shareflow's config, no bus."""
    gs.write_config()
    offset = gs.log_path.stat().st_size if gs.log_path.exists() else 0
    env = {k: v for k, v in os.environ.items() if k != "DBUS_SYSTEM_BUS_ADDRESS"}
    proc = subprocess.Popen([BINARY, "-F", "-f", str(gs.config_path), "-L", str(gs.log_path),
                             "-p", str(gs.pid_path)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 1500
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{BINARY} exited at start")
        try:
            with open(gs.log_path, "rb") as f:
                f.seek(offset)
                ready = READY_MARK.encode() in f.read()
        except FileNotFoundError:
            ready = False
        if ready and _listening(proc.pid, gs.port) and gs.pid() == proc.pid:
            return proc
        time.sleep(0.01)
    raise SystemExit(f"{BINARY} did not start")


def nfs_ls(port: int, pseudo: str) -> bool:
    r = subprocess.run(["nfs-ls", f"nfs://{ADDRESS}{pseudo}?version=4&nfsport={port}"],
                       capture_output=True, timeout=30)
    return r.returncode == 0


def measure(mode: str, n: int, repeat: int, tmp: Path) -> dict:
    state = tmp / f"{mode}-{n}"
    data = tmp / f"data-{mode}-{n}"
    data.mkdir()
    port = free_port()
    gs = GaneshaServer(GaneshaConfig(address=ADDRESS, port=port, state_dir=state, netns="", managed=True),
                       timeout=1500, restart_wait=0.0)
    populate(gs, data, n)
    proc = None
    t0 = time.perf_counter()
    if mode == "dbus":
        gs.start()
    else:
        proc = start_without_bus(gs)
    start_s = time.perf_counter() - t0
    try:
        assert gs.on_bus() == (mode == "dbus")
        gs.timeout = RELOAD_TIMEOUT
        driver = driver_mod.GaneshaExportDriver({SERVER_ID: gs}, timeout=RELOAD_TIMEOUT)
        server = {"id": SERVER_ID}
        times: dict[str, list[float]] = {"add": [], "update": [], "remove": []}
        checked = False
        for _ in range(repeat):
            sid = str(uuid.uuid4())
            d = data / sid
            d.mkdir()
            t = time.perf_counter()
            driver.add_export(server, sid, str(d))
            times["add"].append(time.perf_counter() - t)
            t = time.perf_counter()
            driver.update_access(server, sid, [ClientRule(ADDRESS, "rw")])
            times["update"].append(time.perf_counter() - t)
            if not checked:
                assert nfs_ls(port, gc.pseudo_path(sid)), "an added export is not served"
            t = time.perf_counter()
            driver.remove_export(server, sid)
            times["remove"].append(time.perf_counter() - t)
            if not checked:
                assert not nfs_ls(port, gc.pseudo_path(sid)), "a removed export is still served"
                checked = True
        out = {"mode": mode, "exports": n, "repeat": repeat, "start_s": round(start_s, 2)}
        for op, values in times.items():
            out[f"{op}_p50_ms"] = round(statistics.median(values) * 1000, 1)
            out[f"{op}_max_ms"] = round(max(values) * 1000, 1)
        return out
    finally:
        gs.stop()
        if proc is not None:
            proc.wait(60)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/exports.py", description=__doc__.splitlines()[0])
    p.add_argument("--exports", default="10,1000,5000", help="comma-separated export counts (default 10,1000,5000)")
    p.add_argument("--repeat", type=int, default=10, help="changes of each kind per count and mode (default 10)")
    p.add_argument("--sighup-repeat", type=int, default=None,
                   help="changes of each kind with SIGHUP (default: --repeat; each re-reads every export)")
    p.add_argument("--modes", default="dbus,sighup", help="dbus, sighup or both (default)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    if os.geteuid() != 0:
        print("bench/exports.py: needs root (Ganesha, its bus)", file=sys.stderr)
        return 2
    counts = [int(x) for x in args.exports.split(",")]
    modes = args.modes.split(",")
    # SIGTERM (a timeout) ends the run through the finally clauses below,
    # which stop every server by its own pid and remove the directory.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="sf-bench-exports-"))
    load_before = os.getloadavg()
    results = []
    try:
        for n in counts:
            for mode in modes:
                repeat = args.sighup_repeat if mode == "sighup" and args.sighup_repeat else args.repeat
                r = measure(mode, n, repeat, tmp)
                results.append(r)
                if not args.json:
                    print(f"{mode:6} N={n:5}  start {r['start_s']:6.2f} s   "
                          f"add {r['add_p50_ms']:7.1f} (max {r['add_max_ms']:7.1f})   "
                          f"update {r['update_p50_ms']:7.1f} (max {r['update_max_ms']:7.1f})   "
                          f"remove {r['remove_p50_ms']:7.1f} (max {r['remove_max_ms']:7.1f}) ms   "
                          f"(x{r['repeat']})", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    env = {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
           "loadavg_after": [round(x, 2) for x in os.getloadavg()], "repeat": args.repeat,
           "ganesha": subprocess.run([BINARY, "-v"], capture_output=True, text=True).stdout.strip().splitlines()[0]
           if shutil.which(BINARY) else None}
    if args.json:
        print(json.dumps({"environment": env, "results": results}, indent=1))
    else:
        print(f"# {env['ganesha']}; {env['cpus']} CPUs; load average before {env['loadavg_before']}, "
              f"after {env['loadavg_after']}; median and max of (xR) changes each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
