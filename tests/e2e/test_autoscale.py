"""End to end: `thresher autoscale` with the local-process provider starts real `thresher
worker` processes for a pool's backlog (each enrolling with a one-time code of its own), loses
none of its tasks when one of its workers is killed, and retires its workers once they are
idle."""

from __future__ import annotations

import psutil
import pytest

from tests.e2e.conftest import THRESHER, Farm
from thresher.client import Client
from thresher.testing import wait_until

pytestmark = pytest.mark.e2e


def group_workers(client: Client) -> list[str]:
    return [w.name for w in client.workers() if w.name.startswith("rnd-") and w.status == "online"]


def worker_pid(name: str) -> int:
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "worker" in cmdline and "--name" in cmdline and name in cmdline:
            return int(proc.info["pid"])
    raise AssertionError(f"no process of worker {name}")


def test_local_autoscaling_of_a_pool(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    farm.controller(lease=3.0)
    argv = [THRESHER, "autoscale", "--group", "rnd", "--controller", farm.url]
    argv += ["--token", farm.token, "--pool", "render", "--max", "2", "--idle-timeout", "3"]
    argv += ["--every", "0.5", "--work-root", str(farm.tmp / "autoscaled"), "-v"]
    with farm.client() as client:
        other = client.submit("elsewhere", ["true"], frames="1-3", filters="pool:+comp")
        job = client.submit("shots", ["sleep", "1"], frames="1-8", filters="pool:+render")
        scaler = farm._spawn("autoscale", argv)
        most = 0

        def running_task() -> str | None:
            nonlocal most
            online = group_workers(client)
            most = max(most, len(online))
            busy = [w.name for w in client.workers() if w.name in online and w.running]
            return busy[0] if busy else None

        victim = wait_until(running_task, timeout=60, what="a task running on an autoscaled worker")
        assert victim is not None
        psutil.Process(worker_pid(victim)).kill()  # a reclaimed machine: SIGKILL, no goodbye
        wait_until(
            lambda: running_task() is None and client.job(job.id).status == "succeeded",
            timeout=120,
            what="the job done",
        )
        assert most <= 2
        # Idle for 3 s, drained, stopped: none of the group's workers stays.
        wait_until(lambda: not group_workers(client), timeout=30, what="idle workers retired")
        assert client.job(other.id).status == "queued"  # pool comp: no worker of ours serves it
        attempts = client.attempts(job.id)
    assert {a.status for a in attempts} <= {"succeeded", "lost"}
    assert sum(a.status == "succeeded" for a in attempts) == 8
    assert "starting rnd-" in scaler.text()
    started = list((farm.tmp / "autoscaled").iterdir())
    assert len(started) >= 3  # two, and one for the killed one
    # Each enrolled with its own one-time code, and kept the token it was given for it.
    assert all((work / "worker-token").exists() for work in started)
