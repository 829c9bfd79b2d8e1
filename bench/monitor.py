"""The web monitor: a 100,000-task job's page, the cost of 50 open event streams on a busy
farm, and how soon a change reaches them.

1. page: a 100,000-task job with 10,000 tasks moved in 20 ranges (skipped, canceled) is opened
   in Chromium (signed in); time from navigation to its grid and strip drawn (the page is
   interactive then), --loads times. Yardstick in the same run: reading the block's task
   states the naive way, every task through the paginated task list (100 pages of 1,000).
2. cost: the same busy workload (a job of --tasks one-frame `true` tasks on one worker with 2
   lanes) runs with no page open, then with --clients pages open (emulated: each holds an
   event stream and fetches what its page fetches on events; half are the busy job's page,
   with its task events), alternately, --rounds times each. The controller process's CPU time
   is read from /proc (psutil); the pages' cost is the CPU time they added to the same work,
   per second of the run with them, as a share of one core (median of the rounds).
3. latency: with the streams open, a job that runs nowhere (its filter matches no host) is
   paused and resumed --changes times; each stream
   notes when the job's event arrived (p50/p95 over every stream and change), and an open job
   page in Chromium when its state label changed.

Prints one JSON line: {"bench": "monitor", "page_ms_median": .., "sse_cost_core_pct": ..,
"event_p95_ms": .., "page_change_p95_ms": .., ...}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

CHROMIUM = "/usr/bin/chromium"


class Streams:
    """`n` open pages, emulated: each holds an event stream and fetches what the page fetches
    when its events come (`_refresh`): half are jobs pages, half, given `follow`, the page of
    that job (its task runs come in events). `arrivals[job_id]`: when the streams heard of a
    job."""

    def __init__(self, url: str, token: str, n: int, follow: int | None) -> None:
        self.url, self.token, self.n, self.follow = url, token, n, follow
        self.arrivals: dict[int, list[float]] = {}
        self.events = 0
        self.fetches = 0
        self.open = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 60
        while self.open < self.n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.open} of {self.n} streams opened")
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def reset(self) -> None:
        self.arrivals = {}

    async def _main(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        limits = httpx.Limits(max_connections=4 * self.n)
        async with httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(30.0, read=None),  # a stream is quiet between events
            limits=limits,
        ) as http:
            tasks = [asyncio.create_task(self._page(http, i)) for i in range(self.n)]
            while not self._stop.is_set():
                await asyncio.sleep(0.1)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _page(self, http: httpx.AsyncClient, i: int) -> None:
        job_page = self.follow is not None and i % 2 == 1
        changed: set[int] = set()
        dirty = asyncio.Event()
        refresher = asyncio.create_task(self._refresh(http, job_page, changed, dirty))
        params = {"job": str(self.follow)} if job_page else {}
        try:
            async with http.stream("GET", "/api/v1/events/stream", params=params) as response:
                self.open += 1
                kind = ""
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind in ("job", "task"):
                        job_id = int(json.loads(line[6:])["job_id"])
                        if kind == "job":
                            self.events += 1
                            self.arrivals.setdefault(job_id, []).append(time.monotonic())
                        changed.add(job_id)
                        dirty.set()
        finally:
            refresher.cancel()

    async def _refresh(
        self, http: httpx.AsyncClient, job_page: bool, changed: set[int], dirty: asyncio.Event
    ) -> None:
        """What the pages fetch on events once open: a job's page its finer estimate (the job
        and `/eta`) at most every 15 s; the jobs page nothing (events carry each job's
        state)."""
        last = time.monotonic()  # the page has just read everything
        while True:
            await dirty.wait()
            dirty.clear()
            changed.clear()
            if not job_page:
                continue
            await asyncio.sleep(max(0.0, last + 15.0 - time.monotonic()))
            for path in (f"/api/v1/jobs/{self.follow}", f"/api/v1/jobs/{self.follow}/eta"):
                await http.get(path)
                self.fetches += 1
            last = time.monotonic()


def cpu_s(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


@contextmanager
def browser(url: str, token: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = chromium.new_context(viewport={"width": 1400, "height": 900})
        context.add_init_script(f"sessionStorage.setItem('thresher.token', {token!r})")
        page = context.new_page()
        page.goto(url + "/#/jobs")
        page.wait_for_selector("table#jobs")
        try:
            yield page
        finally:
            chromium.close()


def big_job(client: Any) -> int:
    job = client.submit("bench-monitor-100k", ["true"], frames="1-100000", paused=True)
    for k in range(20):
        first = 2000 + k * 4000
        client.act_on_range(job.id, first, first + 499, "skip" if k % 2 else "cancel")
    return int(job.id)


def page_loads(page: Any, url: str, job_id: int, loads: int) -> list[float]:
    times = []
    for _ in range(loads):
        page.goto(url + "/#/jobs")
        page.wait_for_selector("table#jobs")
        t0 = time.perf_counter()
        page.goto(f"{url}/#/job/{job_id}")
        page.wait_for_selector("canvas.grid[data-tasks='100000']")
        page.wait_for_function("document.querySelector('canvas.strip').width > 0")
        page.evaluate("new Promise(r => requestAnimationFrame(() => r(1)))")  # painted
        times.append((time.perf_counter() - t0) * 1000)
    return times


def naive_read(client: Any, job_id: int) -> float:
    t0 = time.perf_counter()
    for offset in range(0, 100_000, 1000):
        client.tasks(job_id, offset=offset, limit=1000)
    return (time.perf_counter() - t0) * 1000


def busy_round(client: Any, pid: int, job_id: int) -> tuple[float, float]:
    """(controller CPU seconds, wall seconds) of one busy job (submitted paused) run to its
    end once resumed."""
    cpu0, t0 = cpu_s(pid), time.monotonic()
    client.resume(job_id)
    c.wait_job(client, job_id, every_s=0.2, timeout_s=600, stall_s=60)
    return cpu_s(pid) - cpu0, time.monotonic() - t0


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=2000, help="tasks of the busy job")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--changes", type=int, default=20)
    c.add_common_options(parser)
    args = parser.parse_args()
    with (
        c.temp_dir(args.keep) as tmp,
        c.database(args, tmp) as (db_url, db),
        c.controller(tmp / "data", db_url) as ctl,
        ctl.client() as client,
        c.worker(ctl, name="bench-1", lanes=2, ahead=None, work_dir=tmp / "work"),
    ):
        c.wait_online(client, ["bench-1"])
        busy_before = c.wait_quiet(args.quiet_wait)
        c.log("a 100,000-task job with 10,000 tasks moved")
        big = big_job(client)
        naive_ms = naive_read(client, big)
        with browser(ctl.url, ctl.token) as page:
            loads = page_loads(page, ctl.url, big, args.loads)
            c.log(f"page: {[round(x) for x in loads]} ms; naive read {naive_ms:.0f} ms")
            cost = stream_cost(client, ctl, args)
            idle = client.submit("bench-monitor-idle", ["true"], filters="hostname:nobody")
            event_ms, page_ms = change_latency(client, ctl, page, idle.id, args)
    return {
        "bench": "monitor",
        "page_ms_median": round(statistics.median(loads), 1),
        "page_ms_max": round(max(loads), 1),
        "naive_task_pages_ms": round(naive_ms, 1),
        "goal_page_ms": 1000,
        **cost,
        "goal_sse_cost_core_pct": 10,
        "event_p50_ms": round(c.percentile(event_ms, 50), 1),
        "event_p95_ms": round(c.percentile(event_ms, 95), 1),
        "page_change_p50_ms": round(c.percentile(page_ms, 50), 1),
        "page_change_p95_ms": round(c.percentile(page_ms, 95), 1),
        "goal_change_p95_ms": 1000,
        "db": db,
        "cpu_busy_before_pct": busy_before,
        "topology": c.TOPOLOGY,
        "machine": c.machine(),
        "date": c.stamp(),
    }


def stream_cost(client: Any, ctl: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Busy rounds alternately without and with the streams open."""
    without: list[float] = []
    with_: list[float] = []
    streams: Streams | None = None

    def busy_job() -> int:
        frames = f"1-{args.tasks}"
        return int(client.submit("bench-monitor-busy", ["true"], frames=frames, paused=True).id)

    extra: list[float] = []
    for r in range(args.rounds):
        cpu0, wall = busy_round(client, ctl.pid, busy_job())
        without.append(cpu0 / wall)
        job_id = busy_job()
        streams = Streams(ctl.url, ctl.token, args.clients, follow=job_id)
        streams.start()
        try:
            cpu, wall = busy_round(client, ctl.pid, job_id)
        finally:
            events, fetches = streams.events, streams.fetches
            streams.stop()
        with_.append(cpu / wall)
        extra.append((cpu - cpu0) / wall)  # the same work: what the pages added, per second
        c.log(
            f"round {r}: {cpu0:.2f} s CPU without, {cpu:.2f} s with {args.clients} pages "
            f"({wall:.1f} s; {events} job events, {fetches} fetches): "
            f"{100 * extra[-1]:.1f}% of a core"
        )
    base, loaded = statistics.median(without), statistics.median(with_)
    return {
        "sse_clients": args.clients,
        "busy_tasks": args.tasks,
        "controller_core_pct_without": round(100 * base, 1),
        "controller_core_pct_with": round(100 * loaded, 1),
        "sse_cost_core_pct": round(100 * statistics.median(extra), 1),
        "sse_cost_rounds_pct": [round(100 * x, 1) for x in extra],
    }


