"""Submit-to-start latency on an idle farm: one worker, one lane, its poll held open; against
Dask distributed in the same run (when it is installed: `pip install distributed`, for the
bench only, never a Thresher dependency).

N one-task jobs are submitted one after another; each is waited for and followed by a --gap
pause, so the worker is back in its held long-poll before the next submit. The task is
`bash -c 'echo $EPOCHREALTIME'`: its own first action prints the wall clock. Measured by the
client, by one method for both systems:

- submit to start: from the submit call to the time the task printed (its first action);
- submit to seen done: from the submit call to the client seeing the job done (Thresher, by
  default `--seen-by wait`: the client's `wait`, a long-poll the controller answers when the
  job ends; `--seen-by poll`, the method before it: the job's status read every --poll-every
  seconds on a kept-alive connection; Dask: the future's result arriving).

Dask's task runs the same command with `subprocess.run` in a LocalCluster of one worker process
with one thread. The controller's own record (job created_at to the attempt's created_at) is
reported too, as before. Prints one JSON line:
{"bench": "latency", "jobs": 50, "p50_ms": .., "start_p50_ms": .., "done_p50_ms": ..,
 "dask": {"start_p50_ms": .., "done_p50_ms": ..}, ...}
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

#: The task: its first action prints the wall clock (bash's own, no other process).
FIRST_ACTION = ["bash", "-c", "echo $EPOCHREALTIME"]


#: The steps of one job, by the clocks of one machine (p50 of each in `split_p50_ms`): the
#: submit call to the job's row (controller), to its attempt's row (the held poll's claim), to
#: the task's first action (the worker reading the answer and spawning), to the process's end
#: (by the duration the worker measured), to the finish stored (the worker noticing the exit and
#: reporting it, the commit), to the client seeing the job done.
SPLIT = ("submit", "claim", "spawn", "task", "report", "seen")


def _ms(values: list[float], p: float) -> float | None:
    return round(c.percentile(values, p), 1) if values else None


def _first_action() -> float:
    """Dask's task: the same command, its printed clock returned."""
    import subprocess

    out = subprocess.run(FIRST_ACTION, capture_output=True, text=True, check=True).stdout
    return float(out)


