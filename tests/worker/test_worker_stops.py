"""How a `thresher worker` process ends, and what its tasks do then: a worker killed with SIGKILL
takes its task processes with it (its guardian ends them); one stopped with SIGTERM or Ctrl-C
stops its tasks, reports them, says goodbye and exits. A real controller served on 127.0.0.1
(behind a proxy that counts the requests), a real worker process, real tasks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.worker.fault_proxy import FaultProxy, fault_proxy
from thresher.client import Client
from thresher.controller.settings import ControllerSettings
from thresher.testing import ServedController, serve_in_thread, wait_until

THRESHER = str(Path(sys.executable).with_name("thresher"))
GOODBYE = "/api/v1/agent/goodbye"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().split()[2] != "Z"
    except OSError:
        return False


@contextmanager
def farm(tmp_path: Path) -> Iterator[tuple[ServedController, FaultProxy, Client]]:
    settings = ControllerSettings(data_dir=tmp_path / "data", heartbeat_s=0.5)
    with (
        serve_in_thread(settings) as served,
        fault_proxy(served.url, {}) as proxy,
        Client(served.url, served.admin_token) as client,
    ):
        yield served, proxy, client


@contextmanager
def worker(
    tmp_path: Path, served: ServedController, proxy: FaultProxy
) -> Iterator[subprocess.Popen[bytes]]:
    """A `thresher worker` process with one lane; killed at the end if it still runs."""
    argv = [THRESHER, "worker", "--controller", proxy.url, "--token", served.admin_token]
    argv += ["--name", "w1", "--work-dir", str(tmp_path / "work"), "--grace", "1"]
    with (tmp_path / "worker.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def started(pids: Path) -> list[int]:
    """The pids a task wrote (its shell's and its background child's), once it wrote them."""
    text = pids.read_text() if pids.exists() else ""
    return [int(p) for p in text.split()] if text.endswith("\n") else []


def test_a_killed_workers_tasks_die_with_it(tmp_path: Path) -> None:
    """GIVEN a worker running a task (a shell and a child of its own) WHEN the worker is killed
    with SIGKILL THEN both task processes are gone within the grace."""
    pids = tmp_path / "pids"
    script = f'sleep 600 & echo "$$ $!" > {pids}; wait'
    with farm(tmp_path) as (served, proxy, client), worker(tmp_path, served, proxy) as proc:
        client.submit("long", ["sh", "-c", script], frames="1")
        task = wait_until(lambda: started(pids), timeout=60, what="the task started")
        assert all(alive(pid) for pid in task)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        wait_until(
            lambda: not any(alive(pid) for pid in task), timeout=15, what="the task processes end"
        )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_worker_stops_its_task_reports_it_and_says_goodbye(
    tmp_path: Path, sig: signal.Signals
) -> None:
    """GIVEN a worker running a task WHEN it gets SIGTERM (or Ctrl-C's SIGINT) THEN it stops the
    task, reports it canceled (its task goes back to the queue), says goodbye and exits 0."""
    pids = tmp_path / "pids"
    script = f'sleep 600 & echo "$$ $!" > {pids}; wait'
    with farm(tmp_path) as (served, proxy, client), worker(tmp_path, served, proxy) as proc:
        job = client.submit("long", ["sh", "-c", script], frames="1")
        task = wait_until(lambda: started(pids), timeout=60, what="the task started")
        proc.send_signal(sig)
        assert proc.wait(timeout=15) == 0
        assert not any(alive(pid) for pid in task)
        attempts = client.attempts(job.id)
        goodbyes = sum(n for (path, _), n in proxy.answered.items() if path == GOODBYE)
    assert [a.status for a in attempts] == ["canceled"]
    assert goodbyes == 1
    log = (tmp_path / "worker.log").read_text()
    assert "stopping" in log
    assert "goodbye" in log
