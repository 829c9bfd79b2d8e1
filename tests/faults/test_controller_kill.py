"""The controller killed (-9) ten times during a 500-task job, restarted each time on the same
data and port: nothing lost, nothing that completed runs twice."""

from __future__ import annotations

import functools

import pytest

from tests.e2e.conftest import Farm
from tests.faults.conftest import Ledger, assert_exactly_once
from thresher.testing import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.e2e]

TASKS = 500
KILLS = 10


def succeeded_at_least(farm: Farm, job_id: int, target: int) -> int:
    """How many of the job's tasks are recorded done, once that is `target` or more; else 0."""
    with farm.client() as client:
        done = client.job(job_id).counts.succeeded
    return done if done >= target else 0


def test_controller_killed_ten_times_during_a_500_task_job(farm: Farm, ledger: Ledger) -> None:
    controller = farm.controller(heartbeat=0.5, lease=5.0)
    farm.worker("w1", lanes=2)
    farm.worker("w2", lanes=2)
    frames = range(1, TASKS + 1)
    with farm.client() as client:
        # Tasks of 50 ms: few are held ahead on a lane, so the job outlives the ten kills.
        job = client.submit("kill -9", ledger.command("sleep 0.05"), frames=f"1-{TASKS}")
    done_at_kill: list[int] = []
    for kill in range(1, KILLS + 1):
        # Spread over the job's life: the k-th kill once k/12 of the job is recorded done
        # (a restarted controller takes in at once what the workers finished meanwhile).
        target = TASKS * kill // (KILLS + 2)
        done = wait_until(
            functools.partial(succeeded_at_least, farm, job.id, target),
            timeout=60,
            what=f"{target} tasks done before kill {kill}",
        )
        done_at_kill.append(done)
        controller.kill9()
        controller = farm.controller(heartbeat=0.5, lease=5.0)
    assert all(n < TASKS for n in done_at_kill), done_at_kill  # every kill hit a running job
    with farm.client() as client:
        wait_until(lambda: client.job(job.id).status == "succeeded", timeout=120, what="job done")
    assert_exactly_once(farm, job.id, ledger, frames)
