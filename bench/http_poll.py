"""The controller's CPU per idle worker poll over HTTP, its connection protocol's fast path on
and off in turn.

A controller (`testing.serve_in_thread`: uvicorn on a real socket, SQLite in a temporary
directory) runs in this process; `--workers` registered workers' idle polls (`{"lanes": [0],
"wait_s": 0}`, a heartbeat) come from a load generator in another process, over `--connections`
keep-alive connections, pre-encoded. Each round sends every worker's poll `--passes` times, with
`ThresherApp.hot_protocol` on (`controller/hot_protocol.py`: the hot routes handed their
requests straight from the protocol, one write per answer) or off (uvicorn's own request cycle,
then `ThresherApp.__call__`, then the same hot routes). The CPU is this process's (the
controller's event loop and farm thread) and its event loop's thread alone, per poll, medians of
`--rounds` rounds each way. Between `bench/asgi_poll.py` (the ASGI app without sockets) and
`bench/heartbeat.py` (a controller process and 5,000 workers). Prints one JSON line."""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import psutil

from thresher.controller.settings import ControllerSettings
from thresher.testing import serve_in_thread

BODY = b'{"lanes":[0],"wait_s":0}'


async def _connection(host: str, port: int, requests: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if head[9:12] != b"200":
                raise RuntimeError(head.decode())
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
    finally:
        writer.close()


def _load(
    pipe: Connection, host: str, port: int, tokens: list[str], connections: int, passes: int
) -> None:
    """(In the load generator's process.) Each `go` from the pipe: every token's poll
    `passes` times."""
    polls = [
        (
            f"POST /api/v1/agent/poll HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {t}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n\r\n"
        ).encode()
        + BODY
        for t in tokens
    ] * passes
    while pipe.recv() == "go":

        async def round_() -> None:
            shares = [polls[i::connections] for i in range(connections)]
            await asyncio.gather(*(_connection(host, port, s) for s in shares))

        asyncio.run(round_())
        pipe.send("done")


def _loop_thread_cpu(native_id: int) -> float:
    for thread in psutil.Process().threads():
        if thread.id == native_id:
            return float(thread.user_time + thread.system_time)
    raise RuntimeError("the server's thread is gone")


def _run(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    settings = ControllerSettings(data_dir=data_dir, heartbeat_s=5.0, lease_s=600.0)
    with serve_in_thread(settings) as served:
        app = served.app
        assert app is not None
        (server,) = [t for t in threading.enumerate() if t.name == "thresher-served-controller"]
        assert server.native_id is not None
        admin = {"Authorization": f"Bearer {served.admin_token}"}
        tokens = []
        with httpx.Client(base_url=served.url, headers=admin, timeout=60) as http:
            for i in range(args.workers):
                name = f"sim-{i:04d}"
                body = {"name": name, "hostname": name, "os": "linux", "cores": 4, "lanes": 1}
                r = http.post("/api/v1/agent/register", json={**body, "ram_bytes": 8 << 30})
                r.raise_for_status()
                tokens.append(r.json()["token"])
        host, port = served.url.removeprefix("http://").split(":")
        ours, theirs = mp.get_context("spawn").Pipe()
        load = mp.get_context("spawn").Process(
            target=_load, args=(theirs, host, int(port), tokens, args.connections, args.passes)
        )
        load.start()
        ways = {w: on for w, on in {"protocol": True, "uvicorn": False}.items() if w in args.ways}
        cpu: dict[str, list[float]] = {way: [] for way in ways}
        loop: dict[str, list[float]] = {way: [] for way in ways}
        try:
            for n in range(args.rounds + 1):  # the first round warms up, uncounted
                for way, on in ways.items():
                    app.hot_protocol = on
                    cpu0, loop0 = time.process_time(), _loop_thread_cpu(server.native_id)
                    ours.send("go")
                    assert ours.recv() == "done"
                    cpu1, loop1 = time.process_time(), _loop_thread_cpu(server.native_id)
                    if n:
                        polls = len(tokens) * args.passes
                        cpu[way].append((cpu1 - cpu0) * 1e6 / polls)
                        loop[way].append((loop1 - loop0) * 1e6 / polls)
        finally:
            ours.send("stop")
            load.join(timeout=30)
            app.hot_protocol = True
    return {
        "bench": "http_poll",
        "workers": args.workers,
        "connections": args.connections,
        "rounds": args.rounds,
        "passes": args.passes,
        **{f"{w}_cpu_us": round(statistics.median(v), 1) for w, v in cpu.items()},
        **{f"{w}_loop_cpu_us": round(statistics.median(v), 1) for w, v in loop.items()},
        **{f"{w}_cpu_us_all": [round(x, 1) for x in v] for w, v in cpu.items()},
        **{f"{w}_loop_cpu_us_all": [round(x, 1) for x in v] for w, v in loop.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=500)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--passes", type=int, default=4, help="each worker's polls per round")
    parser.add_argument(
        "--ways", nargs="+", default=["protocol", "uvicorn"], help="protocol, uvicorn (profiling)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="thresher-http-poll-") as tmp:
        print(json.dumps(_run(args, Path(tmp))))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
