"""What authentication and authorisation cost per request, against the same app with them
bypassed, in the same run.

Two apps over one SQLite store in one process: `auth`, as served (the bearer token looked up
in the database on every request, so a revoked token fails at once; the route's policy entry
checked; the job's visibility checked in the use case), and `bypass`, the same app with the
caller dependency replaced by a constant admin caller (no lookup, no policy check). Each is
driven in-process through httpx's ASGI transport (no sockets: what is timed is the app), with
GET /api/v1/jobs/{id} (a typical read: one use case on the farm thread), sequentially.
Rounds alternate which app goes first; each round times --requests requests per app.

Prints one JSON line:
{"bench": "auth", "rounds": R, "requests": N,
 "auth": {"rps_median": .., "us_median": .., "us_min": .., "us_max": .., "cpu_us_median": ..},
 "bypass": {...}, "overhead_ms": {"median": .., "min": .., "max": ..},
 "cpu_overhead_ms": {...}, "goal_ms": 0.2, "met": ..}
where the us_* are the mean wall microseconds per request of each round (median, min, max
over the rounds), cpu_us_* the same for the process's CPU time, and overhead_ms and
cpu_overhead_ms the per-round differences auth - bypass.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from thresher.controller.app import create_app
from thresher.controller.auth import Caller, ensure_admin_token
from thresher.controller.routes.deps import get_caller
from thresher.controller.settings import ControllerSettings
from thresher.core.clock import SystemClock
from thresher.store.db import sqlite_url
from thresher.store.store import Store

GOAL_MS = 0.2
ADMIN = Caller(token_id=1, name="admin", role="admin")


async def _constant_caller() -> Caller:
    return ADMIN


async def _time(client: httpx.AsyncClient, path: str, n: int) -> tuple[float, float]:
    """(wall, CPU) mean microseconds per request over n sequential requests. CPU is this
    process's (every thread: the loop, the farm thread), which other load on the machine
    disturbs far less than wall time."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        answer = await client.get(path)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: {answer.status_code} {answer.text}")
    return (time.perf_counter() - start) / n * 1e6, (time.process_time() - cpu) / n * 1e6


async def _measure(apps: dict[str, FastAPI], token: str, *, rounds: int, n: int) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"}
    async with (
        apps["auth"].router.lifespan_context(apps["auth"]),
        apps["bypass"].router.lifespan_context(apps["bypass"]),
    ):
        clients = {
            name: httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://bench", headers=headers
            )
            for name, app in apps.items()
        }
        job = await clients["auth"].post("/api/v1/jobs", json={"name": "b", "command": ["true"]})
        path = f"/api/v1/jobs/{job.json()['id']}"
        for client in clients.values():  # warm up both
            await _time(client, path, max(n // 10, 10))
        per_round: dict[str, list[tuple[float, float]]] = {"auth": [], "bypass": []}
        for r in range(rounds):
            order = ("auth", "bypass") if r % 2 == 0 else ("bypass", "auth")
            for name in order:
                per_round[name].append(await _time(clients[name], path, n))
        for client in clients.values():
            await client.aclose()
    return per_round


def _summary(rounds: Sequence[tuple[float, float]]) -> dict[str, float]:
    wall = [w for w, _ in rounds]
    cpu = [c for _, c in rounds]
    return {
        "rps_median": round(1e6 / statistics.median(wall)),
        "us_median": round(statistics.median(wall), 1),
        "us_min": round(min(wall), 1),
        "us_max": round(max(wall), 1),
        "cpu_us_median": round(statistics.median(cpu), 1),
        "cpu_us_min": round(min(cpu), 1),
        "cpu_us_max": round(max(cpu), 1),
    }


def _difference(auth: Sequence[float], bypass: Sequence[float]) -> dict[str, float]:
    """auth - bypass per round, in ms: median, min, max."""
    diff = [(a - b) / 1000 for a, b in zip(auth, bypass, strict=True)]
    return {
        "median": round(statistics.median(diff), 4),
        "min": round(min(diff), 4),
        "max": round(max(diff), 4),
    }


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1000, help="per app and round")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="thresher-bench-auth-") as tmp:
        data = Path(tmp)
        store = Store.open(sqlite_url(data))
        try:
            ensure_admin_token(store, SystemClock(), data)
            token = (data / "admin-token").read_text().strip()
            settings = ControllerSettings(data_dir=data)
            apps = {
                "auth": create_app(settings, store=store, sweeper=False),
                "bypass": create_app(settings, store=store, sweeper=False),
            }
            apps["bypass"].dependency_overrides[get_caller] = _constant_caller
            c.log(f"{args.rounds} rounds of {args.requests} requests per app")
            per_round = asyncio.run(_measure(apps, token, rounds=args.rounds, n=args.requests))
        finally:
            store.close()
    auth, bypass = per_round["auth"], per_round["bypass"]
    wall = _difference([w for w, _ in auth], [w for w, _ in bypass])
    cpu = _difference([c for _, c in auth], [c for _, c in bypass])
    return {
        "bench": "auth",
        "date": c.stamp(),
        "rounds": args.rounds,
        "requests": args.requests,
        "route": "GET /api/v1/jobs/{job_id}",
        "auth": _summary(per_round["auth"]),
        "bypass": _summary(per_round["bypass"]),
        "overhead_ms": wall,
        "cpu_overhead_ms": cpu,
        "goal_ms": GOAL_MS,
        "met": wall["median"] <= GOAL_MS and cpu["median"] <= GOAL_MS,
    }


if __name__ == "__main__":
    c.run("auth", main)
