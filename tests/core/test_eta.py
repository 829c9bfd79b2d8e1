"""Estimates from measured run times (core.eta), pure."""

from __future__ import annotations

import pytest

from thresher.core.eta import block_estimate, job_estimates, task_eta
from thresher.core.model import BlockRecord, BlockSpec, Counts, JobRecord, JobSpec
from thresher.core.states import JobStatus


def block(index: int, counts: Counts, mean: float | None, engine: str | None = None) -> BlockRecord:
    spec = BlockSpec(
        name=f"b{index}", frames="1-10", chunk=1, task_count=counts.total, engine=engine
    )
    return BlockRecord(index, 1, index, spec, 0, counts, mean)


def job(*blocks: BlockRecord) -> JobRecord:
    spec = JobSpec(name="j", owner="ana", priority=50, kind="command", blocks=())
    total = sum((b.counts for b in blocks), Counts())
    return JobRecord(1, spec, False, 0.0, None, total, JobStatus.RUNNING, blocks=blocks)


def test_work_left_is_spread_over_the_lanes_the_block_holds() -> None:
    counts = Counts(total=20, succeeded=4, running=2)  # 14 waiting
    exact = block_estimate(counts, 10.0, running_elapsed=[4.0, 4.0])
    assert exact.eta_s == pytest.approx((14 * 10 + 2 * 6) / 2)
    blind = block_estimate(counts, 10.0)  # elapsed unknown: half a run each
    assert blind.eta_s == pytest.approx((14 * 10 + 2 * 5) / 2)


def test_a_block_with_nothing_measured_borrows_a_similar_block_else_has_none() -> None:
    done = block(0, Counts(total=4, succeeded=4), 8.0, engine="blender")
    fresh = block(1, Counts(total=3), None, engine="blender")
    other = block(2, Counts(total=3), None, engine="nuke")
    whole, (_, borrowed, unknown) = job_estimates(job(done, fresh, other))
    assert borrowed.eta_s == pytest.approx(3 * 8.0)  # one lane: nothing of it runs
    assert unknown.per_task_s == 8.0  # no nuke block measured: any block of the job
    assert whole.eta_s == pytest.approx(6 * 8.0)
    alone, (only,) = job_estimates(job(block(0, Counts(total=2), None, engine="nuke")))
    assert (alone.eta_s, only.eta_s) == (None, None)
    hinted, _ = job_estimates(
        job(block(0, Counts(total=2), None, engine="nuke")), history_s={"nuke": 30.0}
    )
    assert hinted.eta_s == pytest.approx(60.0)


def test_a_finished_block_needs_no_time() -> None:
    assert block_estimate(Counts(total=3, succeeded=2, failed=1), None).eta_s == 0.0


def test_a_task_eta_follows_its_progress_else_its_block_run_time() -> None:
    assert task_eta("running", 10.0, elapsed_s=6.0, progress=75.0) == pytest.approx(2.0)
    assert task_eta("running", 10.0, elapsed_s=6.0, progress=None) == pytest.approx(4.0)
    assert task_eta("waiting", 10.0, elapsed_s=None, progress=None) == 10.0
    assert task_eta("succeeded", 10.0, elapsed_s=None, progress=None) == 0.0
