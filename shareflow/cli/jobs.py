"""``shareflow jobs list|show``: what the conductors are doing and did."""

from __future__ import annotations

import contextlib
import json

from shareflow import config as config_mod
from shareflow.engine.boards import Boards
from shareflow.engine.zk import start_client, stop_client, translate_errors
from shareflow.exceptions import ShareflowError
from shareflow.wiring import Services, utcnow


def register(sub) -> None:
    p = sub.add_parser("jobs", help="inspect jobs")
    jsub = p.add_subparsers(dest="jobs_command", required=True)
    ls = jsub.add_parser("list", help="jobs, newest first, with their owning conductor")
    ls.add_argument("--state", action="append", help="only jobs in this state (repeatable)")
    ls.add_argument("--resource", help="only jobs on this resource id")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=list_jobs)
    show = jsub.add_parser("show", help="one job and each step of its flow")
    show.add_argument("job", help="job id (ours or the jobboard's)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=show_job)


def _live_owners(config, persistence) -> dict[str, str]:
    """board job id -> current claim owner, straight from ZooKeeper (our
    records keep the last owner, which may have died since)."""
    owners: dict[str, str] = {}
    client = start_client(config.zookeeper)
    boards = Boards(client, config.zookeeper.chroot, [b.name for b in config.backends], persistence)
    try:
        boards.connect()
        for _, board in boards.items():
            with translate_errors("listing jobs"):
                for job in board.iterjobs(ensure_fresh=True):
                    owner = board.find_owner(job)
                    if owner:
                        owners[job.uuid] = owner
    finally:
        boards.close()
        stop_client(client)
    return owners


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.0f}h"


def list_jobs(args) -> int:
    config = config_mod.load(args.config)
    services = Services(config)
    try:
        jobs = services.jobs.list(states_in=args.state, resource_id=args.resource, limit=args.limit)
        owners: dict[str, str] = {}
        note = ""
        with contextlib.suppress(ShareflowError):
            owners = _live_owners(config, services.persistence)
        if not owners and any(j.state in ("posted", "running") for j in jobs):
            note = "(live owners unavailable: showing the last recorded owner)"
        now = utcnow()
        rows = []
        for j in jobs:
            owner = owners.get(j.board_job_id or "") or j.owner or ""
            rows.append({
                "id": j.id, "operation": j.operation, "resource": f"{j.resource_type}:{j.resource_id}",
                "state": j.state, "owner": owner, "age": _age(services.jobs.age(j, now)),
            })
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        headers = ["id", "operation", "resource", "state", "owner", "age"]
        widths = {h: max([len(h)] + [len(str(r[h])) for r in rows]) for h in headers}
        print("  ".join(h.upper().ljust(widths[h]) for h in headers))
        for r in rows:
            print("  ".join(str(r[h]).ljust(widths[h]) for h in headers))
        if note:
            print(note)
        return 0
    finally:
        services.close()


def show_job(args) -> int:
    config = config_mod.load(args.config)
    services = Services(config)
    try:
        view = services.jobs.show(args.job)
        j = view.job
        record = {
            "id": j.id, "board_job_id": j.board_job_id, "operation": j.operation,
            "resource": f"{j.resource_type}:{j.resource_id}", "backend": j.backend,
            "project_id": j.project_id, "request_id": j.request_id, "state": j.state,
            "flow_state": view.flow_state, "owner": j.owner,
            "created_at": j.created_at.isoformat() if j.created_at else None,
            "started_at": j.started_at.isoformat() if j.started_at else None,
            "finished_at": j.finished_at.isoformat() if j.finished_at else None,
            "failed_step": j.failed_step,
            "steps": [
                {"name": s.name, "state": s.state, "duration": s.duration, "failure": s.failure}
                for s in view.steps
            ],
        }
        if args.json:
            print(json.dumps(record, indent=2))
            return 0
        for key in ("id", "board_job_id", "operation", "resource", "backend", "project_id",
                    "request_id", "state", "flow_state", "owner", "created_at", "started_at",
                    "finished_at", "failed_step"):
            print(f"{key:>13}: {record[key] if record[key] is not None else '-'}")
        print()
        width = max([4] + [len(s.name) for s in view.steps])
        print(f"{'STEP'.ljust(width)}  {'STATE':<10}  {'DURATION':>9}  FAILURE")
        for s in view.steps:
            duration = f"{s.duration * 1000:.1f}ms" if s.duration is not None else "-"
            print(f"{s.name.ljust(width)}  {s.state:<10}  {duration:>9}  {s.failure or ''}")
        if j.failure:
            print(f"\nfailure detail:\n{j.failure}")
        return 0
    finally:
        services.close()
