"""Chunk plans: a block's items cut into chunks whose size may change part-way, by index.

An adaptive OpenJD step (a CHUNK[INT] parameter with `targetRuntimeSeconds`) runs its items in
chunks whose size follows measured run times. Its items form an `ItemGrid`: `rows` rows (one per
combination of the other task parameters), each the same sequence of runs; no chunk spans two
runs (a CONTIGUOUS range has a run per gap-free stretch, a NONCONTIGUOUS one a single run per
row). A chunk takes up to `size` items from where the previous one stopped and stops at the end
of its run, as `openjd run` cuts them.

A `ChunkPlan` keeps the sizes used so far as entries `(first_task, first_item, size)`: tasks
from `first_task` on are chunks of `size` starting at item `first_item`, up to the next entry.
Re-planning adds an entry at a task nobody holds yet, so every earlier task keeps its index and
its items, and together the tasks hold every item exactly once. Tasks and items are computed
from the entries in O(log) time; nothing is listed. At most `MAX_PLANS` entries are kept, so a
block's plan stays a few hundred bytes whatever its size.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from thresher.core.frames import FrameRun, FrameSet, TaskLayout

__all__ = [
    "ADAPTIVE_CHUNK",
    "MAX_CHUNK_ITEMS",
    "MAX_PLANS",
    "ChunkPlan",
    "ItemGrid",
    "PlanEntry",
    "PlannedLayout",
    "adapt_chunk_size",
]

#: The `chunk` a block stores when its chunks follow a chunk plan instead of one fixed size.
ADAPTIVE_CHUNK = 0
#: Entries a plan keeps: once reached, the last size stays (re-sizing is rarely worth more).
MAX_PLANS = 32
#: The largest adaptive chunk, in items: a task's frames list its items.
MAX_CHUNK_ITEMS = 10_000
# A new size is worth a new plan when it differs from the current one by a tenth or more;
# smaller changes are measurement noise.
_REPLAN_FRACTION = 10
# With fewer finished items than this, a larger estimate is blended in gradually.
_FEW_SAMPLES = 10


def adapt_chunk_size(
    current: int,
    measured_runtimes_s: Sequence[float],
    target_s: float,
    *,
    items_per_chunk: Sequence[int] | None = None,
    min_size: int = 1,
    max_size: int | None = None,
) -> int:
    """The chunk size to use next, so that a chunk runs about `target_s` seconds.

    `measured_runtimes_s` are the run times of finished chunks; each held `current` items unless
    `items_per_chunk` gives the counts. The estimate is the target divided by the mean time per
    item (the rule the OpenJD CLI specification gives for `openjd run`): with fewer than ten
    items measured, growth is damped (a quarter of the way towards the estimate). A target of
    0 or no usable measurement keeps `current`. The result is clamped to [min_size, max_size].
    """
    if items_per_chunk is not None and len(items_per_chunk) != len(measured_runtimes_s):
        raise ValueError("items_per_chunk must give one count per measured run time")
    counts = (
        items_per_chunk if items_per_chunk is not None else [current] * len(measured_runtimes_s)
    )
    items = sum(counts)
    seconds = math.fsum(measured_runtimes_s)
    size = float(current)
    if target_s > 0 and items > 0 and seconds > 0 and math.isfinite(seconds):
        size = target_s / (seconds / items)
        if items < _FEW_SAMPLES and size > current:
            size = 0.75 * current + 0.25 * size
    chosen = max(int(size), min_size)
    return chosen if max_size is None else min(chosen, max_size)


@dataclass(frozen=True)
class ItemGrid:
    """Where chunks must stop: `rows` rows of the same runs, `runs` as (count, length) pairs
    meaning `count` consecutive runs of `length` items each."""

    rows: int
    runs: tuple[tuple[int, int], ...]
    _offsets: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.rows < 1 or not self.runs:
            raise ValueError("an item grid needs a row and a run")
        if any(count < 1 or length < 1 for count, length in self.runs):
            raise ValueError("runs must have positive counts and lengths")
        offsets = [0]
        for count, length in self.runs:
            offsets.append(offsets[-1] + count * length)
        object.__setattr__(self, "_offsets", tuple(offsets))

    @classmethod
    def of_lengths(cls, rows: int, lengths: Sequence[int]) -> ItemGrid:
        """A grid whose rows have runs of these lengths, in order (run-length encoded)."""
        runs: list[tuple[int, int]] = []
        for length in lengths:
            if runs and runs[-1][1] == length:
                runs[-1] = (runs[-1][0] + 1, length)
            else:
                runs.append((1, length))
        return cls(rows, tuple(runs))

    @property
    def row_length(self) -> int:
        return self._offsets[-1]

    @property
    def item_count(self) -> int:
        return self.rows * self.row_length

    def locate(self, offset: int) -> tuple[int, int, int]:
        """(group, run within the group, position within the run) of a row offset."""
        group = bisect_right(self._offsets, offset) - 1
        run, position = divmod(offset - self._offsets[group], self.runs[group][1])
        return group, run, position


@dataclass(frozen=True)
class _Cut:
    """A grid cut in chunks of one size: chunks per run of each group, and their prefix sums
    over a row (`starts[g]`: the row's chunks before group g)."""

    per_run: tuple[int, ...]
    starts: tuple[int, ...]

    @classmethod
    def of(cls, grid: ItemGrid, size: int) -> _Cut:
        per_run = tuple(-(-length // size) for _, length in grid.runs)
        starts = [0]
        for (count, _), chunks in zip(grid.runs, per_run, strict=True):
            starts.append(starts[-1] + count * chunks)
        return cls(per_run, tuple(starts))

    @property
    def per_row(self) -> int:
        return self.starts[-1]


@dataclass(frozen=True)
class PlanEntry:
    """Tasks from `first_task` on hold chunks of `size` items, starting at item `first_item`."""

    first_task: int
    first_item: int
    size: int


@dataclass(frozen=True)
class ChunkPlan:
    """The chunks of a block's items so far, what they took to run, and how to re-size them.

    `target_s` is the run time a chunk should take, `max_size` the largest size to choose;
    `measured_items` and `measured_s` add up the items and run time of finished chunks."""

    grid: ItemGrid
    entries: tuple[PlanEntry, ...]
    target_s: float
    max_size: int = MAX_CHUNK_ITEMS
    measured_items: int = 0
    measured_s: float = 0.0
    _first_tasks: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _first_items: tuple[int, ...] = field(init=False, repr=False, compare=False)
    _cuts: dict[int, _Cut] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.entries or self.entries[0].first_task or self.entries[0].first_item:
            raise ValueError("a chunk plan starts at task 0, item 0")
        if any(e.size < 1 for e in self.entries):
            raise ValueError("chunk sizes must be at least 1")
        pairs = list(pairwise(self.entries))
        if any(b.first_task <= a.first_task or b.first_item <= a.first_item for a, b in pairs):
            raise ValueError("plan entries must move forward in tasks and items")
        object.__setattr__(self, "_first_tasks", tuple(e.first_task for e in self.entries))
        object.__setattr__(self, "_first_items", tuple(e.first_item for e in self.entries))
        object.__setattr__(self, "_cuts", {})

    @classmethod
    def start(
        cls, grid: ItemGrid, size: int, *, target_s: float, max_size: int = MAX_CHUNK_ITEMS
    ) -> ChunkPlan:
        """A plan cutting every item in chunks of `size`."""
        return cls(grid, (PlanEntry(0, 0, max(size, 1)),), target_s=target_s, max_size=max_size)

    # -- tasks and items ------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """The size of the chunks not cut yet."""
        return self.entries[-1].size

    @property
    def item_count(self) -> int:
        return self.grid.item_count

    @property
    def task_count(self) -> int:
        last = self.entries[-1]
        return last.first_task + self._chunks_from(last.first_item, last.size)

    def task_items(self, task: int) -> tuple[int, int]:
        """(first item, item count) of task `task`."""
        if not 0 <= task < self.task_count:
            raise IndexError(f"task {task} out of range (the plan has {self.task_count})")
        entry = self.entries[bisect_right(self._first_tasks, task) - 1]
        return self._chunk_at(entry.first_item, entry.size, task - entry.first_task)

    def task_of_item(self, item: int) -> int:
        """The task holding item `item`."""
        if not 0 <= item < self.item_count:
            raise IndexError(f"item {item} out of range (the plan has {self.item_count})")
        entry = self.entries[bisect_right(self._first_items, item) - 1]
        return entry.first_task + self._chunk_index(entry.first_item, entry.size, item)

    # -- measuring and re-planning ----------------------------------------------------------------

    def measured(self, items: int, seconds: float) -> ChunkPlan:
        """The plan with finished chunks of `items` items in all, that ran `seconds`, added."""
        if items <= 0 or not seconds >= 0 or not math.isfinite(seconds):
            return self
        return ChunkPlan(
            self.grid,
            self.entries,
            target_s=self.target_s,
            max_size=self.max_size,
            measured_items=self.measured_items + items,
            measured_s=self.measured_s + seconds,
        )

    def proposed_size(self) -> int | None:
        """The size the measurements call for (`adapt_chunk_size` over every finished item),
        when it differs enough from the current one to re-plan; else None."""
        if not self.measured_items:
            return None
        size = adapt_chunk_size(
            self.size,
            [self.measured_s],
            self.target_s,
            items_per_chunk=[self.measured_items],
            max_size=self.max_size,
        )
        if size == self.size or abs(size - self.size) * _REPLAN_FRACTION < self.size:
            return None
        return size

    def replanned(self, first_free: int, size: int) -> ChunkPlan:
        """The tasks from `first_free` on (none of which anyone holds) cut in chunks of `size`.

        The plan is kept as it is when no task is left from there, or when it already has
        `MAX_PLANS` entries and the change would need one more."""
        last = self.entries[-1]
        if first_free < last.first_task:
            raise ValueError(f"task {first_free} is before the current plan's first task")
        if first_free >= self.task_count or size < 1:
            return self
        if first_free == last.first_task:  # nothing of the current plan was handed out
            entries = (*self.entries[:-1], PlanEntry(last.first_task, last.first_item, size))
        elif len(self.entries) >= MAX_PLANS:
            return self
        else:
            first_item = self.task_items(first_free)[0]
            entries = (*self.entries, PlanEntry(first_free, first_item, size))
        return ChunkPlan(
            self.grid,
            entries,
            target_s=self.target_s,
            max_size=self.max_size,
            measured_items=self.measured_items,
            measured_s=self.measured_s,
        )

    # -- stored form ----------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.grid.rows,
            "runs": [list(run) for run in self.grid.runs],
            "plans": [[e.first_task, e.first_item, e.size] for e in self.entries],
            "target_s": self.target_s,
            "max_size": self.max_size,
            "measured": [self.measured_items, self.measured_s],
        }

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> ChunkPlan:
        items, seconds = stored.get("measured", (0, 0.0))
        return cls(
            ItemGrid(int(stored["rows"]), tuple((int(c), int(n)) for c, n in stored["runs"])),
            tuple(PlanEntry(int(t), int(i), int(s)) for t, i, s in stored["plans"]),
            target_s=float(stored["target_s"]),
            max_size=int(stored.get("max_size", MAX_CHUNK_ITEMS)),
            measured_items=int(items),
            measured_s=float(seconds),
        )

    # -- one entry's chunks (greedy from `start`, which begins a chunk) --------------------------

    def _cut(self, size: int) -> _Cut:
        cut = self._cuts.get(size)
        if cut is None:
            cut = self._cuts[size] = _Cut.of(self.grid, size)
        return cut

    def _first_run(self, start: int, size: int) -> tuple[int, int, int]:
        """(row of `start`, its chunks before the end of its run, the row's chunk index where
        the next run begins)."""
        grid = self.grid
        row, offset = divmod(start, grid.row_length)
        group, run, position = grid.locate(offset)
        cut = self._cut(size)
        here = -(-(grid.runs[group][1] - position) // size)
        return row, here, cut.starts[group] + (run + 1) * cut.per_run[group]

    def _chunks_from(self, start: int, size: int) -> int:
        if start >= self.item_count:
            return 0
        row, here, after = self._first_run(start, size)
        per_row = self._cut(size).per_row
        return here + (per_row - after) + (self.grid.rows - row - 1) * per_row

    def _chunk_at(self, start: int, size: int, nth: int) -> tuple[int, int]:
        grid = self.grid
        row, here, after = self._first_run(start, size)
        if nth < here:
            offset = start % grid.row_length
            group, _, position = grid.locate(offset)
            left = grid.runs[group][1] - position - nth * size
            return start + nth * size, min(size, left)
        cut = self._cut(size)
        row, index = divmod(nth - here + after + row * cut.per_row, cut.per_row)
        group = bisect_right(cut.starts, index) - 1
        run, chunk = divmod(index - cut.starts[group], cut.per_run[group])
        length = grid.runs[group][1]
        first = row * grid.row_length + grid._offsets[group] + run * length + chunk * size
        return first, min(size, length - chunk * size)

    def _chunk_index(self, start: int, size: int, item: int) -> int:
        grid = self.grid
        row, here, after = self._first_run(start, size)
        offset = start % grid.row_length
        group, _, position = grid.locate(offset)
        if item < start + grid.runs[group][1] - position:  # in the run `start` begins in
            return (item - start) // size
        cut = self._cut(size)
        item_row, item_offset = divmod(item, grid.row_length)
        group, run, position = grid.locate(item_offset)
        index = cut.starts[group] + run * cut.per_run[group] + position // size
        return (item_row - row) * cut.per_row + index - after + here


@dataclass(frozen=True)
class PlannedLayout(TaskLayout):
    """A block's tasks as a chunk plan cuts them: frames are item positions `0-(N-1)`, task
    `i`'s frames the positions of its items, dispatched in index order."""

    plan: ChunkPlan = field(kw_only=True)

    @classmethod
    def of(cls, plan: ChunkPlan) -> PlannedLayout:
        return cls(FrameSet((FrameRun(0, plan.item_count - 1),)), 1, plan=plan)

    @property
    def task_count(self) -> int:
        return self.plan.task_count

    def task_frames(self, task: int) -> list[int]:
        first, count = self.plan.task_items(task)
        return list(range(first, first + count))

    def task_bounds(self, task: int) -> tuple[int, int]:
        first, count = self.plan.task_items(task)
        return first, first + count - 1

    def task_containing(self, frame: int) -> int | None:
        if not 0 <= frame < self.plan.item_count:
            return None
        return self.plan.task_of_item(frame)

    def tasks_covering(self, first: int, last: int) -> list[range]:
        low, high = max(first, 0), min(last, self.plan.item_count - 1)
        if low > high:
            return []
        return [range(self.plan.task_of_item(low), self.plan.task_of_item(high) + 1)]

    def task_at(self, position: int) -> int:
        if not 0 <= position < self.task_count:
            raise IndexError(f"dispatch position {position} out of range")
        return position

    def dispatch_position(self, task: int) -> int:
        self._check_task(task)
        return task
