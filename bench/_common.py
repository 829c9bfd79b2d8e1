"""Shared plumbing for the benchmarks: start a controller and workers on 127.0.0.1, stop them.

Every benchmark prints exactly one JSON line on stdout; everything else goes to stderr. What a
benchmark starts (controller, workers, a throwaway PostgreSQL database, temp dirs) it stops and
removes, also when it fails or is interrupted.

Topology: the controller runs as `thresher controller` in its own process and each worker as
`thresher worker` in its own process, both from the virtualenv that runs the benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from thresher.client import Client

TOPOLOGY = "controller and worker(s) as separate processes (thresher controller / thresher worker)"
REPO = Path(__file__).resolve().parent.parent


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def emit(result: dict[str, Any]) -> None:
    """The benchmark's one line of stdout."""
    print(json.dumps(result, separators=(", ", ": ")), flush=True)


def run(bench: str, main: Callable[[], dict[str, Any]]) -> None:
    """Run a benchmark's `main` and print its result; a failure is printed as one JSON line
    with "error" too (and the exit status is 1), so a results file always parses."""
    try:
        result = main()
    except KeyboardInterrupt:
        emit({"bench": bench, "error": "interrupted", "date": stamp()})
        raise SystemExit(130) from None
    except SystemExit as exc:
        if exc.code in (0, None):  # --help
            raise
        log(f"{bench} failed: {exc.code}")
        emit({"bench": bench, "error": str(exc.code), "date": stamp()})
        raise SystemExit(1) from None
    except Exception as exc:
        log(f"{bench} failed: {type(exc).__name__}: {exc}")
        emit({"bench": bench, "error": f"{type(exc).__name__}: {exc}", "date": stamp()})
        raise SystemExit(1) from None
    emit(result)


def dump_stacks(pids: dict[str, int]) -> None:
    """Print the Python stacks of the named processes to stderr (py-spy dump), for hangs."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists() and shutil.which(exe) is None:
        log("no py-spy: cannot show where the processes are stuck")
        return
    for name, pid in pids.items():
        log(f"stacks of the {name} (pid {pid}):")
        subprocess.run([exe, "dump", "--pid", str(pid)], stdout=sys.stderr, check=False)


def thresher_argv() -> list[str]:
    """How to run the `thresher` command of the interpreter running this script."""
    script = Path(sys.executable).parent / "thresher"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from thresher.cli.main import main; main()"]


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db-url",
        help="PostgreSQL server URL (postgresql+psycopg://user@host:port/db): the bench creates a "
        "throwaway database on that server and drops it afterwards. Default: SQLite in a temp dir.",
    )
    parser.add_argument(
        "--pg",
        action="store_true",
        help="start a throwaway PostgreSQL cluster with scripts/pg-server.sh and use it",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temp data dir (its path goes to stderr)"
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        metavar="S",
        help="wait up to S seconds for the machine to be idle (< 15%% CPU busy) before measuring; "
        "the busy share seen is reported as cpu_busy_before_pct",
    )


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "python_loop_ms": python_loop_ms(),
    }


def python_loop_ms(*, n: int = 1_000_000, tries: int = 5) -> float:
    """The machine's speed for plain Python today: the best of `tries` runs of a loop of `n`
    additions, in ms. The same machine kind has run it 2-3 x slower one day than another
    (a shared VM), so figures of different days are compared through it, never directly."""
    best = float("inf")
    for _ in range(tries):
        started = time.perf_counter()
        total = 0
        for i in range(n):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


def wait_quiet(max_wait_s: float, *, busy_pct: float = 15.0) -> float:
    """Wait until the whole machine is under `busy_pct` CPU for 2 s in a row (other people's
    builds skew a 2-core machine); returns the last share seen, in percent."""
    deadline = time.monotonic() + max_wait_s
    seen = psutil.cpu_percent(interval=1.0)
    while True:
        seen = max(seen, psutil.cpu_percent(interval=1.0))
        if seen < busy_pct or time.monotonic() > deadline:
            if seen >= busy_pct:
                log(f"the machine is still {seen:.0f}% busy; measuring anyway")
            return round(seen, 1)
        log(f"the machine is {seen:.0f}% busy; waiting for it to calm down")
        seen = psutil.cpu_percent(interval=1.0)


def stamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    rank = max(1, -(-len(ordered) * p // 100))  # ceil without floats
    return ordered[int(rank) - 1]


# -- databases ----------------------------------------------------------------------------------


@contextlib.contextmanager
def pg_cluster(tmp: Path) -> Iterator[str]:
    """A throwaway PostgreSQL cluster (scripts/pg-server.sh), stopped and removed afterwards.

    Its data dir is made under /tmp rather than in `tmp`: as root the server runs as `postgres`,
    which must reach the dir, and a short path keeps the Unix socket under its length limit."""
    data = Path(tempfile.mkdtemp(prefix="thresher-bench-pg-", dir="/tmp"))
    data.rmdir()  # pg-server.sh wants a missing or empty dir it may hand to another user
    script = REPO / "scripts" / "pg-server.sh"
    log("starting a throwaway PostgreSQL cluster")
    url = subprocess.run(
        ["bash", str(script), "start", str(data)],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout.strip()
    try:
        yield url
    finally:
        log("stopping the PostgreSQL cluster")
        subprocess.run(["bash", str(script), "stop", str(data)], stdout=sys.stderr, check=False)


@contextlib.contextmanager
def fresh_pg_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server of `server_url`; dropped afterwards."""
    import sqlalchemy as sa

    name = f"thresher_bench_{secrets.token_hex(4)}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextlib.contextmanager
