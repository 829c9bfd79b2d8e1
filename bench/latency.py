"""Submit-to-start latency on an idle farm: one worker, one lane, its poll held open.

N one-task jobs of `true` are submitted one after another; each is waited for (status polled
every --poll-every seconds) and followed by a --gap pause, so the worker is back in its held
long-poll before the next submit. Latency is measured with the controller's own clock: the job's
created_at (written inside the submit request) to its task's first attempt's created_at (written
when the claim hands the task to the worker). The client-side submit round trip is reported too.

Prints one JSON line:
{"bench": "latency", "jobs": 50, "p50_ms": .., "p95_ms": .., "goal_p50_ms": 50, "goal_p95_ms": 200,
 "db": "sqlite", ...}
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.2, help="seconds idle between jobs")
    parser.add_argument("--poll-every", type=float, default=0.02, help="job status poll, seconds")
    parser.add_argument("--timeout", type=float, default=60.0, help="per job")
    c.add_common_options(parser)
    args = parser.parse_args()

    latencies_ms: list[float] = []
    submit_rtt_ms: list[float] = []
    start_to_done_ms: list[float] = []
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
            t0 = time.perf_counter()
            job = client.submit(f"bench-latency-{i}", ["true"], frames="1", chunk=1)
            submit_rtt_ms.append((time.perf_counter() - t0) * 1000)
            done = c.wait_job(
                client, job.id, every_s=args.poll_every, timeout_s=args.timeout, pids=pids
            )
            if done.status != "succeeded":
                raise SystemExit(f"job {job.id} ended {done.status}")
            attempt = client.task(job.id, 0).attempts_detail[0]
            latencies_ms.append((attempt.created_at - job.created_at) * 1000)
            if attempt.ended_at is not None:
                start_to_done_ms.append((attempt.ended_at - attempt.created_at) * 1000)
            time.sleep(args.gap)

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
        "submit_rtt_p50_ms": round(c.percentile(submit_rtt_ms, 50), 1),
        "start_to_finish_p50_ms": round(c.percentile(start_to_done_ms, 50), 1)
        if start_to_done_ms
        else None,
        "db": db,
        "cpu_busy_before_pct": busy_before,
        "topology": c.TOPOLOGY,
        "machine": c.machine(),
        "date": c.stamp(),
    }


if __name__ == "__main__":
    c.run("latency", main)
