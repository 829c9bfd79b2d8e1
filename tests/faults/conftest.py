"""Faults on a real farm: the controller and workers as subprocesses (see tests/e2e/conftest.py),
real SQLite and PostgreSQL, and the fault itself made for real (kill -9, SIGSTOP, a database
server stopped, a data directory's disk filled).

Every test runs a job whose tasks append their frame to a ledger as the very last thing they
do, and ends by counting frames missing and completed frames run twice: both must be 0. A frame
whose first run was lost before it completed (killed, or never finished) leaves no line for that
run, so running it again is allowed; a frame that completed and then ran again leaves two lines.
"""

from __future__ import annotations

import errno
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO
from tests.e2e.conftest import Farm, Proc, pid_alive
from tests.e2e.conftest import farm as farm
from tests.e2e.conftest import sqlite_farm as sqlite_farm
from thresher.testing import wait_until

PG_SERVER = REPO / "scripts" / "pg-server.sh"


@dataclass(frozen=True)
class Tally:
    """What a ledger shows for a job's frames."""

    missing: list[int]
    twice: list[int]  # frames whose run completed more than once
    runs: int


@dataclass(frozen=True)
class Ledger:
    """A file each task appends its frame to, with O_APPEND (`>>`), once its work is done."""

    path: Path

    def command(self, work: str = "") -> list[str]:
        """A task's argv: `work` (shell), then, only if it succeeded, the frame's line in the
        ledger, last."""
        mark = f"echo {{frame}} >> {shlex.quote(str(self.path))}"
        return ["sh", "-c", f"{work} && {mark}" if work else mark]

    def tally(self, frames: range) -> Tally:
        text = self.path.read_text() if self.path.exists() else ""
        runs = Counter(int(line) for line in text.split())
        return Tally(
            missing=sorted(set(frames) - set(runs)),
            twice=sorted(frame for frame, n in runs.items() if n > 1),
            runs=sum(runs.values()),
        )


def assert_exactly_once(farm: Farm, job_id: int, ledger: Ledger, frames: range) -> None:
    """The job succeeded; every frame completed once, none twice (by the ledger and by the
    controller's own attempts)."""
    with farm.client() as client:
        job = client.job(job_id)
        attempts = client.attempts(job_id)
    tally = ledger.tally(frames)
    twice = [
        (a.index, a.id, a.worker, a.status, a.message)
        for a in attempts
        if a.index + frames.start in tally.twice
    ]
    assert (tally.missing, tally.twice) == ([], []), (tally, twice)
    assert tally.runs == len(frames)
    assert job.status == "succeeded"
    assert job.counts.succeeded == len(frames)
    succeeded = Counter(a.index for a in attempts if a.status == "succeeded")
    assert succeeded == Counter(range(len(frames)))


def hold_fault(
    seconds: float, check: Callable[[], object], *, what: str, every: float = 0.5
) -> int:
    """Keep a fault on for `seconds`, calling `check` (which asserts what the farm shows
    meanwhile) every `every` seconds; returns how many checks ran."""
    end = time.monotonic() + seconds
    checks = 0
    next_check = 0.0

    def over() -> bool:
        nonlocal checks, next_check
        now = time.monotonic()
        if now >= next_check:
            check()
            checks += 1
            next_check = now + every
        return now >= end

    wait_until(over, timeout=seconds + 30, what=what)
    return checks


def request(farm: Farm, method: str, path: str, **kwargs: Any) -> int:
    """A request to the controller with the admin token: its status, which is a success or a
    503 (Retry-After, a JSON error naming the database), never anything else."""
    headers = {"Authorization": f"Bearer {farm.token}"}
    answer = httpx.request(method, farm.url + path, headers=headers, timeout=10, **kwargs)
    assert answer.status_code in (200, 503), (answer.status_code, answer.text)
    if answer.status_code == 503:
        assert answer.headers.get("Retry-After"), answer.headers
        body = answer.json()
        assert body["error"] == "unavailable", body
        assert body["message"].startswith("the database"), body
    return answer.status_code


def assert_no_internal_error(controller: Proc) -> None:
    """The controller answered no request with a 500 (each is logged as an unhandled error)."""
    assert "unhandled error" not in controller.text()


# -- processes ------------------------------------------------------------------------------------


def task_processes(worker: Proc) -> list[int]:
    """The worker's task processes: its children (each leads a process group of its own), but
    its guardian (the process that ends the tasks' groups if the worker dies)."""
    pid = worker.popen.pid
    children: set[int] = set()
    for thread in Path(f"/proc/{pid}/task").iterdir():
        try:
            children.update(int(c) for c in (thread / "children").read_text().split())
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return sorted(p for p in children if pid_alive(p) and not _is_guardian(p))


def _is_guardian(pid: int) -> bool:
    try:
        return b"guardian.py" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False


def signal_groups(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            continue


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "completed.txt")


@dataclass(frozen=True)
class PgCluster:
    """A PostgreSQL server of the test's own (scripts/pg-server.sh), so it can be stopped."""

    dir: Path
    url: str

    def down(self) -> None:
        _pg_server("down", self.dir)

    def up(self) -> None:
        _pg_server("up", self.dir)


def _pg_server(action: str, where: Path) -> str:
    done = subprocess.run(
        ["bash", str(PG_SERVER), action, str(where)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"pg-server.sh {action} failed: {done.stderr.strip()}")
    return done.stdout.strip()


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """Skips where the PostgreSQL server binaries are missing, except in CI."""
    # Under /tmp, not the test's tmp_path: the server runs as another user when we are root,
    # and pytest's directories are closed to others.
    where = Path(tempfile.mkdtemp(prefix="thresher-faults-pg-"))
    try:
        url = _pg_server("start", where)
    except RuntimeError as exc:
        shutil.rmtree(where, ignore_errors=True)
        if os.environ.get("CI"):
            raise
        pytest.skip(f"cannot start a PostgreSQL server of our own: {exc}")
    try:
        yield PgCluster(where, url)
    finally:
        _pg_server("stop", where)


@pytest.fixture
def pg_farm(tmp_path: Path, pg_cluster: PgCluster) -> Iterator[Farm]:
    f = Farm(tmp_path, pg_cluster.url)
    try:
        yield f
    finally:
        f.stop_all()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs at the farm's data directory (skips where mounting is not permitted)."""
    where = tmp_path / "data"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip() or 'not root'}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def fill(disk: Path) -> Path:
    """A file taking every free byte of `disk`."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (1 << 20, 4096):
            chunk = b"\0" * size
            try:
                while True:
                    out.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler
