"""Adaptive chunking of CHUNK[INT] steps: the chunks are the ones openjd-model's adaptive iterator
yields (`openjd run`'s), whatever sizes are set part-way, and a task's items give its parameters."""

from __future__ import annotations

import random
from typing import Any

import pytest
from openjd.model import StepParameterSpaceIterator

from thresher.controller.compile.openjd import block_spec
from thresher.core.chunk_plan import ADAPTIVE_CHUNK, ChunkPlan
from thresher.openjd import plan_job

pytestmark = pytest.mark.openjd

LAYER = {"name": "Layer", "type": "STRING", "range": ["a", "b", "c"]}
LAYER2 = {"name": "Layer", "type": "STRING", "range": ["a", "b"]}
CAMERA = {"name": "Cam", "type": "INT", "range": [1, 2]}


def template(
    frames: Any,
    size: int,
    constraint: str,
    others: list[dict[str, Any]],
    combination: str | None,
    *,
    target: int = 60,
) -> dict[str, Any]:
    chunk = {"defaultTaskCount": size, "targetRuntimeSeconds": target}
    chunk["rangeConstraint"] = constraint  # type: ignore[assignment]
    frame = {"name": "Frame", "type": "CHUNK[INT]", "range": frames, "chunks": chunk}
    space: dict[str, Any] = {"taskParameterDefinitions": [frame, *others]}
    if combination:
        space["combination"] = combination
    return {
        "specificationVersion": "jobtemplate-2023-09",
        "extensions": ["TASK_CHUNKING"],
        "name": "J",
        "steps": [
            {
                "name": "S",
                "parameterSpace": space,
                "script": {"actions": {"onRun": {"command": "echo"}}},
            }
        ],
    }


CASES = [
    ("1-10", 3, "CONTIGUOUS", [LAYER], None),
    ("1-10,20-24,30", 4, "CONTIGUOUS", [LAYER, CAMERA], "Layer * Frame * Cam"),
    ("1-10,20-24,30", 4, "NONCONTIGUOUS", [LAYER2, CAMERA], "(Layer, Cam) * Frame"),
    ("1-10,20-24,30", 4, "CONTIGUOUS", [LAYER2, CAMERA], "Frame * (Layer, Cam)"),
    ("1-40:3,50-70", 5, "CONTIGUOUS", [], None),
    ("1-40:3,50-70", 5, "NONCONTIGUOUS", [], None),
    ([5, 6, 7, 1, 2, 9], 2, "CONTIGUOUS", [LAYER], None),
]


@pytest.mark.parametrize(("frames", "size", "constraint", "others", "combination"), CASES)
def test_chunks_match_the_adaptive_iterator_across_resizes(
    frames: Any, size: int, constraint: str, others: list[dict[str, Any]], combination: str | None
) -> None:
    """GIVEN an adaptive step and the library's adaptive iterator
    WHEN both change the chunk size at the same random points
    THEN every chunk's parameters are the iterator's, in the same order."""
    step = plan_job(template(frames, size, constraint, others, combination)).steps[0]
    assert step.adaptive
    assert step.chunk_plan is not None
    for seed in range(25):
        rnd = random.Random(seed)
        reference = StepParameterSpaceIterator(space=step.model.parameterSpace)
        assert reference.chunks_adaptive
        plan: ChunkPlan = step.chunk_plan
        expected: list[dict[str, str]] = []
        while True:
            if rnd.random() < 0.3 and len(expected) < plan.task_count:
                new = rnd.randint(1, 9)
                reference.chunks_default_task_count = new
                plan = plan.replanned(len(expected), new)
            chunk = next(reference, None)
            if chunk is None:
                break
            expected.append({name: str(value.value) for name, value in chunk.items()})
        assert step.chunk_items is not None
        got = [step.chunk_items.parameters(*plan.task_items(t)) for t in range(plan.task_count)]
        assert got == expected


def test_the_first_plan_is_the_iterator_at_the_default_size() -> None:
    step = plan_job(template("1-10", 3, "CONTIGUOUS", [LAYER], None)).steps[0]
    reference = StepParameterSpaceIterator(space=step.model.parameterSpace)

    expected = [{n: str(v.value) for n, v in chunk.items()} for chunk in reference]

    assert [step.task_parameters(i) for i in range(step.task_count)] == expected
    assert expected[:4] == [
        {"Layer": "a", "Frame": "1-3"},
        {"Layer": "a", "Frame": "4-6"},
        {"Layer": "a", "Frame": "7-9"},
        {"Layer": "a", "Frame": "10-10"},
    ]
    assert (step.task_count, step.item_count) == (12, 30)


def test_an_assigned_task_gets_the_parameters_of_its_items() -> None:
    step = plan_job(template("1-10,20-24", 4, "CONTIGUOUS", [LAYER2], None)).steps[0]

    assert step.assigned_parameters(7, [20, 21, 22]) == {"Layer": "b", "Frame": "6-8"}
    assert step.assigned_parameters(0, [10]) == {"Layer": "a", "Frame": "20-20"}
    for frames in ([9, 10], [14, 15], [1, 3], []):  # a gap, two rows, not consecutive, none
        with pytest.raises(ValueError, match=r"chunk|gap"):
            step.assigned_parameters(0, frames)
    fixed = plan_job(template("1-10", 4, "CONTIGUOUS", [], None, target=0)).steps[0]
    assert not fixed.adaptive
    assert fixed.chunking() is None
    assert fixed.assigned_parameters(1, [1]) == {"Frame": "5-7"}  # by index, split evenly


def test_an_adaptive_step_is_a_block_of_its_items_with_a_chunk_plan() -> None:
    plan = plan_job(template("1-10", 3, "CONTIGUOUS", [LAYER], None))
    step = plan.steps[0]

    spec = block_spec(step, plan, retries=2)

    assert (spec.frames, spec.chunk) == ("0-29", ADAPTIVE_CHUNK)
    assert spec.chunking is not None
    stored = ChunkPlan.from_json(spec.chunking)
    assert stored == step.chunk_plan
    assert (stored.size, stored.target_s, stored.task_count) == (3, 60, 12)
