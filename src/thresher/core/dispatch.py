"""The dispatch choice: which blocks a lane may take, best first, from a snapshot of the farm.

A block is eligible for a lane when all of these hold (checked in this order; `refusal` names
the first that fails):

1. the worker takes work: enabled, not paused or stopped (NIMBY), not sick;
2. the lane runs the block's engine (or job kind);
3. the block's job is not held by its dependencies (jobs, blocks);
4. the block does not avoid the worker (error hosts);
5. the job's filters hold on the worker, pools included (`~p` looks at the other active jobs);
6. the worker has the free capacity the block asks for;
7. caps: running tasks of the job, of its owner, and of the job on this worker;
8. every limit (license) the block's tasks hold has a unit free for this host.

Eligible blocks are ordered by `ordering.dispatch_key`: dedicated pool, job priority, user
priority, fair share (the owner with fewer running tasks first), age.

`preemptions` decides which running attempts a dedicated job with `preempt` takes over.
The store re-checks limits, caps and task availability atomically when it claims; this module
only decides what to try, and in which order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from thresher.core.filters import FilterSet, PoolContext, WorkerFacts, dedicated_rank
from thresher.core.ordering import (
    Candidate,
    LimitState,
    capacity_allows,
    caps_allow,
    dispatch_key,
    limits_allow,
)

NO_FILTERS = FilterSet()
KT = TypeVar("KT")
VT = TypeVar("VT")

DEFAULT_CAPACITY = 1000
"""Capacity units of one lane, and what a block's task needs, unless set otherwise."""


def _frozen(mapping: Mapping[KT, VT]) -> MappingProxyType[KT, VT]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class LaneView:
    """One lane of a worker, as dispatch sees it.

    `free_capacity` is what a task starting on this lane may use; `running_by_job` counts the
    worker's running tasks per job; `unavailable` says why the worker takes no work (or None).
    """

    worker_id: int
    hostname: str
    facts: WorkerFacts
    lane: int = 0
    engines: frozenset[str] | None = None  # None: any engine or kind
    free_capacity: int = DEFAULT_CAPACITY
    running_by_job: Mapping[int, int] = field(default_factory=dict)
    unavailable: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "running_by_job", _frozen(self.running_by_job))
        if self.engines is not None:
            object.__setattr__(self, "engines", frozenset(self.engines))


@dataclass(frozen=True)
class BlockView:
    """A block with work left, and what its job asks of the worker that would run it."""

    job_id: int
    block_id: int
    owner: str
    job_priority: int
    submitted_at: float
    block_index: int = 0
    user_priority: int = 0
    runs: str = "command"  # the engine name, or the job kind when it has no engine
    filters: FilterSet = NO_FILTERS
    capacity: int = DEFAULT_CAPACITY
    limits: tuple[str, ...] = ()
    max_running: int | None = None
    max_running_per_host: int | None = None
    user_max_running: int | None = None
    waiting: str | None = None  # why dependencies hold the block back, or None
    avoids: frozenset[int] = frozenset()  # worker ids this block avoids (error hosts)
    preempt: bool = False
    runnable: int = 1  # tasks still to dispatch

    def candidate(self, facts: WorkerFacts) -> Candidate:
        """The block as ordering sees it on a worker with `facts`."""
        return Candidate(
            job_id=str(self.job_id).rjust(12, "0"),
            block_id=str(self.block_id),
            owner=self.owner,
            job_priority=self.job_priority,
            submitted_at=self.submitted_at,
            user_priority=self.user_priority,
            dedicated_rank=dedicated_rank(self.filters, facts),
            block_index=self.block_index,
        )


@dataclass(frozen=True)
class FarmView:
    """What is counted farm-wide: running tasks per job and per owner, limits in use, and how
    many active jobs include each pool (for `pool:~p`)."""

    running_by_job: Mapping[int, int] = field(default_factory=dict)
    running_by_user: Mapping[str, int] = field(default_factory=dict)
    limits: Mapping[str, LimitState] = field(default_factory=dict)
    pool_includers: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("running_by_job", "running_by_user", "limits", "pool_includers"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))

    def pool_context(self, block: BlockView) -> PoolContext:
        """The pools that active jobs other than the block's own include."""
        mine = block.filters.included_pools
        others = {p for p, n in self.pool_includers.items() if n - (p in mine) > 0}
        return PoolContext(frozenset(others))


