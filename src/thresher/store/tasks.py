"""Task pages (waiting tasks synthesised from the layout), retry and skip."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from thresher.core.chunk_plan import ADAPTIVE_CHUNK
from thresher.core.errors import Conflict, NotFound
from thresher.core.frames import TaskLayout
from thresher.core.model import (
    TaskRecord,
)
from thresher.core.states import TaskStatus
from thresher.store.base import Repository
from thresher.store.tables import blocks, jobs, tasks, workers


class Tasks(Repository):
    def page(
        self, job_id: int, *, block_index: int = 0, offset: int = 0, limit: int = 100
    ) -> tuple[int, list[TaskRecord]]:
        """(total, page): one page of a block's tasks by index, waiting ones synthesised."""
        with self.db.connect() as conn:
            block = self.db.block_row(conn, job_id, block_index)
            layout = self.db.block_layout(block)
            stop = min(offset + limit, layout.task_count)
            rows = conn.execute(
                sa.select(tasks, workers.c.name.label("worker_name"))
                .select_from(tasks.outerjoin(workers, workers.c.id == tasks.c.last_worker_id))
                .where(tasks.c.block_id == block.id, tasks.c.idx >= offset, tasks.c.idx < stop)
            ).all()
        by_index = {r.idx: r for r in rows}
        page = [
            self._task_record(job_id, block_index, i, layout, by_index.get(i))
            for i in range(offset, stop)
        ]
        return layout.task_count, page

    @staticmethod
    def _task_record(
        job_id: int, block_index: int, index: int, layout: TaskLayout, row: Any
    ) -> TaskRecord:
        frames = tuple(layout.task_frames(index))
        if row is None:
            return TaskRecord(
                job_id, block_index, index, frames, TaskStatus.WAITING, 0, 0, None, None, None
            )
        return TaskRecord(
            job_id=job_id,
            block_index=block_index,
            index=index,
            frames=frames,
            status=TaskStatus(row.status),
            failures=row.failures,
            attempts=row.attempts,
            last_worker=row.worker_name,
            progress=row.progress,
            updated_at=row.updated_at,
        )

    def get(self, job_id: int, block_index: int, index: int) -> TaskRecord:
        if index < 0:
            raise NotFound(f"job {job_id} block {block_index} has no task {index}", field="task")
        _, page = self.page(job_id, block_index=block_index, offset=index, limit=1)
        if not page:
            raise NotFound(f"job {job_id} block {block_index} has no task {index}", field="task")
        return page[0]

    def set_status(
        self, job_id: int, block_index: int, index: int, new: TaskStatus, *, now: float
    ) -> TaskStatus:
        """Retry (QUEUED) or skip (SKIPPED) one task; returns its old status."""
        with self.db.begin() as conn:
            block = self.db.block_row(conn, job_id, block_index)
            if block.chunk == ADAPTIVE_CHUNK:  # no re-plan may cut the task again meanwhile
                block = conn.execute(
                    sa.select(blocks).where(blocks.c.id == block.id).with_for_update()
                ).one()
            layout = self.db.block_layout(block)
            if not 0 <= index < layout.task_count:
                raise NotFound(
                    f"job {job_id} block {block_index} has no task {index}", field="task"
                )
            row = conn.execute(
                sa.select(tasks.c.id, tasks.c.status).where(
                    tasks.c.block_id == block.id, tasks.c.idx == index
                )
            ).first()
            if row is None and new is TaskStatus.QUEUED:
                return TaskStatus.WAITING  # never dispatched: it is already due to run
            if row is None:
                task_id = self.db.insert_task(conn, block, index, TaskStatus.WAITING, now)
                old = TaskStatus.WAITING
            else:
                task_id, old = row.id, TaskStatus(row.status)
            if old is TaskStatus.RUNNING:
                raise Conflict(f"task {index} is running; cancel it first", field="task")
            if old is new or (old is TaskStatus.WAITING and new is TaskStatus.QUEUED):
                return old
            self.db.move_task(conn, task_id, block.id, old, new, now)
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(failures=0))
            if new is TaskStatus.QUEUED:  # a job that had ended runs again
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(finished_at=None))
            return old
