"""Idle workers' heartbeats: what `--workers` simulated workers cost one controller.

A `thresher controller` process with no work. `--workers` simulated workers (one lane each)
register, then each polls every `--every` seconds (the controller's heartbeat, 5 s by default),
spread evenly over the period, with `wait_s` 0: every poll is a heartbeat that finds nothing
to do and is answered at once (a held poll costs the controller less: one request per hold,
a lease refreshed in memory). The load generator is the lean one of `bench/dispatch.py`
(pre-encoded requests on keep-alive connections over raw asyncio streams).

Measured over a window after every worker polled at least once: the controller's CPU share
of one core (goal: at most 50 % for 5,000 workers every 5 s), polls answered per second, poll
latency percentiles, and whether any worker went offline. Prints one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from dispatch import _Connection, _register

GOAL_CORE_PCT = 50.0


@dataclass
class Stats:
    polls: int = 0
    late: int = 0  # polls sent more than a period after the worker's previous one
    latencies: list[float] = field(default_factory=list)
    errors: int = 0


async def _loop(
    conn: _Connection, tokens: list[str], *, every: float, window: tuple[float, float], stats: Stats
) -> None:
    """The workers of one connection, each polling once per period at its own offset."""
    heads = [
        (
            f"POST /api/v1/agent/poll HTTP/1.1\r\nHost: {conn.host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode()
        for token in tokens
    ]
    body = b'{"lanes":[0],"wait_s":0}'
    step = every / max(1, len(heads))
    next_at = time.time()
    while time.time() < window[1]:
        for head in heads:
            await asyncio.sleep(max(0.0, next_at - time.time()))
            if time.time() - next_at > every:
                stats.late += 1
            next_at += step
            sent = time.time()
            try:
                status, _ = await conn.post(head, body)
                if status != 200:
                    raise RuntimeError(f"HTTP {status}")
            except (OSError, asyncio.IncompleteReadError, RuntimeError):
                stats.errors += window[0] <= sent <= window[1]
                continue
            if window[0] <= sent <= window[1]:
                stats.polls += 1
                stats.latencies.append(time.time() - sent)


async def _client(url: str, token: str, names: list[str], options: dict[str, Any]) -> Stats:
    stats = Stats()
    registering = asyncio.Semaphore(20)
    async with httpx.AsyncClient(base_url=url, timeout=60.0) as http:

        async def one(name: str) -> str:
            async with registering:
                return await _register(http, token, name)

        tokens = await asyncio.gather(*(one(n) for n in names))
    if time.time() > options["start"]:
        print(
            f"registration overran --register-s by {time.time() - options['start']:.0f}s",
            file=sys.stderr,
        )
    await asyncio.sleep(max(0.0, options["start"] - time.time()))
    host, port = url.removeprefix("http://").rsplit(":", 1)
    n = options["connections"]
    conns = [_Connection(host, int(port)) for _ in range(n)]
    await asyncio.gather(
        *(
            _loop(conn, tokens[i::n], every=options["every"], window=options["window"], stats=stats)
            for i, conn in enumerate(conns)
        )
    )
    for conn in conns:
        conn.close()
    return stats


def _client_process(
    url: str, token: str, names: list[str], options: dict[str, Any], out: Any
) -> None:
    out.put(asyncio.run(_client(url, token, names, options)))


def run(args: argparse.Namespace, tmp: Path, db_url: str | None) -> dict[str, Any]:
    # The lease outlasts the registration: the first workers registered wait for the last
    # before they poll (the bench measures heartbeats, not registration).
    lease = max(args.every * 3, args.register_s + 30)
    extra = ["--heartbeat", str(args.every), "--lease", str(lease)]
    with c.controller(tmp / "data", db_url, extra=extra) as ctl, ctl.client() as client:
        names = [f"idle-{i:05d}" for i in range(args.workers)]
        chunks = [names[i :: args.client_procs] for i in range(args.client_procs)]
        start = time.time() + args.register_s
        window = (start + args.every * 2, start + args.every * 2 + args.seconds)
        options = {
            "connections": max(1, args.connections // args.client_procs),
            "every": args.every,
            "start": start,
            "window": window,
        }
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        procs = [
            ctx.Process(target=_client_process, args=(ctl.url, ctl.token, chunk, options, results))
            for chunk in chunks
        ]
        for p in procs:
            p.start()
        time.sleep(max(0.0, window[0] - time.time()))
        with c.py_spy({"controller": ctl.pid}, args.profile):
            cpu0, t0 = c.cpu_seconds(ctl.pid), time.time()
            loop0 = c.loop_cpu_seconds(ctl.pid)
            time.sleep(max(0.0, window[1] - time.time()))
            cpu1, t1 = c.cpu_seconds(ctl.pid), time.time()
            loop1 = c.loop_cpu_seconds(ctl.pid)
        stats = [results.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        offline = sum(1 for w in client.workers() if w.status != "online")
    latencies = [x for s in stats for x in s.latencies]
    polls = sum(s.polls for s in stats)
    core_pct = round((cpu1 - cpu0) / (t1 - t0) * 100, 1)
    return {
        "controller_core_pct": core_pct,
        "goal_core_pct": GOAL_CORE_PCT,
        "met": core_pct <= GOAL_CORE_PCT,
        "polls_per_s": round(polls / (t1 - t0), 1),
        "expected_polls_per_s": round(args.workers / args.every, 1),
        "controller_cpu_us_per_poll": round((cpu1 - cpu0) * 1e6 / max(1, polls), 1),
        # of which the event loop's (the main thread: HTTP, JSON, the hand-off)
        "controller_loop_cpu_us_per_poll": round((loop1 - loop0) * 1e6 / max(1, polls), 1),
        "poll_p50_ms": round(c.percentile(latencies, 50) * 1000, 2) if latencies else None,
        "poll_p99_ms": round(c.percentile(latencies, 99) * 1000, 2) if latencies else None,
        "late_polls": sum(s.late for s in stats),
        "errors": sum(s.errors for s in stats),
        "workers_offline": offline,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=5000)
    parser.add_argument("--every", type=float, default=5.0, help="seconds between a worker's polls")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--client-procs", type=int, default=1)
    parser.add_argument("--register-s", type=float, default=120.0, help="time to register all")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the controller")
    c.add_common_options(parser)
    args = parser.parse_args()
    busy_before = c.wait_quiet(args.quiet_wait)
    with c.temp_dir(args.keep) as tmp, c.database(args, tmp) as (db_url, db):
        result = run(args, tmp, db_url)
    c.emit(
        {
            "bench": "heartbeat",
            "db": db,
            "workers": args.workers,
            "every_s": args.every,
            **result,
            "window_s": args.seconds,
            "cpu_busy_before_pct": busy_before,
            "topology": "controller process; idle simulated workers polling (wait_s 0) on "
            f"{args.connections} keep-alive connections in {args.client_procs} other process(es)",
            "machine": c.machine(),
            "date": c.stamp(),
        }
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
