"""The controller's CPU per idle worker poll through its ASGI app, without the socket.

The app `create_app` builds (over SQLite in a temporary directory, no sweeper) is called
in-process with the ASGI messages uvicorn would hand it: `--workers` registered workers each
poll with `{"lanes": [0], "wait_s": 0}` (a heartbeat, as `bench/heartbeat.py` sends), served by
the hot routes (`controller/hot_routes.py`) and, alternately, with them off (the FastAPI
middlewares and route). Between `bench/poll_cpu.py` (the use case alone) and
`bench/heartbeat.py` (the whole server): the part of a poll's CPU the HTTP stack above uvicorn
costs. Prints one JSON line: CPU microseconds per poll of each way (medians of `--rounds`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from poll_cpu import sim_worker
from thresher.controller.app import ThresherApp, create_app
from thresher.controller.auth import ensure_admin_token
from thresher.controller.settings import ControllerSettings
from thresher.core.clock import SystemClock
from thresher.store.db import sqlite_url
from thresher.store.store import Store

BODY = b'{"lanes":[0],"wait_s":0}'


async def _poll(app: ThresherApp, token: bytes) -> int:
    headers = [
        (b"host", b"127.0.0.1"),
        (b"authorization", b"Bearer " + token),
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(BODY)),
    ]
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "POST",
        "root_path": "",
        "path": "/api/v1/agent/poll",
        "raw_path": b"/api/v1/agent/poll",
        "query_string": b"",
        "headers": headers,
        "state": {},
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()
        sent = True
        return {"type": "http.request", "body": BODY, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    store = Store.open(sqlite_url(data_dir))
    clock = SystemClock()
    ensure_admin_token(store, clock, data_dir)
    settings = ControllerSettings(data_dir=data_dir, heartbeat_s=5.0, lease_s=600.0)
    app = create_app(settings, store=store, clock=clock, sweeper=False)
    assert isinstance(app, ThresherApp)
    async with app.router.lifespan_context(app):
        farm = app.state.farm
        admin = await farm.call(farm.access.caller, (data_dir / "admin-token").read_text().strip())
        tokens = []
        for i in range(args.workers):
            out = await farm.call(farm.agents.register, admin, sim_worker(i))
            tokens.append(out.token.encode())
        results: dict[str, list[float]] = {"hot": [], "fastapi": []}
        for _ in range(args.rounds):
            for way in results:
                app.hot_routes = way == "hot"
                cpu0 = time.process_time()
                for token in tokens:
                    assert await _poll(app, token) == 200
                results[way].append((time.process_time() - cpu0) * 1e6 / len(tokens))
    return {
        "bench": "asgi_poll",
        "workers": args.workers,
        "rounds": args.rounds,
        **{f"{way}_cpu_us": round(statistics.median(v), 1) for way, v in results.items()},
        **{f"{way}_cpu_us_all": [round(x, 1) for x in v] for way, v in results.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="thresher-asgi-poll-") as tmp:
        print(json.dumps(asyncio.run(_run(args, Path(tmp)))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
