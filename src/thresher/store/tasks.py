"""Task pages (waiting tasks synthesised from the layout), retry and skip, and the tasks marked
as never run (they wait on a task failed for good) or let run again."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from thresher.core.chunk_plan import ADAPTIVE_CHUNK
from thresher.core.deps import BlockTasks, downstream, never_run
from thresher.core.errors import Conflict, NotFound
from thresher.core.frames import TaskLayout
from thresher.core.model import (
    TaskRecord,
)
from thresher.core.states import TaskStatus, check_move
from thresher.store.base import _COUNTER, Database, Repository
from thresher.store.tables import blocks, jobs, tasks, workers

#: Task indices per statement when many tasks move at once.
_BATCH = 2000
_STARTED = frozenset({TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.SKIPPED})


def _unstarted(row: Any) -> int:
    """Tasks of a block row that wait or are queued (by its counters)."""
    return int(
        row.task_count
        - (row.n_running + row.n_succeeded + row.n_skipped + row.n_failed + row.n_canceled)
    )


def _may_change(rows: list[Any], *, restore: bool) -> bool:
    """Whether marking (and with `restore`, unmarking) tasks as never run may change anything,
    by the block counters alone: some task failed for good and a block waiting on it has tasks
    not started yet (or, with `restore`, some task is marked)."""
    failing = {r.idx for r in rows if r.n_failed}
    if restore and any(r.n_canceled for r in rows):
        return True
    if not failing:
        return False
    below = downstream({r.idx: [*r.after, *r.after_frames] for r in rows}, failing)
    return any(_unstarted(r) > 0 for r in rows if r.idx in below)


def move_many(
    conn: sa.Connection,
    block_id: int,
    indices: Iterable[int],
    old: TaskStatus,
    new: TaskStatus,
    now: float,
) -> int:
    """Move the block's tasks at `indices` that are in `old` to `new`, with the counters, in
    a few statements (a block may hold many thousand tasks); the transition table holds."""
    check_move(old, new)
    wanted, moved = sorted(indices), 0
    for start in range(0, len(wanted), _BATCH):
        moved += conn.execute(
            tasks.update()
            .where(
                tasks.c.block_id == block_id,
                tasks.c.status == old.value,
                tasks.c.idx.in_(wanted[start : start + _BATCH]),
            )
            .values(status=new.value, updated_at=now)
        ).rowcount
    _count(conn, block_id, old, new, moved)
    return moved


def _insert_many(
    conn: sa.Connection, block: Any, indices: Iterable[int], new: TaskStatus, now: float
) -> int:
    """Give rows in `new` to tasks of `block` that had none (they were waiting); a task that
    got a row meanwhile (a claim by another controller) is left alone."""
    check_move(TaskStatus.WAITING, new)
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    insert = (
        dialect.insert(tasks)
        .on_conflict_do_nothing(index_elements=["block_id", "idx"])
        .returning(tasks.c.idx)
    )
    rows = [
        {
            "block_id": block.id,
            "job_id": block.job_id,
            "idx": index,
            "status": new.value,
            "failures": 0,
            "attempts": 0,
            "updated_at": now,
        }
        for index in sorted(indices)
    ]
    made = 0
    for start in range(0, len(rows), _BATCH):
        made += len(conn.execute(insert, rows[start : start + _BATCH]).all())
    _count(conn, block.id, TaskStatus.WAITING, new, made)
    return made


def _count(conn: sa.Connection, block_id: int, old: TaskStatus, new: TaskStatus, n: int) -> None:
    changes: dict[str, Any] = {}
    if old in _COUNTER:
        changes[_COUNTER[old]] = blocks.c[_COUNTER[old]] - n
    if new in _COUNTER:
        changes[_COUNTER[new]] = blocks.c[_COUNTER[new]] + n
    if n and changes:
        conn.execute(blocks.update().where(blocks.c.id == block_id).values(**changes))


def unmark(
    db: Database,
    conn: sa.Connection,
    block_id: int,
    indices: Iterable[int],
    fresh: set[int],
    now: float,
) -> int:
    """Let canceled tasks of a block run again: those that never had an attempt (`fresh`:
    marked as never run while they waited) wait again, their rows removed and the cursor
    moved back to the first of them (it may have passed their rows); the others are
    queued."""
    wanted = set(indices)
    back = sorted(wanted & fresh)
    moved = move_many(conn, block_id, wanted - fresh, TaskStatus.CANCELED, TaskStatus.QUEUED, now)
    if not back:
        return moved
    for start in range(0, len(back), _BATCH):
        conn.execute(
            tasks.delete().where(
                tasks.c.block_id == block_id,
                tasks.c.status == TaskStatus.CANCELED.value,
                tasks.c.idx.in_(back[start : start + _BATCH]),
            )
        )
    row = conn.execute(sa.select(blocks).where(blocks.c.id == block_id)).one()
    order = db.layout(row.id, row.frames, row.chunk, row.priority_frames, row.preview_every)
    first = min(order.dispatch_position(i) for i in back)
    conn.execute(
        blocks.update()
        .where(blocks.c.id == block_id)
        .values(
            n_canceled=blocks.c.n_canceled - len(back),
            cursor=sa.case((blocks.c.cursor > first, first), else_=blocks.c.cursor),
        )
    )
    return moved + len(back)


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

    def mark_never_run(self, job_id: int, *, now: float, restore: bool = False) -> int:
        """Mark as never run (canceled) the tasks of the job that can never run: they wait,
        whole or frame by frame, on a task failed for good (`core.deps.never_run`). With
        `restore` (after a retry or a skip), let the marked tasks that may run again do so
        (`unmark`). A canceled job is left alone. Returns how many tasks moved.

        Cheap when nothing can change (the job's block counters tell); else it reads the job's
        task rows."""
        with self.db.begin() as conn:
            canceled = conn.scalar(sa.select(jobs.c.canceled).where(jobs.c.id == job_id))
            rows = self.db.block_records(conn, [job_id]).get(job_id, [])
            if canceled is None or canceled or not _may_change(rows, restore=restore):
                return 0
            found: dict[int, dict[TaskStatus, set[int]]] = {r.id: {} for r in rows}
            fresh: dict[int, set[int]] = {r.id: set() for r in rows}  # marks never attempted
            for t in conn.execute(
                sa.select(tasks.c.block_id, tasks.c.idx, tasks.c.status, tasks.c.attempts).where(
                    tasks.c.job_id == job_id
                )
            ):
                found[t.block_id].setdefault(TaskStatus(t.status), set()).add(t.idx)
                if t.status == TaskStatus.CANCELED.value and not t.attempts:
                    fresh[t.block_id].add(t.idx)
            lost = never_run([self._block_tasks(r, found[r.id]) for r in rows])
            moved = 0
            for row in rows:
                by_status = found[row.id]
                marked = by_status.get(TaskStatus.CANCELED, set())
                wanted = lost[row.idx].tasks if row.idx in lost else frozenset()
                moved += self._mark(conn, row, wanted - marked, by_status, now)
                if restore and marked - wanted:
                    moved += unmark(self.db, conn, row.id, marked - wanted, fresh[row.id], now)
                    conn.execute(jobs.update().where(jobs.c.id == job_id).values(finished_at=None))
            return moved

    def _block_tasks(self, row: Any, by_status: Mapping[TaskStatus, set[int]]) -> BlockTasks:
        started: set[int] = set()
        for status in _STARTED:
            started |= by_status.get(status, set())
        return BlockTasks(
            index=row.idx,
            name=row.name,
            layout=self.db.block_layout(row),
            after=tuple(row.after or ()),
            after_frames=tuple(row.after_frames or ()),
            failed=frozenset(by_status.get(TaskStatus.FAILED, ())),
            started=frozenset(started),
        )

    @staticmethod
    def _mark(
        conn: sa.Connection,
        row: Any,
        tasks_: Iterable[int],
        by_status: Mapping[TaskStatus, set[int]],
        now: float,
    ) -> int:
        """Mark `tasks_` of the block `row` (waiting or queued ones) as never run."""
        left, moved = set(tasks_), 0
        for old in (TaskStatus.QUEUED, TaskStatus.WAITING):  # those with a row
            rowed = left & by_status.get(old, set())
            moved += move_many(conn, row.id, rowed, old, TaskStatus.CANCELED, now)
            left -= rowed
        return moved + _insert_many(conn, row, left, TaskStatus.CANCELED, now)
