"""What authentication and authorisation cost per request, against the same app with them
bypassed, in the same run.

Three apps over one SQLite store in one process, driven in-process through httpx's ASGI
transport (no sockets: what is timed is the app) with GET /api/v1/jobs/{id} (a typical read:
one use case on the farm thread), one request at a time, interleaved request by request (the
order rotating) so all see the same load from the rest of the machine:
- `auth`: as served. The bearer token is hashed and found among the known tokens on the event
  loop, the route's policy entry checked, and the token looked up in the database in the
  hand-off of the use case (so a revoked token fails at once); the use case checks the job's
  visibility.
- `bypass` (the yardstick): the same app with the token's hashing and both lookups stubbed
  (a constant admin caller); the rest runs as served.
- `no_auth`: the caller dependency replaced through FastAPI's `dependency_overrides` by a
  constant admin caller. FastAPI resolves an override on every request, which costs more than
  auth itself, so this app is slower than `bypass`: shown, not used as the yardstick.
Each round sends --requests requests to each app and takes each app's median latency.

Prints one JSON line:
{"bench": "auth", "rounds": R, "requests": N,
 "auth": {"rps_median": .., "us_median": .., "us_min": .., "us_max": ..},
 "bypass": {...}, "no_auth": {...},
 "overhead_ms": {"median": .., "min": .., "max": ..}, "overhead_vs_no_auth_ms": {...},
 "parts_us": {"loop_us": .., "lookup_us": ..}, "goal_ms": 0.2, "met": ..}
where us_* are over the rounds' median latencies (median, min, max), rps_median is 1 / the
median latency (one request at a time), overhead_ms is over the rounds' differences of medians,
auth - bypass, and parts_us what auth adds part by part timed alone (best of 5 means): on the
event loop (hash, known tokens, policy) and on the farm thread (the token's lookup).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from thresher.controller.farm import Farm
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


APPS = ("auth", "bypass", "no_auth")


async def _round(clients: dict[str, httpx.AsyncClient], path: str, n: int) -> dict[str, float]:
    """n requests to each app, interleaved one by one (the order rotating), so that all see the
    same load from the rest of the machine; the median latency of each app's."""
    took: dict[str, list[float]] = {name: [] for name in APPS}
    for i in range(n):
        for k in range(len(APPS)):
            name = APPS[(i + k) % len(APPS)]
            took[name].append(await _one(clients[name], path))
    return {name: statistics.median(values) for name, values in took.items()}


async def _measure(
    apps: dict[str, FastAPI], token: str, *, rounds: int, n: int
) -> list[dict[str, float]]:
    headers = {"authorization": f"Bearer {token}"}
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(app.router.lifespan_context(app))
        _stub_lookups(apps["bypass"].state.farm)
        clients = {
            name: await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app),
                    base_url="http://bench",
                    headers=headers,
                )
            )
            for name, app in apps.items()
        }
        job = await clients["auth"].post("/api/v1/jobs", json={"name": "b", "command": ["true"]})
        path = f"/api/v1/jobs/{job.json()['id']}"
        await _round(clients, path, max(n // 5, 10))  # warm up all
        return [await _round(clients, path, n) for _ in range(rounds)]


def _stub_lookups(farm: Farm) -> None:
    """The bypass: the caller dependency and the policy run as served, but the caller is found
    without hashing the token or asking the database, at arrival and in the use case."""
    farm.access.known = lambda token: ADMIN  # type: ignore[method-assign]
    farm.access.confirm = lambda caller: caller  # type: ignore[method-assign]


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


def _overhead(per_round: Sequence[dict[str, float]], yardstick: str) -> dict[str, float]:
    """auth's median latency minus the yardstick's, per round, in ms: median, min, max."""
    diff = [(r["auth"] - r[yardstick]) / 1000 for r in per_round]
    return {
        "median": round(statistics.median(diff), 4),
        "min": round(min(diff), 4),
        "max": round(max(diff), 4),
    }


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
            apps = {name: create_app(settings, store=store, sweeper=False) for name in APPS}
            apps["no_auth"].dependency_overrides[get_caller] = _constant_caller
            c.log(f"{args.rounds} rounds of {args.requests} requests per app")
            per_round = asyncio.run(_measure(apps, token, rounds=args.rounds, n=args.requests))
            parts = _parts(store, token)
        finally:
            store.close()
    over_bypass = _overhead(per_round, "bypass")
    return {
        "bench": "auth",
        "date": c.stamp(),
        "rounds": args.rounds,
        "requests": args.requests,
        "route": "GET /api/v1/jobs/{job_id}",
        **{name: _summary([r[name] for r in per_round]) for name in APPS},
        "overhead_ms": over_bypass,
        "overhead_vs_no_auth_ms": _overhead(per_round, "no_auth"),
        "parts_us": parts,
        "goal_ms": GOAL_MS,
        "met": over_bypass["median"] <= GOAL_MS,
    }


if __name__ == "__main__":
    c.run("auth", main)
