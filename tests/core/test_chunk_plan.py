"""Chunk plans: greedy chunks by index, and re-planning that never loses or repeats an item."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from thresher.core.chunk_plan import (
    MAX_PLANS,
    ChunkPlan,
    ItemGrid,
    PlanEntry,
    PlannedLayout,
)

GRIDS = [
    ItemGrid.of_lengths(1, [100]),  # one CONTIGUOUS stretch: 1-100
    ItemGrid.of_lengths(3, [10, 5, 1]),  # 3 layers of 1-10,20-24,30
    ItemGrid.of_lengths(2, [1] * 7 + [4, 4, 2]),  # gaps everywhere, then stretches
    ItemGrid.of_lengths(4, [17]),  # NONCONTIGUOUS: one run per row
]


def greedy(grid: ItemGrid, sizes: dict[int, int], first: int) -> list[tuple[int, int]]:
    """Chunks the slow way: walk the items, cut at `sizes` (task -> size from then on), and stop
    every chunk at the end of its run (what `openjd run` does)."""
    ends = set()
    for row in range(grid.rows):
        offset = row * grid.row_length
        for count, length in grid.runs:
            for _ in range(count):
                offset += length
                ends.add(offset)
    out: list[tuple[int, int]] = []
    item, size = 0, first
    while item < grid.item_count:
        size = sizes.get(len(out), size)
        start = item
        while item - start < size:
            item += 1
            if item in ends:
                break
        out.append((start, item - start))
    return out


def all_items(plan: ChunkPlan) -> list[tuple[int, int]]:
    return [plan.task_items(t) for t in range(plan.task_count)]


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 100, 1000])
def test_a_plan_cuts_like_the_greedy_walk(grid: ItemGrid, size: int) -> None:
    plan = ChunkPlan.start(grid, size, target_s=60)

    assert all_items(plan) == greedy(grid, {}, size)
    for task, (first, count) in enumerate(all_items(plan)):
        assert {plan.task_of_item(i) for i in range(first, first + count)} == {task}
    with pytest.raises(IndexError):
        plan.task_items(plan.task_count)
    with pytest.raises(IndexError):
        plan.task_of_item(grid.item_count)


@pytest.mark.parametrize("seed", range(60))
def test_re_planning_keeps_held_tasks_and_every_item_once(seed: int) -> None:
    """GIVEN any grid and any sequence of re-sizes at tasks nobody holds yet
    THEN tasks already handed out keep their index and items, the tasks together hold every
    item exactly once, and the chunks are those of the greedy walk with those sizes."""
    rnd = random.Random(seed)
    grid = rnd.choice(GRIDS)
    plan = ChunkPlan.start(grid, rnd.randint(1, 8), target_s=60)
    held: dict[int, tuple[int, int]] = {}
    sizes = {0: plan.size}
    for _ in range(rnd.randint(1, 40)):
        # Hand out a few more tasks (as the cursor would), then re-plan past them.
        first_free = min(plan.task_count, max(held, default=-1) + 1 + rnd.randint(0, 3))
        for task in range(first_free):
            held.setdefault(task, plan.task_items(task))
        size = rnd.randint(1, 12)
        before = plan
        plan = plan.replanned(first_free, size)
        if plan is not before and first_free < plan.task_count:
            sizes[first_free] = size
        assert {t: plan.task_items(t) for t in held} == held
        assert len(plan.entries) <= MAX_PLANS
    items = Counter(i for first, count in all_items(plan) for i in range(first, first + count))
    assert items == Counter(range(grid.item_count))
    assert all_items(plan) == greedy(grid, sizes, sizes[0])


def test_a_plan_nobody_started_is_replaced_not_added() -> None:
    plan = ChunkPlan.start(ItemGrid.of_lengths(1, [20]), 2, target_s=60)

    again = plan.replanned(0, 5)

    assert again.entries == (PlanEntry(0, 0, 5),)
    later = again.replanned(1, 3).replanned(1, 4)
    assert later.entries == (PlanEntry(0, 0, 5), PlanEntry(1, 5, 4))
    assert later.task_count == 1 + 4  # 5 items, then 15 in chunks of 4
    assert later.replanned(later.task_count, 9) is later  # nothing left to cut
    with pytest.raises(ValueError, match="before"):
        later.replanned(0, 2)


def test_a_full_plan_keeps_its_last_size() -> None:
    plan = ChunkPlan.start(ItemGrid.of_lengths(1, [1000]), 1, target_s=60)
    for task in range(1, MAX_PLANS):
        plan = plan.replanned(task, 1 + task % 2)
    assert len(plan.entries) == MAX_PLANS

    assert plan.replanned(MAX_PLANS + 5, 9) is plan
    assert plan.replanned(MAX_PLANS - 1, 9).size == 9  # its last plan had nothing out yet


def test_measurements_decide_the_next_size_as_openjd_run_does() -> None:
    plan = ChunkPlan.start(ItemGrid.of_lengths(1, [1000]), 2, target_s=10, max_size=50)
    assert plan.proposed_size() is None  # nothing measured

    # 2 items in 1 s: 20 a chunk, damped with under ten items: 0.75 * 2 + 0.25 * 20 = 6.5.
    assert plan.measured(2, 1.0).proposed_size() == 6
    # 12 items in 6 s: 20 a chunk.
    assert plan.measured(12, 6.0).proposed_size() == 20
    assert plan.measured(100, 1.0).proposed_size() == 50  # capped
    assert plan.measured(0, 5.0) is plan
    steady = ChunkPlan.start(ItemGrid.of_lengths(1, [1000]), 100, target_s=10)
    assert steady.measured(100, 10.5).proposed_size() is None  # 95: within a tenth
    assert steady.measured(100, 12.0).proposed_size() == 83


def test_the_stored_form_round_trips() -> None:
    plan = (
        ChunkPlan.start(ItemGrid.of_lengths(2, [5, 1, 1, 9]), 3, target_s=42, max_size=77)
        .replanned(2, 4)
        .measured(7, 3.5)
    )
    assert ChunkPlan.from_json(plan.to_json()) == plan
    with pytest.raises(ValueError, match="forward"):
        ChunkPlan(plan.grid, (PlanEntry(0, 0, 3), PlanEntry(0, 0, 4)), target_s=1)


def test_a_planned_layout_serves_tasks_by_index() -> None:
    plan = ChunkPlan.start(ItemGrid.of_lengths(1, [10]), 4, target_s=60).replanned(1, 2)
    layout = PlannedLayout.of(plan)

    assert layout.task_count == 4
    assert [layout.task_frames(t) for t in range(4)] == [[0, 1, 2, 3], [4, 5], [6, 7], [8, 9]]
    assert layout.task_bounds(1) == (4, 5)
    assert [layout.task_at(p) for p in range(4)] == [0, 1, 2, 3]
    assert layout.dispatch_position(3) == 3
    assert layout.task_containing(7) == 2
    assert layout.task_containing(10) is None
    assert layout.tasks_covering(3, 6) == [range(0, 3)]
    with pytest.raises(IndexError):
        layout.task_at(4)
    with pytest.raises(IndexError):
        layout.task_frames(4)
