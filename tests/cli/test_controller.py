"""GIVEN an empty data directory WHEN `thresher controller` runs as a process THEN it writes the
admin token, says where it listens, serves /healthz, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import queue
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from thresher.cli.controller import serve_controller
from thresher.controller.settings import ControllerSettings

THRESHER = Path(sys.executable).with_name("thresher")
DEADLINE_S = 30.0
LISTENING = "thresher controller listening on "


class Process:
    """A `thresher controller` process whose stdout lines arrive on a queue."""

    def __init__(self, data_dir: Path) -> None:
        self.popen = subprocess.Popen(
            [
                THRESHER,
                "controller",
                "--data-dir",
                str(data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def read_until(self, prefix: str) -> list[str]:
        """Lines up to and including the first one starting with `prefix`."""
        seen: list[str] = []
        while True:
            line = self.lines.get(timeout=DEADLINE_S)
            if line is None:
                pytest.fail(f"the controller ended before {prefix!r}: {seen}")
            seen.append(line)
            if line.startswith(prefix):
                return seen

    def stop(self) -> int:
        self.popen.terminate()
        return self.popen.wait(timeout=DEADLINE_S)

    def rest(self) -> list[str]:
        lines = []
        while (line := self.lines.get(timeout=DEADLINE_S)) is not None:
            lines.append(line)
        return lines


@pytest.fixture
def start() -> Iterator[Callable[[Path], Process]]:
    started: list[Process] = []

    def make(data_dir: Path) -> Process:
        process = Process(data_dir)
        started.append(process)
        return process

    yield make
    for process in started:
        if process.popen.poll() is None:
            process.popen.kill()
            process.popen.wait()


def test_controller_process_serves_and_stops_on_sigterm(
    start: Callable[[Path], Process], tmp_path: Path
) -> None:
    data_dir = tmp_path / "farm"
    process = start(data_dir)

    lines = process.read_until(LISTENING)
    url = lines[-1].removeprefix(LISTENING)
    health = httpx.get(f"{url}/healthz", timeout=DEADLINE_S)

    token_file = data_dir / "admin-token"
    assert f"admin token written to {token_file}" in lines
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    assert url.startswith("http://127.0.0.1:")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert process.stop() == 0
    assert "thresher controller stopped" in process.rest()


def test_sigterm_answers_a_held_poll_and_stops_without_a_traceback(
    start: Callable[[Path], Process], tmp_path: Path
) -> None:
    data_dir = tmp_path / "farm"
    process = start(data_dir)
    url = process.read_until(LISTENING)[-1].removeprefix(LISTENING)
    admin = {"Authorization": f"Bearer {(data_dir / 'admin-token').read_text().strip()}"}
    registered = httpx.post(
        f"{url}/api/v1/agent/register",
        json={"name": "w1", "hostname": "w1", "os": "linux", "cores": 2, "ram_bytes": 2**30},
        headers=admin,
        timeout=DEADLINE_S,
    ).json()
    worker = {"Authorization": f"Bearer {registered['token']}"}
    answers: queue.Queue[httpx.Response | Exception] = queue.Queue()

    def held_poll() -> None:
        try:
            body = {"lanes": [0], "wait_s": 60}
            answers.put(
                httpx.post(f"{url}/api/v1/agent/poll", json=body, headers=worker, timeout=60)
            )
        except Exception as exc:  # reported to the test below
            answers.put(exc)

    def seen() -> float:
        path = f"{url}/api/v1/workers/{registered['worker_id']}"
        return float(httpx.get(path, headers=admin, timeout=DEADLINE_S).json()["last_seen"])

    registered_seen = seen()
    threading.Thread(target=held_poll, daemon=True).start()
    deadline = time.monotonic() + DEADLINE_S
    while seen() == registered_seen:  # the poll's heartbeat: it is in, with nothing to run
        assert time.monotonic() < deadline, "the poll never reached the controller"
    process.popen.terminate()
    answer = answers.get(timeout=DEADLINE_S)

    assert isinstance(answer, httpx.Response), answer
    assert answer.status_code == 200
    assert answer.json()["assignments"] == []
    assert process.popen.wait(timeout=DEADLINE_S) == 0
    rest = process.rest()
    assert rest == ["thresher controller stopped"], rest


def test_a_restart_on_the_same_data_keeps_the_admin_token(
    start: Callable[[Path], Process], tmp_path: Path
) -> None:
    data_dir = tmp_path / "farm"
    first = start(data_dir)
    first.read_until(LISTENING)
    assert first.stop() == 0
    token = (data_dir / "admin-token").read_text()

    second = start(data_dir)
    lines = second.read_until(LISTENING)
    url = lines[-1].removeprefix(LISTENING)
    jobs = httpx.get(
        f"{url}/api/v1/jobs", headers={"Authorization": f"Bearer {token.strip()}"}, timeout=30
    )

    assert not any(line.startswith("admin token written") for line in lines)
    assert (data_dir / "admin-token").read_text() == token
    assert jobs.status_code == 200
    assert second.stop() == 0


def test_serve_controller_refuses_a_busy_address(tmp_path: Path) -> None:
    settings = ControllerSettings(data_dir=tmp_path / "farm")

    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve_controller(settings, host="127.0.0.1", port=port)