def change_latency(
    client: Any, ctl: Any, page: Any, job_id: int, args: argparse.Namespace
) -> tuple[list[float], list[float]]:
    """Pause and resume a job; when each stream heard it, and when the page showed it."""
    streams = Streams(ctl.url, ctl.token, args.clients, follow=job_id)
    streams.start()
    event_ms: list[float] = []
    page_ms: list[float] = []
    try:
        page.goto(f"{ctl.url}/#/job/{job_id}")
        page.wait_for_selector("#job-state")
        page.wait_for_function("document.body.dataset.live === '1'")
        for i in range(args.changes):
            streams.reset()
            t0 = time.monotonic()
            if i % 2 == 0:
                client.pause(job_id)
                label = "paused"
            else:
                client.resume(job_id)
                label = None
            deadline = t0 + 10
            while len(streams.arrivals.get(job_id, [])) < args.clients:
                if time.monotonic() > deadline:
                    raise RuntimeError("the streams did not all hear of the change")
                time.sleep(0.005)
            event_ms += [(t - t0) * 1000 for t in streams.arrivals[job_id]]
            check = (
                "document.querySelector('#job-state').textContent === 'paused'"
                if label
                else "document.querySelector('#job-state').textContent !== 'paused'"
            )
            page.wait_for_function(check, polling="raf", timeout=10_000)
            page_ms.append((time.monotonic() - t0) * 1000)
    finally:
        streams.stop()
    return event_ms, page_ms


if __name__ == "__main__":
    c.run("monitor", main)