def run_dask(args: argparse.Namespace) -> dict[str, Any] | None:
    """The same jobs on Dask distributed: a LocalCluster of one worker process, one thread."""
    try:
        from distributed import Client as DaskClient
        from distributed import LocalCluster
    except ImportError:
        c.log("Dask distributed is not installed: no yardstick (pip install distributed)")
        return None
    start_ms: list[float] = []
    done_ms: list[float] = []
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        DaskClient(cluster) as dask,
    ):
        dask.submit(_first_action, pure=False).result()  # warm: the function is shipped once
        for _ in range(args.jobs):
            t0, wall0 = time.perf_counter(), time.time()
            printed = dask.submit(_first_action, pure=False).result()
            done_ms.append((time.perf_counter() - t0) * 1000)
            start_ms.append((printed - wall0) * 1000)
            time.sleep(args.gap)
    return {
        "start_p50_ms": _ms(start_ms, 50),
        "done_p50_ms": _ms(done_ms, 50),
        "start_p95_ms": _ms(start_ms, 95),
        "done_p95_ms": _ms(done_ms, 95),
        "topology": "distributed.LocalCluster: scheduler in the bench's process, one worker "
        "process with one thread; the task runs the same command with subprocess.run",
    }


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.2, help="seconds idle between jobs")
    parser.add_argument(
        "--seen-by",
        choices=("wait", "poll"),
        default="wait",
        help="how the client learns of the end: the job's wait (pushed), or polling its status",
    )
    parser.add_argument("--poll-every", type=float, default=0.001, help="job status poll, seconds")
    parser.add_argument("--timeout", type=float, default=60.0, help="per job")
    parser.add_argument("--no-dask", action="store_true", help="leave out the Dask yardstick")
    c.add_common_options(parser)
    args = parser.parse_args()

    latencies_ms: list[float] = []
    submit_rtt_ms: list[float] = []
    start_to_done_ms: list[float] = []
    seen_start_ms: list[float] = []
    seen_done_ms: list[float] = []
    split: dict[str, list[float]] = {k: [] for k in SPLIT}
    with (
        c.temp_dir(args.keep) as tmp,
        c.database(args, tmp) as (db_url, db),
        c.controller(tmp / "data", db_url) as ctl,
        ctl.client() as client,
        c.worker(ctl, name="bench-1", lanes=1, ahead=None, work_dir=tmp / "work") as wrk,
    ):
        pids = {"controller": ctl.pid, "worker": wrk.pid}
        c.wait_online(client, ["bench-1"])
        busy_before = c.wait_quiet(args.quiet_wait)
        time.sleep(0.5)  # the worker's poll is held now
        c.log(f"submitting {args.jobs} one-task jobs one after another")
        for i in range(args.jobs):
            t0, wall0 = time.perf_counter(), time.time()
            job = client.submit(f"bench-latency-{i}", FIRST_ACTION, frames="1", chunk=1)
            submit_rtt_ms.append((time.perf_counter() - t0) * 1000)
            if args.seen_by == "wait":
                done = client.wait(job.id, timeout_s=args.timeout)
            else:
                done = c.wait_job(
                    client, job.id, every_s=args.poll_every, timeout_s=args.timeout, pids=pids
                )
            seen_done_ms.append((time.perf_counter() - t0) * 1000)
            if done.status != "succeeded":
                raise SystemExit(f"job {job.id} ended {done.status}")
            printed = [x.text for x in client.log(job.id, 0) if x.stream == "stdout"]
            seen_start_ms.append((float(printed[0]) - wall0) * 1000)
            attempt = client.task(job.id, 0).attempts_detail[0]
            latencies_ms.append((attempt.created_at - job.created_at) * 1000)
            if attempt.ended_at is not None:
                start_to_done_ms.append((attempt.ended_at - attempt.created_at) * 1000)
                marks = (
                    wall0,
                    job.created_at,
                    attempt.created_at,
                    float(printed[0]),
                    float(printed[0]) + (attempt.duration_s or 0.0),
                    attempt.ended_at,
                    wall0 + seen_done_ms[-1] / 1000,
                )
                for key, (a, b) in zip(SPLIT, itertools.pairwise(marks), strict=True):
                    split[key].append((b - a) * 1000)
            time.sleep(args.gap)

    dask = run_dask(args) if not args.no_dask else None
    p50 = c.percentile(latencies_ms, 50)
    p95 = c.percentile(latencies_ms, 95)
    c.log(f"submit-to-start: p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {max(latencies_ms):.1f} ms")
    return {
        "bench": "latency",
        "jobs": args.jobs,
        "p50_ms": round(p50, 1),
        "p95_ms": round(p95, 1),
        "max_ms": round(max(latencies_ms), 1),
        "mean_ms": round(statistics.fmean(latencies_ms), 1),
        "goal_p50_ms": 50,
        "goal_p95_ms": 200,
        "start_p50_ms": _ms(seen_start_ms, 50),
        "done_p50_ms": _ms(seen_done_ms, 50),
        "start_p95_ms": _ms(seen_start_ms, 95),
        "done_p95_ms": _ms(seen_done_ms, 95),
        "dask": dask,
        "method": "client clock: submit call to the task's printed first action (start), and "
        "to the client seeing it done (done)",
        "seen_by": args.seen_by,
        "submit_rtt_p50_ms": round(c.percentile(submit_rtt_ms, 50), 1),
        "start_to_finish_p50_ms": round(c.percentile(start_to_done_ms, 50), 1)
        if start_to_done_ms
        else None,
        "split_p50_ms": {k: _ms(v, 50) for k, v in split.items()},
        "db": db,
        "cpu_busy_before_pct": busy_before,
        "topology": c.TOPOLOGY,
        "machine": c.machine(),
        "date": c.stamp(),
    }


if __name__ == "__main__":
    c.run("latency", main)
