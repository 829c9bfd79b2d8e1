"""Estimated time left, from measured run times (pure).

A block's tasks take, each, the mean run time of its finished tasks (`BlockRecord
.mean_runtime_s`), else that of a similar block (same engine or kind, in the job or from the
farm's history: the caller's `fallback_s`). The work left is the tasks that may still be
dispatched at that time each, plus, for each running task, what is left of it (half a run
when its elapsed time is unknown). It is spread over the lanes the block holds now (at least
one): a paused or starved block shows the time its work would take on one lane."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from thresher.core.model import BlockRecord, Counts, JobRecord


@dataclass(frozen=True)
class Estimate:
    """`eta_s`: seconds until done (None: nothing measured yet); `work_s`: lane-seconds left;
    `per_task_s`: the run time a task is expected to take."""

    eta_s: float | None
    work_s: float | None
    per_task_s: float | None


def work_left(counts: Counts, per_task_s: float, running_elapsed: Sequence[float] = ()) -> float:
    """Lane-seconds of work left: runnable tasks in full, running ones what is left of them."""
    if running_elapsed:
        running = sum(max(per_task_s - e, 0.0) for e in running_elapsed)
        running += per_task_s / 2 * max(counts.running - len(running_elapsed), 0)
    else:
        running = per_task_s / 2 * counts.running
    return counts.runnable * per_task_s + running


def block_estimate(
    counts: Counts,
    mean_s: float | None,
    *,
    fallback_s: float | None = None,
    running_elapsed: Sequence[float] = (),
) -> Estimate:
    """The block's estimate (see the module's docstring)."""
    left = counts.runnable + counts.running
    per_task = mean_s if mean_s is not None else fallback_s
    if left == 0:
        return Estimate(0.0, 0.0, per_task)
    if per_task is None:
        return Estimate(None, None, None)
    work = work_left(counts, per_task, running_elapsed)
    return Estimate(work / max(counts.running, 1), work, per_task)


def _similar(block: BlockRecord, job: JobRecord) -> float | None:
    """The mean run time of the job's other blocks of the same engine (else of any)."""
    measured = [b for b in job.blocks if b.mean_runtime_s is not None and b is not block]
    same = [b for b in measured if b.spec.engine == block.spec.engine] or measured
    if not same:
        return None
    return sum(b.mean_runtime_s or 0.0 for b in same) / len(same)


def job_estimates(
    job: JobRecord,
    *,
    history_s: Mapping[str, float] | None = None,
    running_elapsed: Mapping[int, Sequence[float]] | None = None,
) -> tuple[Estimate, list[Estimate]]:
    """The job's estimate and each block's. `history_s`: the farm's usual run time by engine
    (or job kind), for blocks nothing of this job measured; `running_elapsed`: by block index,
    how long its running tasks have run."""
    history = history_s or {}
    elapsed = running_elapsed or {}
    blocks: list[Estimate] = []
    for block in job.blocks:
        fallback = _similar(block, job)
        if fallback is None:
            fallback = history.get(block.spec.engine or job.spec.kind)
        blocks.append(
            block_estimate(
                block.counts,
                block.mean_runtime_s,
                fallback_s=fallback,
                running_elapsed=elapsed.get(block.index, ()),
            )
        )
    if any(e.work_s is None for e in blocks):
        return Estimate(None, None, None), blocks
    work = sum(e.work_s or 0.0 for e in blocks)
    if work == 0:
        return Estimate(0.0, 0.0, None), blocks
    return Estimate(work / max(job.counts.running, 1), work, None), blocks


def task_eta(
    status: str, per_task_s: float | None, *, elapsed_s: float | None, progress: float | None
) -> float | None:
    """Seconds until one task is done once it runs: what is left of a running one (from its
    progress when it reports some, else from the block's run time), a whole run for one not
    started, 0 for one that ended."""
    if status in ("succeeded", "failed", "skipped", "canceled"):
        return 0.0
    if status != "running":
        return per_task_s
    if progress is not None and progress > 0 and elapsed_s is not None:
        return max(elapsed_s * (100.0 - progress) / progress, 0.0)
    if per_task_s is None:
        return None
    return max(per_task_s - (elapsed_s or 0.0), 0.0)
