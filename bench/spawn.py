"""Process spawning alone: the worker's ProcessRunner vs. plain subprocess vs. xargs, no farm.

N runs of `true {i}` on --lanes threads, three ways, in one process:
- runner: thresher.worker.process.ProcessRunner (own process group, stdout/stderr pipes read
  line by line and the exit waited for on a pidfd, all by one poll() loop in the calling thread,
  peak RSS): what a worker lane does per task;
- subprocess: subprocess.run(argv, stdin/stdout/stderr to /dev/null, start_new_session=True);
- xargs: `xargs -P LANES -n 1 true` fed N numbers.
It shows how much of the farm's per-task cost (bench/throughput.py) is the spawn path itself.

Prints one JSON line:
{"bench": "spawn", "tasks": 2000, "lanes": 2, "runner_s": .., "subprocess_s": .., "xargs_s": ..,
 "runner_cpu_ms_per_task": .., "runner_parent_cpu_ms_per_task": .., ...}
where *_cpu_ms_per_task counts this process and the `true` processes, *_parent_cpu_ms_per_task
this process alone (the spawning side: what a worker pays per task besides the task itself).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from thresher.worker.process import ProcessRunner


def timed(fn: Any) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process + its children, of this process alone) of
    fn()."""
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    fn()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = [
        (a.ru_utime - b.ru_utime) + (a.ru_stime - b.ru_stime)
        for a, b in zip(after, before, strict=True)
    ]
    return wall, sum(cpu), cpu[0]


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--quiet-wait", type=float, default=120.0, metavar="S")
    args = parser.parse_args()
    true = shutil.which("true")
    if true is None:
        raise SystemExit("no `true` binary on PATH")
    env = dict(os.environ)

    def runner(i: int) -> None:
        result = ProcessRunner([true, str(i)], env=env, cwd=None, on_line=lambda _s, _t: None).run()
        if not result.succeeded:
            raise RuntimeError(f"`true {i}` did not succeed: {result}")

    def plain(i: int) -> None:
        subprocess.run(
            [true, str(i)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            check=True,
        )

    def on_threads(fn: Any) -> None:
        with ThreadPoolExecutor(args.lanes) as pool:
            list(pool.map(fn, range(1, args.tasks + 1)))

    numbers = "".join(f"{i}\n" for i in range(1, args.tasks + 1)).encode()

    def xargs() -> None:
        cmd = ["xargs", "-P", str(args.lanes), "-n", "1", true]
        subprocess.run(cmd, input=numbers, check=True)

    busy_before = c.wait_quiet(args.quiet_wait)
    results: dict[str, tuple[float, float, float]] = {}
    for name, fn in (
        ("xargs", xargs),
        ("subprocess", lambda: on_threads(plain)),
        ("runner", lambda: on_threads(runner)),
    ):
        results[name] = timed(fn)
        wall, cpu, own = results[name]
        c.log(f"{name}: {wall:.2f}s wall, {cpu:.2f}s CPU ({own:.2f}s of it this process)")

    n = args.tasks
    return {
        "bench": "spawn",
        "tasks": n,
        "lanes": args.lanes,
        **{f"{name}_s": round(wall, 3) for name, (wall, _, _) in results.items()},
        **{
            f"{name}_cpu_ms_per_task": round(cpu * 1000 / n, 2)
            for name, (_, cpu, _) in results.items()
        },
        # The spawning side alone (this process): what a worker pays per task besides the task.
        **{
            f"{name}_parent_cpu_ms_per_task": round(own * 1000 / n, 3)
            for name, (_, _, own) in results.items()
            if name != "xargs"
        },
        "runner_vs_xargs": round(results["runner"][0] / results["xargs"][0], 2),
        "cpu_busy_before_pct": busy_before,
        "machine": c.machine(),
        "date": c.stamp(),
    }


if __name__ == "__main__":
    c.run("spawn", main)
