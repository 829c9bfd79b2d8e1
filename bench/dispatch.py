"""Dispatch throughput: many simulated workers (one lane each) polling one controller over HTTP.

A `thresher controller` process serves a queue of short tasks (one job of `--tasks` one-frame
tasks). `--workers` simulated workers register, then each loops as the agent does: poll
(heartbeat + the previous tasks' finishes + a claim for its one lane), "run" what it got in no
time, poll again. With `--ahead N` a worker also asks to hold N short tasks ahead on its lane
(the agent's default is 1); the controller sizes what it hands out ahead by the block's mean run
time (`thresher.core.ahead`), so one poll may bring more than N+1 tasks, and the next reports
as many finishes. The load generator is lean on purpose, since the bench measures the controller:
`--connections` keep-alive HTTP/1.1 connections over raw asyncio streams with pre-encoded
requests (httpx cost about as much CPU per request as the controller), shared in turns by the
simulated workers, one request per connection in flight, in `--client-procs` processes (their
CPU time in the window is reported as `load_cpu_ms_per_assignment`).

Measured over a steady window (after `--warmup` seconds, for `--seconds`, while the queue still
has work): assignments per second, poll latency percentiles (from sending the poll on a
connection to reading the answer) and the controller's CPU time per assignment. By default it
runs on SQLite, then on a throwaway PostgreSQL cluster (scripts/pg-server.sh) when PostgreSQL
is installed, each with `--ahead 0` and `--ahead 3`, and prints one JSON line:

{"bench": "dispatch", "workers": 1000, "runs": {"sqlite": {"ahead_0": {...}, ...}, ...}, ...}
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from _pg_watch import PgWatch

GOALS = {"sqlite": 2000, "postgresql": 2000}  # issue 16: at least 2,000/s on both


@dataclass
class Stats:
    """What one client process saw inside the window (times are time.time() seconds)."""

    assignments: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # inside the window, by kind
    empty_polls: int = 0
    per_minute: list[int] = field(default_factory=list)  # assignments per minute of the window
    cpu_s: float = 0.0  # this load generator process's CPU time inside the window


async def _register(http: httpx.AsyncClient, token: str, name: str) -> str:
    body = {
        "name": name,
        "hostname": name,
        "os": "linux",
        "cores": 4,
        "ram_bytes": 8 << 30,
        "lanes": 1,
    }
    for attempt in range(20):
        try:
            r = await http.post(
                "/api/v1/agent/register", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            r.raise_for_status()
            return str(r.json()["token"])
        except httpx.HTTPError:
            await asyncio.sleep(0.1 * (attempt + 1))
    raise RuntimeError(f"cannot register {name}")


_FINISHED = '{"attempt_id":%d,"token":"%s","status":"succeeded","exit_code":0,"duration_s":0.001}'


class _Connection:
    """One keep-alive HTTP/1.1 connection to the controller, speaking just enough of the
    protocol for the poll: requests are pre-encoded bytes, answers are read by Content-Length.
    (httpx costs about as much CPU per request as the controller; this leaves it its core.)"""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
        try:
            header = await self.reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in header.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.lower() == b"content-length":
                    length = int(value)
            answer = await self.reader.readexactly(length)
        except (OSError, asyncio.IncompleteReadError):
            self.close()
            raise
        if b"connection: close" in header.lower():
            self.close()
        return int(header[9:12]), answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _connection_loop(
    conn: _Connection,
    tokens: list[str],
    *,
    ahead: int,
    window: tuple[float, float],
    stats: Stats,
) -> None:
    """The simulated workers sharing one connection take turns: poll (the previous tasks'
    finishes + a claim for the lane), "run" what came back in no time, and so on."""
    prefix = (
        b'{"lanes":[0],"ahead_lanes":%s,"wait_s":2.0,"finished":['
        % json.dumps([0] * ahead).encode()
    )
    heads = [
        (
            f"POST /api/v1/agent/poll HTTP/1.1\r\nHost: {conn.host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode()
        for token in tokens
    ]
    held: list[list[tuple[int, str]]] = [[] for _ in tokens]
    while time.time() < window[1]:
        for i, head in enumerate(heads):
            finished = ",".join(_FINISHED % a for a in held[i]).encode()
            sent = time.time()
            try:
                status, answer = await conn.post(head, prefix + finished + b"]}")
                if status != 200:
                    raise RuntimeError(f"HTTP {status}")
            except (OSError, asyncio.IncompleteReadError, RuntimeError) as exc:
                if window[0] <= sent <= window[1]:
                    kind = str(exc) if isinstance(exc, RuntimeError) else type(exc).__name__
                    stats.errors[kind] = stats.errors.get(kind, 0) + 1
                await asyncio.sleep(0.05)
                continue
            got = time.time()
            held[i] = [(a["attempt_id"], a["token"]) for a in json.loads(answer)["assignments"]]
            if window[0] <= sent and got <= window[1]:
                stats.latencies.append(got - sent)
                stats.assignments += len(held[i])
                minute = int((got - window[0]) // 60)
                while len(stats.per_minute) <= minute:
                    stats.per_minute.append(0)
                stats.per_minute[minute] += len(held[i])
                stats.empty_polls += not held[i]


async def _client(
    urls: list[str],
    token: str,
    names: list[str],
    *,
    connections: int,
    ahead: int,
    start: float,
    window: tuple[float, float],
) -> Stats:
    stats = Stats()
    registering = asyncio.Semaphore(20)
    limits = httpx.Limits(max_connections=20)
    async with httpx.AsyncClient(base_url=urls[0], limits=limits, timeout=60.0) as http:

        async def one(name: str) -> str:
            async with registering:
                return await _register(http, token, name)

        tokens = await asyncio.gather(*(one(n) for n in names))
    # A registered worker polls at once (as the agent does; a silent one would lose its lease).
    # With several controllers the connections are spread over them in turn.
    where = [u.removeprefix("http://").rsplit(":", 1) for u in urls]
    conns = [
        _Connection(where[i % len(where)][0], int(where[i % len(where)][1]))
        for i in range(connections)
    ]

    async def measure_cpu() -> None:
        await asyncio.sleep(max(0.0, window[0] - time.time()))
        cpu0 = time.process_time()
        await asyncio.sleep(max(0.0, window[1] - time.time()))
        stats.cpu_s = time.process_time() - cpu0

    await asyncio.gather(
        measure_cpu(),
        *(
            _connection_loop(conn, tokens[i::connections], ahead=ahead, window=window, stats=stats)
            for i, conn in enumerate(conns)
        ),
    )
    for conn in conns:
        conn.close()
    return stats


def _client_process(
    urls: list[str],
    token: str,
    names: list[str],
    options: dict[str, Any],
    out: Any,
) -> None:
    stats = asyncio.run(_client(urls, token, names, **options))
    out.put(stats)


def _merged(counts: list[dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for one in counts:
        for kind, n in one.items():
            out[kind] = out.get(kind, 0) + n
    return out


def _per_minute(stats: list[Stats], seconds: float) -> list[float]:
    """Assignments per second in each minute of the window (the last one may be shorter), so
    a rate that decays as the run goes on (a held snapshot's growing row chain) shows."""
    minutes = max(1, int(-(-seconds // 60)))
    totals = [0] * minutes
    for s in stats:
        for minute, n in enumerate(s.per_minute[:minutes]):
            totals[minute] += n
    lengths = [min(60.0, seconds - 60 * m) for m in range(minutes)]
    return [round(n / max(1e-9, length), 1) for n, length in zip(totals, lengths, strict=True)]


def _percentile(values: list[float], p: float) -> float:
    return round(c.percentile(values, p) * 1000, 1) if values else float("nan")


def run_db(args: argparse.Namespace, tmp: Path, db_url: str | None, db: str) -> dict[str, Any]:
    """Every --ahead setting on one database (a fresh controller and data for each)."""
    out: dict[str, Any] = {}
    for ahead in args.ahead:
        out[f"ahead_{ahead}"] = run_one(args, tmp, db_url, db, ahead=ahead)
        if db_url:
            _reset_pg(db_url)
    return out


def _reset_pg(url: str) -> None:
    """Drop every table, so the next run's controller starts from an empty database."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()


def run_one(
    args: argparse.Namespace, tmp: Path, db_url: str | None, db: str, *, ahead: int
) -> dict[str, Any]:
    # A long lease: a thousand simulated workers share a few processes and connections, so one
    # may wait its turn on the client side longer than a real machine ever would.
    extra = ["--heartbeat", "5", "--lease", str(args.lease)]
    with contextlib.ExitStack() as stack:
        # Several controllers share one PostgreSQL database (and one data directory, for the
        # admin token); the simulated workers' connections are spread over them.
        ctls = [
            stack.enter_context(c.controller(tmp / f"data-{db}-{ahead}", db_url, extra=extra))
            for _ in range(args.controllers)
        ]
        ctl = ctls[0]
        client = stack.enter_context(ctl.client(timeout=120))
        held = None
        if args.hold_vacuum and db_url:
            held = stack.enter_context(_vacuum_held_back(db_url))
        c.log(f"{db}: submitting {args.tasks} tasks")
        job = client.submit("bench-dispatch", ["true"], frames=f"1-{args.tasks}", chunk=1)
        names = [f"sim-{i:04d}" for i in range(args.workers)]
        per_proc = [names[i :: args.client_procs] for i in range(args.client_procs)]
        # Every worker registers before `start` (and polls from then on); the window follows
        # the warmup.
        start = time.time() + args.register_s
        window = (start + args.warmup, start + args.warmup + args.seconds)
        options = {
            "connections": max(1, args.connections // args.client_procs),
            "ahead": ahead,
            "start": start,
            "window": window,
        }
        ctx = mp.get_context("spawn")
        results = ctx.Queue()
        procs = [
            ctx.Process(
                target=_client_process,
                args=([x.url for x in ctls], ctl.token, chunk, options, results),
            )
            for chunk in per_proc
        ]
        for p in procs:
            p.start()
        time.sleep(max(0.0, window[0] - time.time()))
        watch = PgWatch(db_url) if db_url else None
        if watch is not None:
            watch.start()
        with c.py_spy({f"controller-{db}": ctl.pid}, args.profile):
            cpu0 = sum(c.cpu_seconds(x.pid) for x in ctls)
            loop0 = sum(c.loop_cpu_seconds(x.pid) for x in ctls)
            time.sleep(max(0.0, window[1] - time.time()))
            cpu1 = sum(c.cpu_seconds(x.pid) for x in ctls)
            loop1 = sum(c.loop_cpu_seconds(x.pid) for x in ctls)
        watched = None if watch is None else watch.stop()
        stats = [results.get(timeout=300) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        remaining = client.job(job.id).counts
        table_stats = _block_table_stats(db_url) if db_url else None
        held_s = None if held is None else round(time.monotonic() - held, 1)
        if remaining.waiting + remaining.queued == 0:
            c.log(f"{db}: the queue ran dry before the window ended: raise --tasks")
    latencies = [x for s in stats for x in s.latencies]
    assignments = sum(s.assignments for s in stats)
    result = {
        "controllers": args.controllers,
        "assignments_per_s": round(assignments / args.seconds, 1),
        "per_minute_per_s": _per_minute(stats, args.seconds),
        "goal_per_s": GOALS[db],
        "polls": len(latencies),
        "empty_polls": sum(s.empty_polls for s in stats),
        "poll_p50_ms": _percentile(latencies, 50),
        "poll_p95_ms": _percentile(latencies, 95),
        "poll_p99_ms": _percentile(latencies, 99),
        "errors": _merged([s.errors for s in stats]),
        "controller_cpu_s": round(cpu1 - cpu0, 1),
        "controller_cpu_ms_per_assignment": round((cpu1 - cpu0) * 1000 / max(1, assignments), 2),
        # Of which the event loop's (the main thread: HTTP, JSON, the hand-off to the farm
        # thread), per poll.
        "controller_loop_cpu_ms_per_poll": round(
            (loop1 - loop0) * 1000 / max(1, len(latencies)), 3
        ),
        "load_cpu_ms_per_assignment": round(
            sum(s.cpu_s for s in stats) * 1000 / max(1, assignments), 3
        ),
        "assignments_per_poll": round(assignments / max(1, len(latencies)), 2),
        "queue_left": remaining.waiting + remaining.queued,
    }
    if table_stats is not None:
        result["blocks_table"] = table_stats
    if watched is not None:
        result["pg_watch"] = watched
    result["vacuum_held_back"] = held_s is not None
    if held_s is not None:
        result["vacuum_held_back_s"] = held_s
    c.log(f"{db}, ahead {ahead}: {result}")
    return result


@contextlib.contextmanager
def _vacuum_held_back(url: str) -> Iterator[float]:
    """A REPEATABLE READ transaction on a connection of its own, open (its snapshot taken)
    until the context ends: no row version deleted or updated after it began can be removed by
    vacuum or pruned from its page meanwhile, as a long report or backup would hold it. Yields
    when it began (monotonic)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                conn.execute(sa.text("SELECT count(*) FROM blocks")).scalar()  # the snapshot
                c.log("vacuum held back: a REPEATABLE READ transaction is open")
                yield time.monotonic()
    finally:
        engine.dispose()


def _block_table_stats(url: str) -> dict[str, Any]:
    """How the blocks table (the hot cursor row) fared: updates, those that stayed HOT (no new
    index entry), dead row versions, and its size with its indexes."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup,"
                    " pg_total_relation_size(relid) AS bytes FROM pg_stat_user_tables"
                    " WHERE relname = 'blocks'"
                )
            ).one()
    finally:
        engine.dispose()
    return {
        "updates": row.n_tup_upd,
        "hot_updates": row.n_tup_hot_upd,
        "dead_rows": row.n_dead_tup,
        "bytes_with_indexes": row.bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument(
        "--ahead",
        type=lambda text: [int(x) for x in text.split(",")],
        default=[0, 3],
        help="short tasks a worker holds ahead on its lane; a comma list runs each",
    )
    parser.add_argument("--connections", type=int, default=100, help="HTTP connections in all")
    parser.add_argument(
        "--controllers",
        type=int,
        default=1,
        help="controllers sharing one PostgreSQL database (more than 1: PostgreSQL only)",
    )
    parser.add_argument("--client-procs", type=int, default=1, help="load generator processes")
    parser.add_argument("--register-s", type=float, default=30.0, help="time to register all")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--lease", type=float, default=120.0, help="the controller's --lease")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window")
    parser.add_argument(
        "--db",
        choices=["sqlite", "postgresql", "both"],
        default="both",
        help="both: PostgreSQL too when its server binaries are installed",
    )
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="py-spy the controller (see _profile_summary)"
    )
    parser.add_argument(
        "--hold-vacuum",
        action="store_true",
        help="PostgreSQL: hold back vacuum for the whole run (a REPEATABLE READ transaction "
        "open on another connection from before registration to the window's end; a "
        "10-minute hold: --seconds 600, per_minute_per_s shows the decay)",
    )
    c.add_common_options(parser)
    args = parser.parse_args()
    if args.hold_vacuum and args.db == "sqlite":
        parser.error("--hold-vacuum needs PostgreSQL (--db postgresql)")
    if args.controllers > 1 and args.db == "sqlite":
        parser.error("--controllers above 1 needs PostgreSQL (--db postgresql)")

    busy_before = c.wait_quiet(args.quiet_wait)
    runs: dict[str, Any] = {}
    with c.temp_dir(args.keep) as tmp:
        if args.db in ("sqlite", "both") and not (args.pg or args.db_url):
            runs["sqlite"] = run_db(args, tmp, None, "sqlite")
        if args.db in ("postgresql", "both"):
            if args.pg or args.db_url:
                with c.database(args, tmp) as (db_url, db):
                    runs[db] = run_db(args, tmp, db_url, db)
            elif shutil.which("pg_ctl") or list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
                with c.pg_cluster(tmp) as server, c.fresh_pg_database(server) as db_url:
                    runs["postgresql"] = run_db(args, tmp, db_url, "postgresql")
            else:
                c.log("no PostgreSQL server binaries: PostgreSQL skipped")
    c.emit(
        {
            "bench": "dispatch",
            "workers": args.workers,
            "lanes_per_worker": 1,
            "ahead": args.ahead,
            "connections": args.connections,
            "controllers": args.controllers,
            "latency": "from sending a poll on a connection to reading its answer",
            "client_procs": args.client_procs,
            "window_s": args.seconds,
            "runs": runs,
            "profiled": bool(args.profile),
            "cpu_busy_before_pct": busy_before,
            "topology": "controller process; simulated workers taking turns on keep-alive "
            f"connections (raw asyncio streams) in {args.client_procs} other process(es)",
            "machine": c.machine(),
            "date": c.stamp(),
        }
    )


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