def database(args: argparse.Namespace, tmp: Path) -> Iterator[tuple[str | None, str]]:
    """(database URL or None for SQLite, "sqlite" | "postgresql")."""
    if args.pg:
        with pg_cluster(tmp) as server, fresh_pg_database(server) as url:
            yield url, "postgresql"
    elif args.db_url:
        if not args.db_url.startswith("postgresql"):
            raise SystemExit("--db-url must be a postgresql URL (SQLite is the default)")
        with fresh_pg_database(args.db_url) as url:
            yield url, "postgresql"
    else:
        yield None, "sqlite"


@contextlib.contextmanager
def temp_dir(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="thresher-bench-"))
    try:
        yield path
    finally:
        if keep:
            log(f"kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


# -- processes ----------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pump(self, stream: IO[str]) -> None:
        """Copy the process's output to our stderr (prefixed) and keep it."""

        def run() -> None:
            for line in stream:
                self.lines.append(line.rstrip("\n"))
                print(f"  {self.name}: {line.rstrip()}", file=sys.stderr, flush=True)

        self._reader = threading.Thread(target=run, daemon=True)
        self._reader.start()

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for {timeout:.0f}s; killing it")
                self.popen.kill()
                self.popen.wait()
        if self._reader is not None:
            self._reader.join(2)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
) -> Proc:
    popen = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )
    proc = Proc(name, popen)
    assert popen.stdout is not None
    proc.pump(popen.stdout)
    return proc


@dataclass
class Controller:
    proc: Proc
    url: str
    token: str
    data_dir: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def client(self, timeout: float = 60.0) -> Client:
        return Client(self.url, self.token, timeout=timeout)


