"""A step of a job plan: dependencies, host filters and its tasks, computed from their index."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from openjd.model import StepParameterSpaceIterator

from thresher.openjd.host_requirements import host_filters

__all__ = ["StepPlan"]


@dataclass(frozen=True)
class StepPlan:
    """One step of a job (a Thresher block): its dependencies, host filters and lazy tasks.

    `task_count` counts dispatchable tasks (chunks, for a CHUNK[INT] step); `item_count` counts
    the individual tasks OpenJD reports (`openjd summary`). For a chunked step `chunk_size` is the
    size the indices use: `defaultTaskCount` unless the plan was made `with_chunk_size`. When
    `target_runtime_s` is set (`adaptive`), choosing later sizes is the caller's job (see
    `adapt_chunk_size`); chunks are then split evenly, like a step without a target.
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

    @property
    def adaptive(self) -> bool:
        """True when the step asks for chunks sized to a target run time."""
        return bool(self.target_runtime_s)

    def task_parameters(self, index: int) -> dict[str, str]:
        """Task `index`'s parameter values, as the text OpenJD substitutes (random access)."""
        if not 0 <= index < self.task_count:
            raise IndexError(f"task {index} is out of range for step {self.name!r}")
        return {name: str(value.value) for name, value in self.space[index].items()}

    def iter_task_parameters(self) -> Iterator[dict[str, str]]:
        """Every task's parameter values, in index order."""
        for index in range(self.task_count):
            yield self.task_parameters(index)

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
        task_count=len(space),
        item_count=len(items),
        chunk_parameter=chunk_parameter,
        chunk_size=chunk_size,
        default_chunk_size=default_chunk_size,
        target_runtime_s=target_runtime_s,
        model=step,
        space=space,
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
