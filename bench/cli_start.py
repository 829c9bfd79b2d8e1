"""How long the `thresher` CLI takes to start, against the imports it cannot do without.

Three commands, each timed wall clock from spawn to exit, --runs times, alternating (every round
runs all three, the first of them rotating from round to round):
- yardstick: `python -c "import httpx, typer, rich"`, what any client command must import;
- help: `thresher --help`;
- jobs: `thresher jobs` against a real controller (`thresher controller` on a free port of
  127.0.0.1, SQLite in a temp dir, one waiting job), URL and token from the environment.
One round of all three runs first and is not counted (it fills the page cache).

Prints one JSON line:
{"bench": "cli_start", "runs": 20,
 "yardstick": {"median_s": .., "min_s": .., "max_s": .., "cpu_median_s": ..},
 "help": {"median_s": .., "min_s": .., "max_s": .., "cpu_median_s": .., "ratio": ..,
          "ratio_min": .., "cpu_ratio": ..},
 "jobs": {...}, "goal_ratio": 1.5, ...}
where ratio is the command's median wall time over the yardstick's, ratio_min the same for the
fastest runs, and cpu_ratio for the median CPU time (user + system) of the process: the last two
are the least disturbed by other load on the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

YARDSTICK = "import httpx, typer, rich"
GOAL_RATIO = 1.5


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds from spawning `argv` to its exit, its CPU seconds); a failure stops the
    bench."""
    cpu_before = children_cpu_s()
    started = time.perf_counter()
    done = subprocess.run(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return elapsed, children_cpu_s() - cpu_before


def spread(runs: list[tuple[float, float]]) -> dict[str, float]:
    wall = [seconds for seconds, _ in runs]
    return {
        "median_s": round(statistics.median(wall), 4),
        "min_s": round(min(wall), 4),
        "max_s": round(max(wall), 4),
        "cpu_median_s": round(statistics.median(cpu for _, cpu in runs), 4),
    }


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs of each command")
    parser.add_argument("--quiet-wait", type=float, default=120.0, metavar="S")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir")
    args = parser.parse_args()

    with c.temp_dir(args.keep) as tmp, c.controller(tmp / "data", None) as ctl:
        with ctl.client() as client:
            client.submit("bench-cli-start", ["true"], frames="1")  # a row for `jobs` to print
        env = {**os.environ, "THRESHER_URL": ctl.url, "THRESHER_TOKEN": ctl.token}
        env["COLUMNS"] = "120"  # the same table layout whatever runs the bench
        commands = {
            "yardstick": [sys.executable, "-c", YARDSTICK],
            "help": [*c.thresher_argv(), "--help"],
            "jobs": [*c.thresher_argv(), "jobs"],
        }
        names = list(commands)
        for name in names:  # warm-up, not counted
            timed(commands[name], env)
        busy_before = c.wait_quiet(args.quiet_wait)
        seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        c.log(f"timing {', '.join(names)}: {args.runs} rounds")
        for round_ in range(args.runs):
            first = round_ % len(names)
            for name in names[first:] + names[:first]:
                seconds[name].append(timed(commands[name], env))

    yard = spread(seconds["yardstick"])
    result: dict[str, Any] = {"bench": "cli_start", "runs": args.runs, "yardstick": yard}
    for name in ("help", "jobs"):
        result[name] = spread(seconds[name])
        result[name]["ratio"] = round(result[name]["median_s"] / yard["median_s"], 2)
        result[name]["ratio_min"] = round(result[name]["min_s"] / yard["min_s"], 2)
        result[name]["cpu_ratio"] = round(result[name]["cpu_median_s"] / yard["cpu_median_s"], 2)
        c.log(
            f"{name}: median {result[name]['median_s'] * 1000:.0f} ms, "
            f"{result[name]['ratio']} x the yardstick ({yard['median_s'] * 1000:.0f} ms)"
        )
    result |= {
        "goal_ratio": GOAL_RATIO,
        "yardstick_command": f'python -c "{YARDSTICK}"',
        "cpu_busy_before_pct": busy_before,
        "machine": c.machine(),
        "date": c.stamp(),
    }
    return result


if __name__ == "__main__":
    c.run("cli_start", main)
