"""What a worker offers to dispatch: lanes and the engines they run, capacity units, NIMBY.

- A lane runs the engines (or job kinds) the worker declared for it, unless the controller
  overrides that lane; a lane with no list runs anything.
- Capacity (after Afanasy): a worker has capacity units, 1000 per lane unless set; a task holds
  its block's capacity while it runs. A lane runs one task at a time (tasks held ahead on it
  wait their turn), so a lane's load is the largest capacity among the tasks it holds, and the
  worker's use is the sum of its lanes' loads.
- NIMBY: a worker paused takes no new tasks; stopped, it also gives back the ones it runs. Either
  may come from the controller or from the worker's own machine; the stricter one wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

from thresher.core.dispatch import DEFAULT_CAPACITY


class Nimby(StrEnum):
    PAUSED = "paused"
    STOPPED = "stopped"

    @classmethod
    def stricter(cls, *states: Nimby | str | None) -> Nimby | None:
        """The strictest of `states` (stopped > paused > none)."""
        found = {cls(s) for s in states if s}
        if cls.STOPPED in found:
            return cls.STOPPED
        return cls.PAUSED if found else None


EngineList = Sequence[str] | None


def effective_engines(
    lanes: int,
    declared: Mapping[int, EngineList] | None,
    overrides: Mapping[int, EngineList] | None,
) -> dict[int, frozenset[str] | None]:
    """Each lane's engines (None: anything): the controller's override, else the declaration."""
    out: dict[int, frozenset[str] | None] = {}
    for lane in range(lanes):
        if overrides is not None and lane in overrides:
            chosen = overrides[lane]
        else:
            chosen = (declared or {}).get(lane)
        out[lane] = None if chosen is None else frozenset(chosen)
    return out


def lane_keys(
    mapping: Mapping[str, EngineList] | Mapping[int, EngineList] | None,
) -> dict[int, tuple[str, ...] | None]:
    """A lane table read back from JSON (whose keys are strings)."""
    return {int(k): (None if v is None else tuple(v)) for k, v in (mapping or {}).items()}


def worker_capacity(capacity: int | None, lanes: int, lanes_in_use: int = 0) -> int:
    """A worker's capacity units: as set, else 1000 per lane (counting lanes in use beyond the
    declared number, which only old clients that ask for tasks without naming lanes cause)."""
    if capacity is not None:
        return capacity
    return DEFAULT_CAPACITY * max(lanes, lanes_in_use)


LaneKey = int | tuple[str, int]


def lane_loads(held: Iterable[tuple[int | None, int | None, int]]) -> dict[LaneKey, int]:
    """Each lane's load from the tasks it holds, as (lane, capacity, attempt id) triples; a task
    without a lane is a lane of its own."""
    loads: dict[LaneKey, int] = {}
    for lane, capacity, attempt_id in held:
        key: LaneKey = lane if lane is not None else ("attempt", attempt_id)
        loads[key] = max(loads.get(key, 0), capacity or 0)
    return loads


def free_capacity(total: int, loads: Mapping[LaneKey, int], lane: int) -> int:
    """The most a task starting on `lane` may need: what is free plus what the lane already
    holds (the new task runs after, not beside, the lane's current task)."""
    return total - sum(loads.values()) + loads.get(lane, 0)
