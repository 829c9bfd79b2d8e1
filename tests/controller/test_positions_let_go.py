"""Positions a controller holds of a job's blocks (PostgreSQL's reserved ranges, `store.ranges`)
are let go when the job ends: a canceled job's stayed in the controller's memory for good. A
retry of the job still hands out every task it has left (the positions let go are found again
below the cursor). On SQLite, which holds no positions, the same steps come out the same."""

from __future__ import annotations

from tests.controller.test_use_case_transactions import ALICE, claim, farm, register

from thresher.controller.farm import Farm
from thresher.schemas import api
from thresher.store import ranges

__all__ = ["farm"]  # the fixture, used by name


def _held(farm: Farm, job_id: int) -> int:
    return sum(ranges.held(farm.store.engine, b.id) for b in farm.store.jobs.get(job_id).blocks)


def test_a_canceled_job_lets_its_positions_go_and_a_retry_still_runs_every_task(
    farm: Farm,
) -> None:
    job = farm.jobs.submit(
        ALICE, api.JobIn(name="shot", frames="1-50", command=["true", "{frame}"], retries=0)
    )
    worker = register(farm, "w1", lanes=1)
    (first,) = claim(farm, worker, [0]).assignments
    done = api.FinishIn(attempt_id=first.attempt_id, token=first.token, status="succeeded")
    farm.agents.report(worker, api.ReportIn(finished=[done]))
    if farm.store.dialect == "postgresql":
        assert _held(farm, job.id) > 0  # the claim reserved more than it handed out

    farm.jobs.cancel(ALICE, job.id)

    assert farm.store.jobs.get(job.id).finished_at is not None
    assert _held(farm, job.id) == 0
    farm.jobs.retry(ALICE, job.id)
    frames = {first.frames[0]}
    while got := claim(farm, worker, [0]).assignments:
        (task,) = got
        assert task.frames[0] not in frames  # no frame handed out twice
        frames.add(task.frames[0])
        end = api.FinishIn(attempt_id=task.attempt_id, token=task.token, status="succeeded")
        farm.agents.report(worker, api.ReportIn(finished=[end]))
    assert frames == set(range(1, 51))
