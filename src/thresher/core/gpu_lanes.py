"""GPU lanes: a lane may own GPU device ids; what filters see of a lane that does.

A worker that declares GPU lanes is, for filters (`gpu:>0`, `gpu:>=2`), as many GPUs as the
lane asking for work owns: a job that needs a GPU goes to a GPU lane, never to a CPU lane of
the same machine. A worker that declares none is seen whole (its `gpus` fact), as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from thresher.core.filters import WorkerFacts

__all__ = ["LaneGpus", "gpu_lanes", "lane_facts"]

LaneGpus = Mapping[int, tuple[int, ...]]


def gpu_lanes(
    mapping: Mapping[str, Sequence[int]] | Mapping[int, Sequence[int]] | None,
) -> dict[int, tuple[int, ...]]:
    """A lane -> GPU ids table read back from JSON (whose keys are strings)."""
    return {int(k): tuple(int(g) for g in v) for k, v in (mapping or {}).items()}


def lane_facts(facts: WorkerFacts, lane_gpus: LaneGpus, lane: int) -> WorkerFacts:
    """The facts filters see for `lane`: its own GPU count when the worker has GPU lanes."""
    if not lane_gpus:
        return facts
    return replace(facts, gpus=len(lane_gpus.get(lane, ())))
