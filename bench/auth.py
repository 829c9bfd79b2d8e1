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
 "auth": {"rps_median": .., "us_median": .., "us_min": .., "us_max": ..},
 "bypass": {...}, "overhead_ms": {"median": .., "min": .., "max": ..}, "goal_ms": 0.2, ...}
where the us_* are the mean microseconds per request of each round (median, min, max over the
rounds) and overhead_ms the per-round difference auth - bypass.
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


async def _time(client: httpx.AsyncClient, path: str, n: int) -> float:
    """Mean microseconds per request over n sequential requests."""
    start = time.perf_counter()
    for _ in range(n):
        answer = await client.get(path)
        if answer.status_code != 200:
            raise SystemExit(f"{path}: {answer.status_code} {answer.text}")
    return (time.perf_counter() - start) / n * 1e6


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
        per_round: dict[str, list[float]] = {"auth": [], "bypass": []}
        for r in range(rounds):
            order = ("auth", "bypass") if r % 2 == 0 else ("bypass", "auth")
            for name in order:
                per_round[name].append(await _time(clients[name], path, n))
        for client in clients.values():
            await client.aclose()
    return per_round


def _summary(us: Sequence[float]) -> dict[str, float]:
    med = statistics.median(us)
    return {
        "rps_median": round(1e6 / med),
        "us_median": round(med, 1),
        "us_min": round(min(us), 1),
        "us_max": round(max(us), 1),
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
    overhead = [(a - b) / 1000 for a, b in zip(per_round["auth"], per_round["bypass"], strict=True)]
    return {
        "bench": "auth",
        "date": c.stamp(),
        "rounds": args.rounds,
        "requests": args.requests,
        "route": "GET /api/v1/jobs/{job_id}",
        "auth": _summary(per_round["auth"]),
        "bypass": _summary(per_round["bypass"]),
        "overhead_ms": {
            "median": round(statistics.median(overhead), 4),
            "min": round(min(overhead), 4),
            "max": round(max(overhead), 4),
        },
        "goal_ms": GOAL_MS,
        "met": statistics.median(overhead) <= GOAL_MS,
    }


if __name__ == "__main__":
    c.run("auth", main)
