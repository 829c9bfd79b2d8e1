"""Short-task throughput: N one-frame tasks of `true` on one worker with 2 lanes vs. `xargs -P 2`.

Both sides spawn the `true` binary once per task with one argument (the frame number):
the farm runs `true {frame}`, xargs runs `seq N | xargs -P 2 -n 1 true` (the numbers are fed
to xargs from this script). The farm is stopped before xargs runs, so each has the machine alone.

farm_s is the controller's own record: job finished_at - job created_at (the job is created inside
the submit request, and finished_at is written when the last finish report is stored), so how the
bench learns of the end adds no wait to it (only load: see below). farm_wall_s is measured here,
from just before the submit call to the moment the bench saw the job succeeded: by default
through the job's wait, a held request the controller answers when the job ends (`--seen-by
poll`: its status polled every --poll-every seconds, as before 2026-12-06 evening; each status
read costs the controller's farm thread ~10 ms on PostgreSQL, so the polling slowed the run it
measured).

CPU seconds are also reported, as they are less sensitive to other load on the machine than wall
time: the controller's and the worker's own CPU while the job ran, the PostgreSQL server's (its
processes serving the bench's database, when it runs on this machine), the CPU of the task
processes (the worker's reaped children) and xargs' children.

Prints one JSON line:
{"bench": "throughput", "tasks": 2000, "farm_s": .., "xargs_s": .., "ratio": .., "goal_ratio": 1.3,
 "db": "sqlite", "topology": .., ...}
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def run_xargs(tasks: int, lanes: int, true: str) -> tuple[float, float]:
    """(wall seconds, children's CPU seconds) of `seq TASKS | xargs -P LANES -n 1 true`."""
    numbers = "".join(f"{i}\n" for i in range(1, tasks + 1)).encode()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(["xargs", "-P", str(lanes), "-n", "1", true], input=numbers, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def pg_server_pids(db_url: str | None) -> list[int]:
    """The PostgreSQL server's processes (its postmaster and every child) that serve the
    bench's database, found by the database's name in a backend's title; [] on SQLite."""
    if not db_url:
        return []
    import psutil

    name = db_url.rsplit("/", 1)[-1].split("?", 1)[0]
    for proc in psutil.process_iter(["cmdline"]):
        title = " ".join(proc.info["cmdline"] or ())
        if title.startswith("postgres:") and f" {name} " in f" {title} ":
            parent = proc.parent()
            if parent is not None:
                return [parent.pid, *(p.pid for p in parent.children())]
    return []


def server_cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of those of `pids` still running (a backend gone since is left out)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument(
        "--ahead",
        type=int,
        default=None,
        help="tasks a worker holds ahead per lane (thresher worker --ahead); default: its default",
    )
    parser.add_argument(
        "--seen-by",
        choices=("wait", "poll"),
        default="wait",
        help="how the bench learns of the job's end: its wait (pushed: one held request), or "
        "polling its status every --poll-every seconds (each poll is a read of the job's counts "
        "on the controller's farm thread: ~10 ms on PostgreSQL, taken from the run it measures)",
    )
    parser.add_argument("--poll-every", type=float, default=0.1, help="job status poll, seconds")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="sample controller and worker with `py-spy record` from submit to done: collapsed "
        "stacks in DIR/controller.txt and DIR/worker.txt (see bench/_profile_summary.py)",
    )
    c.add_common_options(parser)
    return parser.parse_args()


def main() -> dict[str, Any]:
    args = parse_args()
    true = shutil.which("true")
    if true is None:
        raise SystemExit("no `true` binary on PATH")

    with (
        c.temp_dir(args.keep) as tmp,
        c.database(args, tmp) as (db_url, db),
        c.controller(tmp / "data", db_url) as ctl,
        ctl.client() as client,
        c.worker(
            ctl, name="bench-1", lanes=args.lanes, ahead=args.ahead, work_dir=tmp / "work"
        ) as wrk,
    ):
        c.wait_online(client, ["bench-1"])
        time.sleep(0.5)  # let the worker's poll settle into its long-poll hold
        busy_before = c.wait_quiet(args.quiet_wait)
        pids = {"controller": ctl.pid, "worker": wrk.pid}
        with c.py_spy(pids, args.profile):
            cpu0 = {name: c.cpu_seconds(pid) for name, pid in pids.items()}
            tasks_cpu0 = c.children_cpu_seconds(wrk.pid)
            pg_pids = pg_server_pids(db_url)
            pg_cpu0 = server_cpu_seconds(pg_pids)
            c.log(f"submitting {args.tasks} tasks of `true {{frame}}`")
            t0 = time.perf_counter()
            job = client.submit(
                "bench-throughput", [true, "{frame}"], frames=f"1-{args.tasks}", chunk=1
            )
            if args.seen_by == "wait":
                done = client.wait(job.id, timeout_s=args.timeout)
                if done.status not in ("succeeded", "failed", "canceled"):
                    c.dump_stacks(pids)
            else:
                done = c.wait_job(
                    client,
                    job.id,
                    every_s=args.poll_every,
                    timeout_s=args.timeout,
                    stall_s=60.0,
                    pids=pids,
                )
            farm_wall_s = time.perf_counter() - t0
            cpu = {name: c.cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
            tasks_cpu = c.children_cpu_seconds(wrk.pid) - tasks_cpu0
            pg_cpu = server_cpu_seconds(pg_pids) - pg_cpu0
        if done.status != "succeeded" or done.finished_at is None:
            raise RuntimeError(f"job ended {done.status}: {done.counts}")
        farm_s = done.finished_at - done.created_at
        c.log(f"farm: {farm_s:.2f}s (controller record), {farm_wall_s:.2f}s (wall)")
    sent = c.worker_sent(wrk)  # logged when it stopped

    # The farm is stopped: xargs gets the machine to itself, as the farm had.
    busy_before = max(busy_before, c.wait_quiet(args.quiet_wait))
    xargs_s, xargs_cpu_s = run_xargs(args.tasks, args.lanes, true)
    c.log(f"xargs -P {args.lanes}: {xargs_s:.2f}s")

    return {
        "bench": "throughput",
        "tasks": args.tasks,
        "lanes": args.lanes,
        "ahead": args.ahead,
        "farm_s": round(farm_s, 3),
        "farm_wall_s": round(farm_wall_s, 3),
        "xargs_s": round(xargs_s, 3),
        "ratio": round(farm_s / xargs_s, 2),
        "goal_ratio": 1.3,
        "tasks_per_s": round(args.tasks / farm_s, 1),
        "controller_cpu_ms_per_task": round(cpu["controller"] * 1000 / args.tasks, 2),
        "worker_cpu_ms_per_task": round(cpu["worker"] * 1000 / args.tasks, 2),
        "postgresql_cpu_ms_per_task": round(pg_cpu * 1000 / args.tasks, 2) if pg_pids else None,
        "task_processes_cpu_ms_per_task": round(tasks_cpu * 1000 / args.tasks, 2),
        "xargs_children_cpu_ms_per_task": round(xargs_cpu_s * 1000 / args.tasks, 2),
        "worker_sent": sent,
        "seen_by": args.seen_by,
        "succeeded": done.counts.succeeded,
        "db": db,
        "profiled": bool(args.profile),
        "cpu_busy_before_pct": busy_before,
        "topology": c.TOPOLOGY,
        "machine": c.machine(),
        "date": c.stamp(),
    }


if __name__ == "__main__":
    c.run("throughput", main)
