"""A step of a job plan: dependencies, host filters and its tasks, computed from their index."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openjd.model import StepParameterSpaceIterator

from thresher.core.chunk_plan import MAX_CHUNK_ITEMS, ChunkPlan
from thresher.core.frames import MAX_ITEMS
from thresher.openjd.chunking import ChunkItems
from thresher.openjd.host_requirements import host_filters

__all__ = ["StepPlan"]


@dataclass(frozen=True)
class StepPlan:
    """One step of a job (a Thresher block): its dependencies, host filters and lazy tasks.

    `task_count` counts dispatchable tasks (chunks, for a CHUNK[INT] step); `item_count` counts
    the individual tasks OpenJD reports (`openjd summary`). For a chunked step `chunk_size` is the
    size the indices use: `defaultTaskCount` unless the plan was made `with_chunk_size`. Chunks
    are split evenly, as the library splits them, unless `target_runtime_s` is set (`adaptive`):
    then the items follow `openjd run`'s adaptive order (`chunk_items`, the CHUNK[INT] parameter
    innermost), cut greedily as `chunk_plan` says. That plan starts with `chunk_size` for every
    chunk; a block re-plans its chunks as run times are measured (`thresher.core.chunk_plan`), and
    a task's items then come with its assignment (`assigned_parameters`).
    """

    name: str
    index: int
    dependencies: tuple[str, ...]
    host_filters: tuple[str, ...]
    unmapped_requirements: tuple[str, ...]
    host_requirements: Mapping[str, Any] | None
    parameter_types: Mapping[str, str]
    task_count: int
    item_count: int
    chunk_parameter: str | None
    chunk_size: int | None
    default_chunk_size: int | None
    target_runtime_s: int | None
    model: Any = field(repr=False, compare=False)
    space: Any = field(repr=False, compare=False)
    chunk_items: ChunkItems | None = field(default=None, repr=False, compare=False)
    chunk_plan: ChunkPlan | None = field(default=None, repr=False, compare=False)

    @property
    def adaptive(self) -> bool:
        """True when the step's chunks are sized to a target run time (a step of more than
        10,000,000 items keeps `defaultTaskCount`)."""
        return self.chunk_plan is not None

    def task_parameters(self, index: int) -> dict[str, str]:
        """Task `index`'s parameter values, as the text OpenJD substitutes (random access). For
        an adaptive step, task `index` of the first plan (every chunk of `chunk_size`)."""
        if not 0 <= index < self.task_count:
            raise IndexError(f"task {index} is out of range for step {self.name!r}")
        if self.chunk_plan is not None and self.chunk_items is not None:
            return self.chunk_items.parameters(*self.chunk_plan.task_items(index))
        return {name: str(value.value) for name, value in self.space[index].items()}

    def assigned_parameters(self, index: int, frames: Sequence[int]) -> dict[str, str]:
        """The parameters of an assigned task: for an adaptive step, of the items its frames
        list (consecutive item positions, as the block's chunk plan cut them); else of task
        `index`."""
        if self.chunk_items is None or self.chunk_plan is None:
            return self.task_parameters(index)
        if not frames or frames[-1] - frames[0] != len(frames) - 1:
            raise ValueError(f"frames {list(frames)[:3]}... are not a chunk of step {self.name!r}")
        return self.chunk_items.parameters(frames[0], len(frames))

    def chunking(self) -> dict[str, Any] | None:
        """An adaptive step's first chunk plan, as its block stores it; else None."""
        return None if self.chunk_plan is None else self.chunk_plan.to_json()

    def with_chunk_size(self, chunk_size: int) -> StepPlan:
        """The same step with its items cut into chunks of `chunk_size` (CHUNK[INT] steps)."""
        if self.chunk_parameter is None:
            raise ValueError(f"step {self.name!r} has no CHUNK[INT] parameter")
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        return step_plan(self.model, self.index, chunk_size=chunk_size)

    def to_json(self) -> dict[str, Any]:
        """What a block stores next to its job's plan to get this step back."""
        return {"step": self.name, "chunk_size": self.chunk_size}


def step_plan(step: Any, index: int, *, chunk_size: int | None = None) -> StepPlan:
    """The plan of an instantiated openjd-model Step."""
    definitions = dict(step.parameterSpace.taskParameterDefinitions) if step.parameterSpace else {}
    chunk_parameter = None
    default_chunk_size = target_runtime_s = None
    for name, definition in definitions.items():
        if definition.type.value == "CHUNK[INT]":
            chunk_parameter = name
            default_chunk_size = int(definition.chunks.defaultTaskCount)
            target = definition.chunks.targetRuntimeSeconds
            target_runtime_s = int(target) if target is not None else None
    if chunk_parameter is not None and chunk_size is None:
        chunk_size = default_chunk_size
    # With an override the iterator never runs adaptively, so it keeps random access.
    space = StepParameterSpaceIterator(
        space=step.parameterSpace, chunks_task_count_override=chunk_size
    )
    items = StepParameterSpaceIterator(space=step.parameterSpace, chunks_task_count_override=1)
    task_count = len(space)
    chunk_items: ChunkItems | None = None
    plan: ChunkPlan | None = None
    if target_runtime_s and chunk_size is not None and len(items) <= MAX_ITEMS:
        # Adaptive: `openjd run`'s order and greedy cut, so the chunk size may change later.
        chunk_items = ChunkItems.of_space(step.parameterSpace)
        if chunk_items is not None:
            plan = ChunkPlan.start(
                chunk_items.grid,
                chunk_size,
                target_s=target_runtime_s,
                max_size=max(MAX_CHUNK_ITEMS, chunk_size),
            )
            task_count = plan.task_count
    requirements = _requirements(step.hostRequirements)
    filters = host_filters(requirements)
    return StepPlan(
        name=str(step.name),
        index=index,
        dependencies=tuple(str(d.dependsOn) for d in step.dependencies or ()),
        host_filters=filters.filters,
        unmapped_requirements=filters.unmapped,
        host_requirements=requirements,
        parameter_types={name: str(d.type.value) for name, d in definitions.items()},
        task_count=task_count,
        item_count=len(items),
        chunk_parameter=chunk_parameter,
        chunk_size=chunk_size,
        default_chunk_size=default_chunk_size,
        target_runtime_s=target_runtime_s,
        model=step,
        space=space,
        chunk_items=chunk_items,
        chunk_plan=plan,
    )


def _requirements(requirements: Any) -> dict[str, Any] | None:
    if requirements is None:
        return None
    result: dict[str, Any] = {}
    if requirements.amounts:
        result["amounts"] = [
            {
                key: plain_value(value)
                for key, value in (("name", a.name), ("min", a.min), ("max", a.max))
                if value is not None
            }
            for a in requirements.amounts
        ]
    if requirements.attributes:
        result["attributes"] = [
            {
                key: value
                for key, value in (("name", a.name), ("anyOf", a.anyOf), ("allOf", a.allOf))
                if value is not None
            }
            for a in requirements.attributes
        ]
    return result


def plain_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
