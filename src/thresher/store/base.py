"""Shared plumbing of the store: the engine, layouts, task moves with their counters."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Self

import sqlalchemy as sa

from thresher.core.errors import NotFound
from thresher.core.frames import FrameSet, TaskLayout
from thresher.core.model import (
    Counts,
)
from thresher.core.states import AttemptStatus, TaskStatus
from thresher.store.db import create_engine, migrate
from thresher.store.tables import blocks, tasks

_COUNTER = {
    TaskStatus.QUEUED: "n_queued",
    TaskStatus.RUNNING: "n_running",
    TaskStatus.SUCCEEDED: "n_succeeded",
    TaskStatus.FAILED: "n_failed",
    TaskStatus.SKIPPED: "n_skipped",
    TaskStatus.CANCELED: "n_canceled",
}
_FINAL_ATTEMPT = {
    AttemptStatus.SUCCEEDED,
    AttemptStatus.FAILED,
    AttemptStatus.TIMED_OUT,
    AttemptStatus.CANCELED,
    AttemptStatus.LOST,
    AttemptStatus.PREEMPTED,
}


def _counts(row: Any) -> Counts:
    return Counts(
        total=row.task_count,
        queued=row.n_queued,
        running=row.n_running,
        succeeded=row.n_succeeded,
        failed=row.n_failed,
        skipped=row.n_skipped,
        canceled=row.n_canceled,
    )


# Statements of the hottest paths (a task moving on), built once per shape: building one
# costs several times more than running it, as SQLAlchemy memoises its cache key on the object.
@functools.lru_cache(maxsize=64)
def _task_update(columns: frozenset[str]) -> sa.Update:
    return (
        tasks.update()
        .where(tasks.c.id == sa.bindparam("task_id"))
        .values({c: sa.bindparam(f"v_{c}") for c in sorted(columns)})
    )


@functools.lru_cache(maxsize=64)
def _counter_update(old: TaskStatus, new: TaskStatus) -> sa.Update | None:
    changes: dict[str, Any] = {}
    if old in _COUNTER:
        changes[_COUNTER[old]] = blocks.c[_COUNTER[old]] - 1
    if new in _COUNTER:
        changes[_COUNTER[new]] = blocks.c[_COUNTER[new]] + 1
    if not changes:
        return None
    return blocks.update().where(blocks.c.id == sa.bindparam("block_id")).values(**changes)


class StoreBase:
    """The engine and the helpers every part of the store shares."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._layouts: dict[tuple[int, int | None], TaskLayout] = {}

    @classmethod
    def open(cls, url: str) -> Self:
        engine = create_engine(url)
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def layout(
        self,
        block_id: int,
        frames: str,
        chunk: int,
        priority: str | None,
        preview_every: int | None = None,
    ) -> TaskLayout:
        """The block's task layout, parsed once per block and kept (blocks never change it).
        `preview_every` changes only the dispatch order, never which frames a task holds."""
        key = (block_id, preview_every)
        layout = self._layouts.get(key)
        if layout is None:
            layout = TaskLayout(
                FrameSet.parse(frames),
                chunk,
                priority_frames=FrameSet.parse(priority) if priority else None,
                preview_every=preview_every,
            )
            if len(self._layouts) > 10_000:
                self._layouts.clear()
            self._layouts[key] = layout
        return layout

    def _block_row(self, conn: sa.Connection, job_id: int, block_index: int) -> Any:
        row = conn.execute(
            sa.select(blocks).where(blocks.c.job_id == job_id, blocks.c.idx == block_index)
        ).first()
        if row is None:
            raise NotFound(f"job {job_id} has no block {block_index}", field="block")
        return row

    def _block_records(self, conn: sa.Connection, job_ids: Sequence[int]) -> dict[int, list[Any]]:
        rows = conn.execute(
            sa.select(blocks).where(blocks.c.job_id.in_(job_ids)).order_by(blocks.c.idx)
        ).all()
        by_job: dict[int, list[Any]] = {}
        for row in rows:
            by_job.setdefault(row.job_id, []).append(row)
        return by_job

    def _insert_task(
        self, conn: sa.Connection, block: Any, index: int, status: TaskStatus, now: float
    ) -> int:
        result = conn.execute(
            tasks.insert().values(
                block_id=block.id,
                job_id=block.job_id,
                idx=index,
                status=status.value,
                failures=0,
                attempts=0,
                updated_at=now,
            )
        )
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def _move_task(
        self,
        conn: sa.Connection,
        task_id: int,
        block_id: int,
        old: TaskStatus,
        new: TaskStatus,
        now: float,
        **extra: Any,
    ) -> None:
        """Change one task's status and the block counters with it, in the caller's transaction."""
        values = {"status": new.value, "updated_at": now, **extra}
        conn.execute(
            _task_update(frozenset(values)),
            {"task_id": task_id, **{f"v_{k}": v for k, v in values.items()}},
        )
        counters = _counter_update(old, new)
        if counters is not None:
            conn.execute(counters, {"block_id": block_id})
