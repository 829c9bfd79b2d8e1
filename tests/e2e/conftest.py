"""Real processes on 127.0.0.1: `thresher controller` and `thresher worker` as subprocesses.

Every process a test starts is stopped by that test's fixtures, by PID.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from thresher.client import Client
from thresher.testing import wait_until

THRESHER = str(Path(sys.executable).with_name("thresher"))


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        def seen() -> re.Match[str] | None:
            if self.popen.poll() is not None:
                raise AssertionError(f"process exited early:\n{self.text()}")
            return re.search(pattern, self.text())

        match = wait_until(seen, timeout=timeout, what=f"{pattern!r} in {self.log.name}")
        assert match is not None  # wait_until returns a true value or raises
        return match

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


class Farm:
    """Starts controllers and workers for one test and stops them all at its end."""

    def __init__(self, tmp: Path, db_url: str | None) -> None:
        self.tmp = tmp
        self.db_url = db_url
        self.data_dir = tmp / "data"
        self.procs: list[Proc] = []
        self.url = ""
        self.port = 0
        self.token = ""

    def _spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.tmp / f"{name}-{len(self.procs)}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        proc = Proc(popen, log)
        self.procs.append(proc)
        return proc

    def controller(
        self, *, heartbeat: float = 0.5, lease: float = 3.0, args: Sequence[str] = ()
    ) -> Proc:
        argv = [THRESHER, "controller", "--data-dir", str(self.data_dir), "--host", "127.0.0.1"]
        argv += list(args)
        argv += ["--port", str(self.port), "--heartbeat", str(heartbeat), "--lease", str(lease)]
        if self.db_url and not self.db_url.startswith("sqlite"):
            argv += ["--database-url", self.db_url]
        proc = self._spawn("controller", argv)
        match = proc.wait_for(r"listening on (http://127\.0\.0\.1:(\d+))")
        self.url, self.port = match.group(1), int(match.group(2))
        self.token = (self.data_dir / "admin-token").read_text().strip()
        return proc

    def worker(
        self, name: str, *, lanes: int = 1, grace: float = 2.0, args: Sequence[str] = ()
    ) -> Proc:
        """A worker; `args` adds options (`--site`, `--pool`, `--attr`, `--lane-engines`...)."""
        argv = [THRESHER, "worker", "--controller", self.url, "--token", self.token]
        argv += ["--name", name, "--lanes", str(lanes), "--grace", str(grace)]
        argv += ["--work-dir", str(self.work_dir(name)), "--verbose", *args]
        proc = self._spawn(f"worker-{name}", argv)
        with Client(self.url, self.token) as client:
            wait_until(
                lambda: any(w.name == name and w.status == "online" for w in client.workers()),
                timeout=30,
                what=f"worker {name} online",
            )
        return proc

    def work_dir(self, name: str) -> Path:
        return self.tmp / f"work-{name}"

    def client(self) -> Client:
        return Client(self.url, self.token)

    def stop_all(self) -> None:
        """Workers first (they report their last words), then controllers."""
        workers = [p for p in self.procs if p.log.name.startswith("worker")]
        for proc in [*workers, *(p for p in self.procs if p not in workers)]:
            proc.stop()


@pytest.fixture
def farm(tmp_path: Path, db_url: str) -> Iterator[Farm]:
    f = Farm(tmp_path, db_url)
    try:
        yield f
    finally:
        f.stop_all()


@pytest.fixture
def sqlite_farm(tmp_path: Path) -> Iterator[Farm]:
    f = Farm(tmp_path, None)
    try:
        yield f
    finally:
        f.stop_all()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:  # reaped between the signal and the read
        return False
    return state != "Z"
