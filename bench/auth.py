"""What authentication and authorisation cost per request, against the same app with them
bypassed, in the same run.

Two apps over one SQLite store in one process: `auth`, as served (the bearer token looked up
in the database on every request, so a revoked token fails at once; the route's policy entry
checked; the job's visibility checked in the use case), and `bypass`, the same app with the
caller dependency replaced by a constant admin caller (no lookup, no policy check). Each is
driven in-process through httpx's ASGI transport (no sockets: what is timed is the app), with
GET /api/v1/jobs/{id} (a typical read: one use case on the farm thread), one request at a
time, interleaved: each round sends --requests requests to each app, alternating between them
request by request, so both see the same load from the rest of the machine, and takes the
median latency of each.

Prints one JSON line:
{"bench": "auth", "rounds": R, "requests": N,
 "auth": {"rps_median": .., "us_median": .., "us_min": .., "us_max": ..},
 "bypass": {...}, "overhead_ms": {"median": .., "min": .., "max": ..}, "goal_ms": 0.2, "met": ..}
and "parts_us": {"loop_us": .., "lookup_us": ..}, what auth adds part by part timed alone
(best of 5): on the event loop (hash, known tokens, policy) and on the farm thread (the
token's lookup). us_* are over the rounds' median latencies (median, min, max), rps_median
is 1 / the median latency (one request at a time), and overhead_ms is over the rounds'
differences of medians, auth - bypass.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from thresher.controller import policy
from thresher.controller.access import Access
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


async def _one(client: httpx.AsyncClient, path: str) -> float:
    """Microseconds one request took."""
    start = time.perf_counter()
    answer = await client.get(path)
    took = (time.perf_counter() - start) * 1e6
    if answer.status_code != 200:
        raise SystemExit(f"{path}: {answer.status_code} {answer.text}")
    return took


async def _round(clients: dict[str, httpx.AsyncClient], path: str, n: int) -> dict[str, float]:
    """n requests to each app, interleaved one by one (the first of each pair alternating), so
    that both see the same load from the rest of the machine; the median of each app's."""
    took: dict[str, list[float]] = {"auth": [], "bypass": []}
    for i in range(n):
        for name in ("auth", "bypass") if i % 2 == 0 else ("bypass", "auth"):
            took[name].append(await _one(clients[name], path))
    return {name: statistics.median(values) for name, values in took.items()}


async def _measure(
    apps: dict[str, FastAPI], token: str, *, rounds: int, n: int
) -> list[dict[str, float]]:
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
        await _round(clients, path, max(n // 5, 10))  # warm up both
        found = [await _round(clients, path, n) for _ in range(rounds)]
        for client in clients.values():
            await client.aclose()
    return found


def _parts(store: Store, token: str, n: int = 2000) -> dict[str, float]:
    """What auth adds to a request, part by part, best of 5 means in microseconds: on the
    event loop (hash, known tokens, route policy) and on the farm thread (the token's lookup
    in the database), timed without the app around them."""
    access = Access(store, SystemClock(), None, None, max_life_s=0)  # type: ignore[arg-type]
    caller = access.caller(token)
    assert caller is not None

    def loop_part() -> None:
        found = access.known(token)
        assert found is not None
        policy.check(found, "GET", "/api/v1/jobs/{job_id}")

    def best(fn: Callable[[], object]) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                fn()
            times.append((time.perf_counter() - start) / n * 1e6)
        return round(min(times), 1)

    return {"loop_us": best(loop_part), "lookup_us": best(lambda: access.confirm(caller))}


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
            parts = _parts(store, token)
        finally:
            store.close()
    auth = [r["auth"] for r in per_round]
    bypass = [r["bypass"] for r in per_round]
    overhead = [(a - b) / 1000 for a, b in zip(auth, bypass, strict=True)]
    return {
        "bench": "auth",
        "date": c.stamp(),
        "rounds": args.rounds,
        "requests": args.requests,
        "route": "GET /api/v1/jobs/{job_id}",
        "auth": _summary(auth),
        "bypass": _summary(bypass),
        "overhead_ms": {
            "median": round(statistics.median(overhead), 4),
            "min": round(min(overhead), 4),
            "max": round(max(overhead), 4),
        },
        "parts_us": parts,
        "goal_ms": GOAL_MS,
        "met": statistics.median(overhead) <= GOAL_MS,
    }


if __name__ == "__main__":
    c.run("auth", main)
