"""End to end: a controller and workers as real processes, jobs of real subprocesses."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.conftest import Farm, pid_alive
from thresher.testing import wait_until

pytestmark = pytest.mark.e2e


def succeeded_per_task(farm: Farm, job_id: int) -> Counter[int]:
    with farm.client() as client:
        return Counter(a.index for a in client.attempts(job_id) if a.status == "succeeded")


def job_status(farm: Farm, job_id: int) -> str:
    with farm.client() as client:
        return client.job(job_id).status


def test_two_workers_run_200_tasks_each_exactly_once(farm: Farm) -> None:
    farm.controller()
    farm.worker("w1", lanes=2)
    farm.worker("w2", lanes=2)
    with farm.client() as client:
        job = client.submit("two hundred", ["sh", "-c", "echo task {frame}"], frames="1-200")
        wait_until(lambda: client.job(job.id).status == "succeeded", timeout=120, what="job done")
        done = client.job(job.id)
        attempts = client.attempts(job.id)
    assert done.counts.succeeded == 200
    assert succeeded_per_task(farm, job.id) == Counter(range(200))
    assert len(attempts) == 200  # nothing ran twice
    assert {a.worker for a in attempts} == {"w1", "w2"}


def test_killed_worker_task_is_requeued_after_lease(farm: Farm, tmp_path: Path) -> None:
    farm.controller(lease=2.0)
    doomed = farm.worker("doomed")
    marks = tmp_path / "marks"
    marks.mkdir()
    script = f"touch {marks}/started-{{frame}}-$$; sleep 3; echo rendered {{frame}}"
    with farm.client() as client:
        job = client.submit("survives", ["sh", "-c", script], frames="1")
        wait_until(
            lambda: any(marks.iterdir()), timeout=30, what="task started on the doomed worker"
        )
        doomed.kill9()
        farm.worker("rescuer")
        wait_until(lambda: client.job(job.id).status == "succeeded", timeout=60, what="job done")
        attempts = client.attempts(job.id)
    assert [(a.worker, a.status) for a in attempts] == [
        ("doomed", "lost"),
        ("rescuer", "succeeded"),
    ]


def test_killed_controller_restarts_and_nothing_is_lost(farm: Farm) -> None:
    controller = farm.controller(lease=5.0)
    farm.worker("w1", lanes=2)
    farm.worker("w2", lanes=2)
    with farm.client() as client:
        job = client.submit("crash", ["sh", "-c", "sleep 0.2; echo {frame}"], frames="1-60")
        wait_until(
            lambda: client.job(job.id).counts.succeeded >= 10, timeout=30, what="10 tasks done"
        )
    controller.kill9()
    farm.controller(lease=5.0)  # same data, same port: the workers re-attach
    with farm.client() as client:
        wait_until(lambda: client.job(job.id).status == "succeeded", timeout=120, what="job done")
        assert client.job(job.id).counts.succeeded == 60
    per_task = succeeded_per_task(farm, job.id)
    assert set(per_task) == set(range(60))
    assert max(per_task.values()) == 1  # no task has two succeeded attempts


def test_cancel_stops_running_processes_within_a_heartbeat(farm: Farm, tmp_path: Path) -> None:
    farm.controller(heartbeat=0.5)
    farm.worker("w1", lanes=2, grace=1.0)
    pids = tmp_path / "pids"
    pids.mkdir()
    # The task ignores SIGTERM, so only the SIGKILL after the grace period ends it.
    script = f"trap '' TERM; echo $$ > {pids}/{{frame}}; sleep 600"
    with farm.client() as client:
        job = client.submit("stuck", ["sh", "-c", script], frames="1-2")

        def written() -> list[str]:  # a pid file exists (empty) a moment before its pid
            return [p.read_text().strip() for p in pids.iterdir()]

        wait_until(
            lambda: len(written()) == 2 and all(written()), timeout=30, what="both tasks running"
        )
        running = [int(pid) for pid in written()]
        client.cancel(job.id)
        wait_until(lambda: not any(pid_alive(p) for p in running), timeout=15, what="kill")
        wait_until(
            lambda: all(a.status == "canceled" for a in client.attempts(job.id)),
            timeout=30,
            what="attempts canceled",
        )
        assert client.job(job.id).status == "canceled"


def test_failed_task_is_retried_then_fails_the_job(sqlite_farm: Farm) -> None:
    farm = sqlite_farm
    farm.controller()
    farm.worker("w1")
    with farm.client() as client:
        job = client.submit("broken", ["sh", "-c", "echo oops >&2; exit 3"], retries=2)
        wait_until(lambda: client.job(job.id).status == "failed", timeout=30, what="job failed")
        attempts = client.attempts(job.id)
        log = client.log(job.id, 0)
    assert [a.status for a in attempts] == ["failed"] * 3
    assert all(a.exit_code == 3 for a in attempts)
    assert [line.text for line in log] == ["oops"] * 3
    assert {line.stream for line in log} == {"stderr"}


def test_after_dependency_waits_for_the_first_job(sqlite_farm: Farm, tmp_path: Path) -> None:
    farm = sqlite_farm
    farm.controller()
    farm.worker("w1", lanes=2)
    order = tmp_path / "order.txt"
    with farm.client() as client:
        first = client.submit("first", ["sh", "-c", f"sleep 0.5; echo first >> {order}"])
        second = client.submit("second", ["sh", "-c", f"echo second >> {order}"], after=[first.id])
        assert client.job(second.id).status == "waiting"
        wait_until(
            lambda: client.job(second.id).status == "succeeded", timeout=30, what="second done"
        )
    assert order.read_text().split() == ["first", "second"]