def refusal(block: BlockView, lane: LaneView, farm: FarmView) -> str | None:
    """Why `lane` may not take a task of `block` now, or None when it may."""
    if lane.unavailable is not None:
        return lane.unavailable
    if lane.engines is not None and block.runs not in lane.engines:
        return f"lane {lane.lane} does not run {block.runs}"
    if block.waiting is not None:
        return block.waiting
    if lane.worker_id in block.avoids:
        return "the block avoids this worker after its errors here"
    context = farm.pool_context(block) if block.filters.exclusive_pools else None
    if not block.filters.matches(lane.facts, pool_context=context):
        return "; ".join(block.filters.reasons(lane.facts, pool_context=context))
    if not capacity_allows(lane.free_capacity, block.capacity):
        return f"needs capacity {block.capacity}, the lane has {lane.free_capacity} free"
    if not caps_allow(
        job_running=farm.running_by_job.get(block.job_id, 0),
        job_max=block.max_running,
        user_running=farm.running_by_user.get(block.owner, 0),
        user_max=block.user_max_running,
        job_running_on_host=lane.running_by_job.get(block.job_id, 0),
        job_max_per_host=block.max_running_per_host,
    ):
        return "a maximum of running tasks (job, user or per host) is reached"
    for name in block.limits:
        limit = farm.limits.get(name)
        if limit is not None and not limits_allow(limit, lane.hostname):
            return f"limit {name} is in use up to its maximum"
    return None


def rank(lane: LaneView, blocks: Iterable[BlockView], farm: FarmView) -> list[BlockView]:
    """The blocks `lane` may take a task of, best first."""
    eligible = [b for b in blocks if refusal(b, lane, farm) is None]
    running = farm.running_by_user
    return sorted(eligible, key=lambda b: dispatch_key(b.candidate(lane.facts), running))


@dataclass(frozen=True)
class RunningView:
    """An attempt running (or held ahead) on a worker's lane."""

    attempt_id: int
    job_id: int
    lane: int
    job_priority: int
    started_at: float
    stoppable: bool = True  # False once a stop was already asked for


def preemptions(
    free_lanes: Sequence[LaneView],
    busy_lanes: Sequence[LaneView],
    running: Sequence[RunningView],
    blocks: Sequence[BlockView],
    farm: FarmView,
) -> list[int]:
    """Attempts to cancel and requeue so that dedicated jobs with `preempt` get this worker.

    `busy_lanes` are the worker's occupied lanes described as if they were free. A job whose
    pool (`@p`) holds the worker may take over the lanes running jobs that are not dedicated to
    the worker, lowest priority and newest first, for as many tasks as it still has to
    dispatch beyond what the free lanes already give it."""
    if not busy_lanes:
        return []
    facts = busy_lanes[0].facts
    takers = [b for b in blocks if b.preempt and dedicated_rank(b.filters, facts) == 0]
    if not takers:
        return []
    dedicated_jobs = {b.job_id for b in blocks if dedicated_rank(b.filters, facts) == 0}
    demand = sum(b.runnable for b in takers)
    demand -= sum(1 for lane in free_lanes if any(refusal(b, lane, farm) is None for b in takers))
    if demand <= 0:
        return []
    on_lane: dict[int, list[RunningView]] = {}
    for r in running:
        on_lane.setdefault(r.lane, []).append(r)
    # A lane is taken over whole (its task and any held ahead), lowest priority, newest first.
    order = sorted(
        (lane for lane in busy_lanes if lane.lane in on_lane),
        key=lambda lane: min(
            (r.job_priority, -r.started_at, -r.attempt_id) for r in on_lane[lane.lane]
        ),
    )
    chosen: list[int] = []
    for lane in order:
        if demand <= 0:
            break
        held = on_lane[lane.lane]
        if any(r.job_id in dedicated_jobs for r in held):
            continue
        if any(refusal(b, lane, farm) is None for b in takers):
            chosen += [r.attempt_id for r in held if r.stoppable]
            demand -= 1
    return chosen
