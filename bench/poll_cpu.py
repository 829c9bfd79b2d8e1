"""The controller's CPU per worker poll without HTTP: the farm side of a poll driven in-process.

A farm (the same `Farm` a controller composes) over SQLite in a temporary directory or the
PostgreSQL database at `--db-url`; one job of `--tasks` one-frame tasks; `--workers` enrolled
workers with one lane each. Then, on this thread (as the farm thread would run them):

- busy polls: each worker in turn confirms its token and runs the poll's first round,
  reporting the success of the task its previous poll got and claiming one for its lane
  (`--ahead 0` as `bench/dispatch.py` does);
- idle polls: the same without lanes or finishes (a heartbeat, as `bench/heartbeat.py` sends).

Prints one JSON line: CPU and wall milliseconds per poll of each kind (medians of `--rounds`
rounds). `--profile FILE` writes a cProfile of the busy polls (`--idle-profile` of the idle).
It measures the use case, not the HTTP request around it (the bench scripts measure both)."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from thresher.controller.auth import ensure_admin_token
from thresher.controller.farm import Farm, Unconfirmed
from thresher.controller.notifier import Notifier
from thresher.controller.settings import ControllerSettings
from thresher.core.clock import SystemClock
from thresher.schemas import api
from thresher.store.db import sqlite_url
from thresher.store.store import Store


def sim_worker(i: int) -> api.RegisterIn:
    """The registration of simulated worker `i` (one lane)."""
    name = f"sim-{i:04d}"
    return api.RegisterIn(name=name, hostname=name, os="linux", cores=4, ram_bytes=8 << 30, lanes=1)


def _setup(data_dir: Path, url: str, workers: int, tasks: int) -> tuple[Farm, list[Any], Any, int]:
    if url.startswith("postgresql"):  # an empty database: drop what an earlier run left
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    store = Store.open(url)
    clock = SystemClock()
    settings = ControllerSettings(data_dir=data_dir, heartbeat_s=5.0, lease_s=600.0)
    ensure_admin_token(store, clock, data_dir)
    admin_token = (data_dir / "admin-token").read_text().strip()
    notifier = Notifier()
    notifier.bind(asyncio.new_event_loop())
    farm = Farm(store, clock, settings, notifier)
    farm.start(clock.now())
    admin = farm.access.caller(admin_token)
    assert admin is not None
    job = farm.jobs.submit(
        admin, api.JobIn(name="poll-cpu", command=["true"], frames=f"1-{tasks}", chunk=1)
    )
    callers = []
    for i in range(workers):
        out = farm.agents.register(admin, sim_worker(i))
        callers.append(farm.access.caller(out.token))
    return farm, callers, admin, job.id


def _polls(farm: Farm, callers: list[Any], bodies: list[api.PollIn], together: int) -> list[Any]:
    """Each caller's poll (its token confirmed, its first round), `together` at a time as the
    farm thread runs polls queued together (`Farm._first_rounds`)."""
    out: list[Any] = []
    for start in range(0, len(callers), together):
        items = [
            (Unconfirmed(c, "POST", "/api/v1/agent/poll"), c, b)
            for c, b in zip(
                callers[start : start + together], bodies[start : start + together], strict=True
            )
        ]
        for outcome in farm._first_rounds(items):
            if isinstance(outcome, BaseException):
                raise outcome
            out.append(outcome)
    return out


def _busy_round(
    farm: Farm, callers: list[Any], held: list[list[Any]], together: int
) -> tuple[float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    bodies = []
    for i in range(len(callers)):
        finished = [
            api.FinishIn(
                attempt_id=a.attempt_id,
                token=a.token,
                status="succeeded",
                exit_code=0,
                duration_s=0.001,
            )
            for a in held[i]
        ]
        bodies.append(api.PollIn(lanes=[0], wait_s=2.0, finished=finished))
    for i, poll in enumerate(_polls(farm, callers, bodies, together)):
        held[i] = list(poll.answer.assignments) if poll.answer is not None else []
    n = len(callers)
    return (time.process_time() - cpu0) * 1000 / n, (time.perf_counter() - wall0) * 1000 / n


def _idle_round(farm: Farm, callers: list[Any], together: int) -> tuple[float, float]:
    bodies = [api.PollIn(lanes=[0], wait_s=0.0)] * len(callers)  # as bench/heartbeat.py
    cpu0, wall0 = time.process_time(), time.perf_counter()
    _polls(farm, callers, bodies, together)
    n = len(callers)
    return (time.process_time() - cpu0) * 1000 / n, (time.perf_counter() - wall0) * 1000 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db-url", help="PostgreSQL URL (default: SQLite in a temp dir)")
    parser.add_argument("--workers", type=int, default=50)
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--together", type=int, default=1, help="polls run together (queued at once)"
    )
    parser.add_argument("--profile", type=Path, help="cProfile of the busy polls to this file")
    parser.add_argument("--idle-profile", type=Path, help="cProfile of the idle polls")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        url = args.db_url or sqlite_url(data_dir)
        farm, callers, admin, job_id = _setup(data_dir, url, args.workers, args.tasks)
        held: list[list[Any]] = [[] for _ in callers]
        _busy_round(farm, callers, held, args.together)  # warm up: caches, the dispatch index
        profile = cProfile.Profile() if args.profile else None
        busy = []
        for _ in range(args.rounds):
            if profile:
                profile.enable()
            busy.append(_busy_round(farm, callers, held, args.together))
            if profile:
                profile.disable()
        if profile and args.profile:
            profile.dump_stats(str(args.profile))
        # Idle: what each holds finished, the job canceled, so a poll finds nothing to run.
        finishing = [
            api.PollIn(
                finished=[
                    api.FinishIn(attempt_id=a.attempt_id, token=a.token, status="succeeded")
                    for a in held[i]
                ]
            )
            for i in range(len(callers))
        ]
        _polls(farm, callers, finishing, args.together)
        farm.jobs.cancel(admin, job_id)
        _idle_round(farm, callers, args.together)
        idle_profile = cProfile.Profile() if args.idle_profile else None
        idle = []
        for _ in range(args.rounds):
            if idle_profile:
                idle_profile.enable()
            idle.append(_idle_round(farm, callers, args.together))
            if idle_profile:
                idle_profile.disable()
        if idle_profile and args.idle_profile:
            idle_profile.dump_stats(str(args.idle_profile))
        farm.close()
        farm.store.close()
    out = {
        "bench": "poll_cpu",
        "db": "postgresql" if args.db_url else "sqlite",
        "workers": args.workers,
        "together": args.together,
        "busy_cpu_ms": round(statistics.median(b[0] for b in busy), 3),
        "busy_cpu_ms_range": [round(min(b[0] for b in busy), 3), round(max(b[0] for b in busy), 3)],
        "busy_wall_ms": round(statistics.median(b[1] for b in busy), 3),
        "idle_cpu_ms": round(statistics.median(i[0] for i in idle), 3),
        "idle_cpu_ms_range": [round(min(i[0] for i in idle), 3), round(max(i[0] for i in idle), 3)],
        "idle_wall_ms": round(statistics.median(i[1] for i in idle), 3),
    }
    print(json.dumps(out))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
