"""Autoscaling decisions: how many workers a group should start, and which idle ones to retire.

A group is one kind of worker an autoscaler can start (a pool, a site, labels, the engines its
lanes run: what filters see of it, its `template`). Its demand is the tasks waiting in the
blocks whose filters and engine that kind of worker satisfies: demand per scheduling class, so
a pool-A backlog never starts pool-B workers. Everything here is a pure function of its inputs,
`now` included; `worker.autoscaler` does the I/O.

Rules, in order:
- wanted = ceil(waiting tasks / lanes per worker) + standby, within [min, max], and within what
  the budget allows (`max_cost_per_hour` / `cost_per_worker_hour` workers at once; once
  `max_worker_hours` are spent, nothing more starts and only `min` stay);
- start: wanted - workers (starting ones count), at most `scale_out_per_min` started within any
  minute;
- retire: workers idle (no task) for `idle_timeout_s`, longest idle first, while more than
  wanted remain. A worker is drained before it stops (it takes no new task first; see
  `worker.autoscaler`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from thresher.core.errors import InvalidInput
from thresher.core.filters import FilterSet, WorkerFacts, parse_filters

__all__ = [
    "BlockDemand",
    "Decision",
    "GroupState",
    "GroupWorker",
    "ScaleConfig",
    "decide",
    "demand_for",
]


@dataclass(frozen=True)
class ScaleConfig:
    min_workers: int = 0
    max_workers: int = 4
    standby: int = 0  # idle workers kept beyond the demand, ready for the next job
    lanes: int = 1  # lanes of each worker started
    scale_out_per_min: int = 10  # workers started within any 60 s at most
    idle_timeout_s: float = 300.0
    cost_per_worker_hour: float = 0.0
    max_cost_per_hour: float | None = None
    max_worker_hours: float | None = None


@dataclass(frozen=True)
class BlockDemand:
    """A block with tasks waiting to run: its filters (the job's and its own), what it runs."""

    waiting: int
    filters: str = ""
    runs: str = "command"  # the engine, or the job kind


@dataclass(frozen=True)
class GroupWorker:
    """A worker of the group, as the autoscaler knows it."""

    name: str
    started_at: float
    online: bool = False
    running: int = 0
    idle_since: float | None = None  # since when it runs nothing (None: busy or not up yet)
    draining: bool = False


@dataclass(frozen=True)
class Decision:
    start: int = 0
    retire: tuple[str, ...] = ()
    wanted: int = 0
    reason: str = ""


@dataclass(frozen=True)
class GroupState:
    """What the decision reads: the demand, the group's workers, recent starts, spend so far."""

    waiting: int
    workers: Sequence[GroupWorker] = ()
    recent_starts: Sequence[float] = ()
    worker_hours_spent: float = 0.0


def demand_for(
    blocks: Iterable[BlockDemand], template: WorkerFacts, engines: frozenset[str] | None = None
) -> int:
    """Waiting tasks that a worker with `template` facts (running `engines`; None: anything)
    may run."""
    total = 0
    for block in blocks:
        if block.waiting <= 0:
            continue
        if engines is not None and block.runs not in engines:
            continue
        if _filters(block.filters).matches(template):
            total += block.waiting
    return total


def _filters(text: str) -> FilterSet:
    try:
        return parse_filters(text)
    except InvalidInput:  # a filter this version cannot read: no worker of ours runs it
        return parse_filters("hostname:-*")


def budget_cap(config: ScaleConfig, spent_hours: float) -> tuple[int, str]:
    """Workers the budget allows at once, and why it caps (empty: it does not)."""
    cap, why = config.max_workers, ""
    if config.max_cost_per_hour is not None and config.cost_per_worker_hour > 0:
        by_cost = math.floor(config.max_cost_per_hour / config.cost_per_worker_hour)
        if by_cost < cap:
            cap, why = by_cost, f"cost {config.max_cost_per_hour}/h"
    if config.max_worker_hours is not None and spent_hours >= config.max_worker_hours:
        cap, why = min(cap, config.min_workers), f"{config.max_worker_hours} worker-hours spent"
    return max(cap, 0), why


def decide(config: ScaleConfig, state: GroupState, *, now: float) -> Decision:
    """What to start and retire now (see the module docstring)."""
    cap, capped = budget_cap(config, state.worker_hours_spent)
    needed = math.ceil(state.waiting / max(config.lanes, 1)) + config.standby
    wanted = max(config.min_workers, min(needed, cap))
    active = [w for w in state.workers if not w.draining]
    start = max(0, wanted - len(active))
    recent = sum(1 for t in state.recent_starts if now - t < 60.0)
    start = min(start, max(0, config.scale_out_per_min - recent), max(0, cap - len(active)))
    idle = sorted(
        (w for w in active if w.online and w.running == 0 and w.idle_since is not None),
        key=lambda w: (w.idle_since, w.name),
    )
    retire: list[str] = []
    for w in idle:
        if len(active) - len(retire) <= wanted:
            break
        assert w.idle_since is not None
        if now - w.idle_since >= config.idle_timeout_s:
            retire.append(w.name)
    reason = f"{state.waiting} waiting, wanted {wanted}" + (
        f" (capped by {capped})" if capped else ""
    )
    return Decision(start=start, retire=tuple(retire), wanted=wanted, reason=reason)
