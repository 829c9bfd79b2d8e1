"""Why a block waits: the reasons dispatch would give each worker, gathered for people.

For every online worker, the block is first tried on a lane as if it were free: what refuses
it there (NIMBY, sickness, the lane's engines, dependencies, error hosts, filters, caps,
limits) is why that worker cannot take it at all. A worker that could take it but has no lane
free is busy. A worker with a free lane that may take it will start it at its next poll. The
reasons are counted over the workers, most common first, so `thresher job why` can say "no
online worker matches ram:>64g (3 workers)" or "every matching worker is busy (2 workers)".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from thresher.core.dispatch import BlockView, FarmView, LaneView, refusal

NO_WORKER = "no worker is online"
BUSY = "every lane of the worker runs a task"
STARTS = "a free lane will take it at the worker's next poll"


@dataclass(frozen=True)
class WorkerLanes:
    """A worker's lanes: each as if it were free (what the worker could run at all), and
    those free now (with the capacity left on them)."""

    name: str
    any_lane: Sequence[LaneView]
    free_lanes: Sequence[LaneView]


@dataclass(frozen=True)
class Reason:
    """One reason a block waits, and on how many workers it holds."""

    text: str
    workers: int = 0


def block_waits(block: BlockView, workers: Sequence[WorkerLanes], farm: FarmView) -> list[Reason]:
    """Why `block` has tasks that no lane runs now, most common reason first."""
    if block.waiting is not None:
        return [Reason(block.waiting)]
    if not workers:
        return [Reason(NO_WORKER)]
    counted: Counter[str] = Counter(_worker_reason(block, w, farm) for w in workers)
    return [Reason(text, n) for text, n in counted.most_common()]


def _worker_reason(block: BlockView, worker: WorkerLanes, farm: FarmView) -> str:
    refused = [refusal(block, lane, farm) for lane in worker.any_lane]
    if refused and all(r is not None for r in refused):
        # The worker cannot take it, busy or not: say why, preferring what holds on every
        # lane (filters, caps, NIMBY) over one lane's engines.
        return str(min(refused, key=lambda r: str(r).startswith("lane ")))
    for lane in worker.free_lanes:
        if refusal(block, lane, farm) is None:
            return STARTS
    return BUSY
