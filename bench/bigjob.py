"""A 1,000,000-frame job (chunk 1): submit time, controller RSS growth, task page fetch times.

The controller runs as its own process (`thresher controller`), so the RSS measured (psutil) is
the controller's alone. Before the baseline is taken, a 1-frame job is submitted and its task page
fetched once, so one-off warm-up costs (lazy imports, first-use caches) are not charged to the
big job. RSS is read again after the submit and after the page fetches; the growth reported is the
larger of the two. No worker runs: every task stays `waiting` and is synthesised by the listing.

Page fetches: GET /api/v1/jobs/{id}/tasks with limit --page-size at offset 0 (first page), 500000
(middle) and task_count - page_size (last page), each --repeat times; the first fetch of the
first page is the cold one (the block's layout is parsed then). page_max_ms is over every fetch,
all on one keep-alive connection (as the CLI and web monitor use it); page_max_ms_new_connection
fetches the same three pages once more, each on a new connection.

Prints one JSON line:
{"bench": "bigjob", "frames": 1000000, "submit_s": .., "rss_growth_mb": .., "page_max_ms": ..,
 "goal_submit_s": 1.0, "goal_rss_mb": 50, "goal_page_ms": 50, "db": "sqlite", ...}
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
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5, help="fetches of each page")
    c.add_common_options(parser)
    args = parser.parse_args()

    with (
        c.temp_dir(args.keep) as tmp,
        c.database(args, tmp) as (db_url, db),
        c.controller(tmp / "data", db_url) as ctl,
        ctl.client() as client,
    ):
        warm = client.submit("bench-warmup", ["true"], frames="1", chunk=1)
        client.tasks(warm.id, offset=0, limit=args.page_size)
        busy_before = c.wait_quiet(args.quiet_wait)
        rss_before = c.rss_mb(ctl.pid)

        c.log(f"submitting a {args.frames:,}-frame job")
        t0 = time.perf_counter()
        job = client.submit("bench-bigjob", ["true", "{frame}"], frames=f"1-{args.frames}", chunk=1)
        submit_s = time.perf_counter() - t0
        rss_after_submit = c.rss_mb(ctl.pid)
        total = job.counts.total
        c.log(f"submitted job {job.id} ({total:,} tasks) in {submit_s * 1000:.1f} ms")

        offsets = {
            "first": 0,
            "middle": min(500_000, max(0, total - args.page_size)),
            "last": max(0, total - args.page_size),
        }
        fetch_ms: dict[str, list[float]] = {name: [] for name in offsets}
        for _ in range(args.repeat):
            for name, offset in offsets.items():
                t0 = time.perf_counter()
                page = client.tasks(job.id, offset=offset, limit=args.page_size)
                fetch_ms[name].append((time.perf_counter() - t0) * 1000)
                if len(page.tasks) != min(args.page_size, total - offset):
                    raise SystemExit(f"page at {offset} has {len(page.tasks)} tasks")
                if page.total != total:
                    raise SystemExit(f"page total {page.total} != job total {total}")
        rss_after_pages = c.rss_mb(ctl.pid)
        # The same pages, each on a new connection: shows what a keep-alive connection adds.
        fresh_ms: list[float] = []
        for offset in offsets.values():
            with ctl.client() as fresh:
                t0 = time.perf_counter()
                fresh.tasks(job.id, offset=offset, limit=args.page_size)
                fresh_ms.append((time.perf_counter() - t0) * 1000)
        final = client.job(job.id)
        waiting = final.counts.waiting

    growth = max(rss_after_submit, rss_after_pages) - rss_before
    all_ms = [ms for values in fetch_ms.values() for ms in values]
    c.log(f"pages: {', '.join(f'{k} {max(v):.1f} ms' for k, v in fetch_ms.items())}")
    return {
        "bench": "bigjob",
        "frames": args.frames,
        "tasks": total,
        "waiting": waiting,
        "submit_s": round(submit_s, 4),
        "rss_before_mb": round(rss_before, 1),
        "rss_after_submit_mb": round(rss_after_submit, 1),
        "rss_after_pages_mb": round(rss_after_pages, 1),
        "rss_growth_mb": round(growth, 1),
        "page_size": args.page_size,
        "page_first_ms": round(fetch_ms["first"][0], 1),
        "page_ms_median": {k: round(statistics.median(v), 1) for k, v in fetch_ms.items()},
        "page_ms_max": {k: round(max(v), 1) for k, v in fetch_ms.items()},
        "page_max_ms": round(max(all_ms), 1),
        "page_max_ms_new_connection": round(max(fresh_ms), 1),
        "goal_submit_s": 1.0,
        "goal_rss_mb": 50,
        "goal_page_ms": 50,
        "db": db,
        "cpu_busy_before_pct": busy_before,
        "topology": c.TOPOLOGY,
        "machine": c.machine(),
        "date": c.stamp(),
    }


if __name__ == "__main__":
    c.run("bigjob", main)
