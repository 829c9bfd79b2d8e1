"""Adaptive chunks (OpenJD `targetRuntimeSeconds`): finished chunks measured, the rest re-planned.

A block whose `chunk` is ADAPTIVE_CHUNK keeps a chunk plan (`blocks.chunking`). Each success
of one of its tasks adds that task's items and run time to the plan's measurements; when the
size those call for (`ChunkPlan.proposed_size`) differs enough from the current one, the tasks
nobody holds yet are cut again in chunks of that size, in the same transaction:

- they start at the first task past both the cursor and the highest task with a row (a task
  with a row was handed out, or skipped or queued by hand, and keeps its items);
- the block's `task_count` follows the plan, so the counters, statuses and task pages that
  derive from it stay right; the cursor and the rows do not move.

The caller's transaction holds the block's row (the finish moved its counters), so a claim
that moves the cursor is either before the re-plan (and its task keeps its items) or after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from thresher.core.chunk_plan import ADAPTIVE_CHUNK, ChunkPlan
from thresher.store.tables import blocks, tasks

__all__ = ["note_finished_chunks"]


def note_finished_chunks(conn: sa.Connection, finished: Iterable[tuple[Any, float | None]]) -> None:
    """Measure succeeded tasks of adaptive blocks and re-plan those blocks' remaining chunks.

    `finished` pairs a row with `block_id`, `chunk` and `task_id` (the finish path's) with the
    attempt's run time; tasks of blocks with a fixed chunk are passed over."""
    by_block: dict[int, list[tuple[int, float]]] = {}
    for row, duration_s in finished:
        if row.chunk == ADAPTIVE_CHUNK and duration_s is not None:
            by_block.setdefault(row.block_id, []).append((row.task_id, duration_s))
    for block_id, done in by_block.items():
        _measure_and_replan(conn, block_id, done)


def _measure_and_replan(
    conn: sa.Connection, block_id: int, done: Sequence[tuple[int, float]]
) -> None:
    block = conn.execute(
        sa.select(blocks.c.chunking, blocks.c.cursor)
        .where(blocks.c.id == block_id)
        .with_for_update()
    ).one()
    if block.chunking is None:
        return
    plan = ChunkPlan.from_json(block.chunking)
    indices = dict(
        conn.execute(
            sa.select(tasks.c.id, tasks.c.idx).where(tasks.c.id.in_([t for t, _ in done]))
        ).all()
    )
    items = sum(plan.task_items(indices[t])[1] for t, _ in done if t in indices)
    plan = plan.measured(items, sum(seconds for t, seconds in done if t in indices))
    size = plan.proposed_size()
    if size is not None:
        highest = conn.scalar(
            sa.select(sa.func.max(tasks.c.idx)).where(tasks.c.block_id == block_id)
        )
        first_free = max(block.cursor, -1 if highest is None else highest + 1)
        if first_free >= plan.entries[-1].first_task:
            plan = plan.replanned(first_free, size)
    conn.execute(
        blocks.update()
        .where(blocks.c.id == block_id)
        .values(chunking=plan.to_json(), task_count=plan.task_count)
    )