@contextlib.contextmanager
def controller(
    data_dir: Path,
    database_url: str | None,
    *,
    extra: Sequence[str] = (),
    startup_timeout_s: float = 60.0,
) -> Iterator[Controller]:
    """`thresher controller` on a free port of 127.0.0.1; SIGTERM on exit."""
    port = free_port()
    argv = [*thresher_argv(), "controller", "--data-dir", str(data_dir), "--port", str(port)]
    if database_url:
        argv += ["--database-url", database_url]
    argv += list(extra)
    proc = spawn("controller", argv)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + startup_timeout_s
        while not any("listening on" in line for line in proc.lines):
            if proc.popen.poll() is not None:
                raise RuntimeError(f"the controller exited with status {proc.popen.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("the controller did not start in time")
            time.sleep(0.02)
        token = (data_dir / "admin-token").read_text().strip()
        yield Controller(proc, url, token, data_dir)
    finally:
        proc.stop()


@contextlib.contextmanager
def worker(
    ctl: Controller,
    *,
    name: str,
    lanes: int,
    ahead: int | None,
    work_dir: Path,
) -> Iterator[Proc]:
    argv = [
        *thresher_argv(),
        "worker",
        "--controller",
        ctl.url,
        "--token",
        ctl.token,
        "--name",
        name,
        "--lanes",
        str(lanes),
        "--work-dir",
        str(work_dir),
        "--verbose",  # it logs the requests it sent when it stops (see worker_sent)
    ]
    if ahead is not None:
        argv += ["--ahead", str(ahead)]
    proc = spawn(name, argv)
    try:
        yield proc
    finally:
        proc.stop()


def worker_sent(proc: Proc) -> dict[str, int]:
    """What a stopped worker logged it sent: {"polls": .., "reports": .., "finishes": ..}."""
    for line in reversed(proc.lines):
        _, found, sent = line.partition(" sent ")
        if found:
            pairs = (item.strip().split(" ", 1) for item in sent.split(","))
            return {what: int(n) for n, what in pairs if n.isdigit()}
    return {}


def wait_online(client: Client, names: Sequence[str], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        online = {w.name for w in client.workers() if getattr(w, "status", "online") == "online"}
        if set(names) <= online:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers {sorted(set(names) - online)} did not come online")
        time.sleep(0.05)


def wait_job(
    client: Client,
    job_id: int,
    *,
    every_s: float,
    timeout_s: float,
    stall_s: float | None = None,
    pids: dict[str, int] | None = None,
) -> Any:
    """Poll until the job is final; returns the JobOut. Raises when it is not done within
    `timeout_s`, or, given `stall_s`, when no task has ended for that long; either way the stacks
    of `pids` are dumped to stderr first, to show where a hang is."""
    deadline = time.monotonic() + timeout_s
    last_ended, last_change = -1, time.monotonic()
    while True:
        job = client.job(job_id)
        if job.status in ("succeeded", "failed", "canceled"):
            return job
        now = time.monotonic()
        ended = job.counts.succeeded + job.counts.failed + job.counts.skipped + job.counts.canceled
        if ended != last_ended:
            last_ended, last_change = ended, now
        elif stall_s is not None and now - last_change > stall_s:
            if pids:
                dump_stacks(pids)
            raise RuntimeError(
                f"job {job_id} stalled: no task ended for {stall_s:.0f}s: {job.counts}"
            )
        if now > deadline:
            if pids:
                dump_stacks(pids)
            raise RuntimeError(f"job {job_id} not done after {timeout_s:.0f}s: {job.counts}")
        time.sleep(every_s)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (children not included)."""
    t = psutil.Process(pid).cpu_times()
    return float(t.user + t.system)


def loop_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process's main thread (a controller's event loop: its
    HTTP serving; the farm thread's store work is the rest)."""
    for thread in psutil.Process(pid).threads():
        if thread.id == pid:
            return float(thread.user_time + thread.system_time)
    return 0.0


def children_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the children a process has waited for."""
    t = psutil.Process(pid).cpu_times()
    return float(t.children_user + t.children_system)


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 1e6


@contextlib.contextmanager
def py_spy(targets: dict[str, int], out_dir: Path | None, *, rate: int = 250) -> Iterator[None]:
    """Sample each {name: pid} with `py-spy record --pid` (non-blocking, every thread) while the
    block runs; collapsed stacks go to OUT_DIR/NAME.txt. Nothing happens when out_dir is None."""
    if out_dir is None:
        yield
        return
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists() and shutil.which(exe) is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    spies = []
    for name, pid in targets.items():
        argv = [exe, "record", "--pid", str(pid), "--format", "raw", "--threads"]
        argv += ["--nonblocking", "--rate", str(rate), "-o", str(out_dir / f"{name}.txt")]
        spies.append(
            subprocess.Popen(argv, stdout=sys.stderr, stderr=sys.stderr, stdin=subprocess.DEVNULL)
        )
    time.sleep(0.5)  # py-spy attaches
    try:
        yield
    finally:
        for spy in spies:
            if spy.poll() is None:
                spy.send_signal(signal.SIGINT)
        for spy in spies:
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
