"""Taking tasks of one block, inside a claim's transaction (see `store.dispatch`).

A requeued task row goes first; else the next position under the block cursor, its task row
inserted as running. A block with frame-by-frame dependencies looks a little further than the
cursor for a task whose upstream frames are done.

On SQLite the cursor moves with `UPDATE … SET cursor = cursor + k … RETURNING`. On PostgreSQL
the transaction's first claim of a block locks its row (`SELECT … FOR UPDATE`, no new row
version) and reads the cursor; its claims take positions from it in memory and the cursor and
counters are written once at the transaction's end (`store.tally`). Either way the row lock
hands every claimer different positions.

Every function counts what it takes in the block's counters, in the caller's transaction, and
returns (task row id, task index) pairs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from thresher.core.deps import task_ready
from thresher.core.frames import TaskLayout
from thresher.core.states import TaskStatus
from thresher.store import tally
from thresher.store.prepared import Prepared
from thresher.store.snapshot import SnapBlock
from thresher.store.tables import blocks, tasks

#: How far past the cursor a frame-by-frame block looks for a task whose upstream is done.
READY_WINDOW = 64
_DONE = (TaskStatus.SUCCEEDED.value, TaskStatus.SKIPPED.value)

# Statements built once: building a statement costs several times more than running it
# (SQLAlchemy memoises its cache key on the object).
_BLOCK = blocks.c.id == sa.bindparam("block_id")
_MOVE_CURSOR = Prepared(
    blocks.update()
    .where(_BLOCK, blocks.c.cursor + sa.bindparam("k") <= blocks.c.task_count)
    .values(
        cursor=blocks.c.cursor + sa.bindparam("k"),
        n_running=blocks.c.n_running + sa.bindparam("k"),
    )
    .returning(blocks.c.cursor)
)
_UNCOUNT_RUNNING = Prepared(
    blocks.update().where(_BLOCK).values(n_running=blocks.c.n_running - sa.bindparam("k"))
)


def _positions(conn: sa.Connection, block_id: int, k: int) -> range:
    """Up to `k` positions under the cursor, from the transaction's tally of the block (its
    row locked and read at the first)."""
    t = tally.of(conn, block_id)
    if t.cursor is None:
        locked = tally.lock(conn, block_id)
        if locked is None:
            return range(0)
        t = locked
    start = t.cursor
    if start is None:  # never: the lock read it
        return range(0)
    taken = range(start, min(start + k, t.task_count))
    if taken:
        t.cursor = taken.stop
        t.cursor_moved = True
    return taken


_TASK_COLUMNS = (
    "block_id",
    "job_id",
    "idx",
    "status",
    "failures",
    "attempts",
    "last_worker_id",
    "updated_at",
)


def _insert_tasks(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id, idx: rows already there are left alone."""
    insert = postgresql.insert(tasks) if dialect == "postgresql" else sqlite.insert(tasks)
    return insert.on_conflict_do_nothing(index_elements=["block_id", "idx"]).returning(
        tasks.c.id, tasks.c.idx
    )


_INSERT_TASKS = {name: _insert_tasks(name) for name in ("postgresql", "sqlite")}
# One task (a claim without tasks held ahead), on the cursor.
_INSERT_TASK = {
    name: Prepared(insert.values({c: sa.bindparam(c) for c in _TASK_COLUMNS}))
    for name, insert in _INSERT_TASKS.items()
}

Taken = tuple[int, int]
"""A task taken: its row id and its index in the block."""

UpstreamLayout = Callable[[int, str, int, str | None], TaskLayout]
"""The layout of an upstream block from (block id, frames, chunk, priority frames)."""


def take_requeued(
    conn: sa.Connection,
    b: SnapBlock,
    *,
    worker_id: int,
    now: float,
    avoid_failed_since: float | None,
    ready: Callable[[list[int]], set[int]] | None = None,
) -> Taken | None:
    """A requeued task, if the block has any; one that failed on this worker after
    `avoid_failed_since` is left for another host. With `ready` (a block waiting frame by
    frame), only a task whose upstream frames are done: `ready(indexes)` says which."""
    if b.n_queued <= 0:
        return None
    query = (
        sa.select(tasks.c.id, tasks.c.idx)
        .where(tasks.c.block_id == b.block_id, tasks.c.status == TaskStatus.QUEUED.value)
        .order_by(tasks.c.idx)
        .limit(8)
    )
    if avoid_failed_since is not None:
        query = query.where(
            sa.or_(
                tasks.c.failed_worker_id.is_(None),
                tasks.c.failed_worker_id != worker_id,
                tasks.c.updated_at < avoid_failed_since,
            )
        )
    rows = conn.execute(query).all()
    if ready is not None:
        allowed = ready([row.idx for row in rows]) if rows else set()
        rows = [row for row in rows if row.idx in allowed]
    for row in rows:
        taken = conn.execute(
            tasks.update()
            .where(tasks.c.id == row.id, tasks.c.status == TaskStatus.QUEUED.value)
            .values(
                status=TaskStatus.RUNNING.value,
                attempts=tasks.c.attempts + 1,
                last_worker_id=worker_id,
                progress=None,
                updated_at=now,
            )
        ).rowcount
        if taken == 1 and tally.enabled(conn):
            t = tally.of(conn, b.block_id)
            t.queued -= 1
            t.running += 1
            return int(row.id), int(row.idx)
        if taken == 1:
            conn.execute(
                blocks.update()
                .where(blocks.c.id == b.block_id)
                .values(n_queued=blocks.c.n_queued - 1, n_running=blocks.c.n_running + 1)
            )
            return int(row.id), int(row.idx)
    return None


def take_next(
    conn: sa.Connection, b: SnapBlock, layout: TaskLayout, *, worker_id: int, now: float
) -> Taken | None:
    """The next task under the cursor that nothing touched before dispatch."""
    if tally.enabled(conn):
        while True:
            positions = _positions(conn, b.block_id, 1)
            if not positions:
                return None
            index = layout.task_at(positions[0])
            task_id = _insert_running(conn, b, [index], worker_id, now).get(index)
            if task_id is not None:
                tally.of(conn, b.block_id).running += 1
                return task_id, index
            # Touched before dispatch: not the cursor's to run (see below).
    while True:
        # Moving the cursor and counting the task as running in one UPDATE: the row lock
        # serialises claimers of the block, and each sees the position it moved past.
        moved = _MOVE_CURSOR.first(conn, {"block_id": b.block_id, "k": 1})
        if moved is None:
            return None
        index = layout.task_at(moved.cursor - 1)
        task_id = _insert_running(conn, b, [index], worker_id, now).get(index)
        if task_id is not None:
            return task_id, index
        # Touched before dispatch (skipped, queued by a retry, or taken out of order by a
        # frame-by-frame claim): not the cursor's to run.
        _UNCOUNT_RUNNING.run(conn, {"block_id": b.block_id, "k": 1})


def take_next_many(
    conn: sa.Connection, b: SnapBlock, layout: TaskLayout, *, worker_id: int, now: float, k: int
) -> list[Taken]:
    """Up to `k` more tasks under the cursor with one cursor move and one insert."""
    if tally.enabled(conn):
        indices = [layout.task_at(p) for p in _positions(conn, b.block_id, k)]
        by_index = _insert_running(conn, b, indices, worker_id, now) if indices else {}
        tally.of(conn, b.block_id).running += len(by_index)
        return [(by_index[i], i) for i in indices if i in by_index]
    moved = _MOVE_CURSOR.first(conn, {"block_id": b.block_id, "k": k})
    if moved is None:  # fewer than k left: one at a time
        out = []
        for _ in range(k):
            taken = take_next(conn, b, layout, worker_id=worker_id, now=now)
            if taken is None:
                break
            out.append(taken)
        return out
    indices = [layout.task_at(p) for p in range(moved.cursor - k, moved.cursor)]
    by_index = _insert_running(conn, b, indices, worker_id, now)
    if len(by_index) < k:  # some were touched before dispatch: not the cursor's to run
        _UNCOUNT_RUNNING.run(conn, {"block_id": b.block_id, "k": k - len(by_index)})
    return [(by_index[i], i) for i in indices if i in by_index]


def frames_ready(
    conn: sa.Connection,
    b: SnapBlock,
    layout: TaskLayout,
    indexes: list[int],
    *,
    upstream_layout: UpstreamLayout,
) -> set[int]:
    """Which of the block's tasks `indexes` have every upstream task covering their frames
    done (the block waits frame by frame on `b.after_frames`)."""
    upstream = conn.execute(
        sa.select(blocks).where(blocks.c.job_id == b.job_id, blocks.c.idx.in_(b.after_frames))
    ).all()
    pending = [u for u in upstream if u.n_succeeded + u.n_skipped < u.task_count]
    if not pending:
        return set(indexes)
    checks = [
        _upstream_done(
            conn, layout, indexes, u, upstream_layout(u.id, u.frames, u.chunk, u.priority_frames)
        )
        for u in pending
    ]
    return {index for index in indexes if task_ready(layout, index, checks)}


def take_ready(
    conn: sa.Connection,
    b: SnapBlock,
    layout: TaskLayout,
    *,
    worker_id: int,
    now: float,
    upstream_layout: UpstreamLayout,
) -> Taken | None:
    """Frame by frame: the first task, within READY_WINDOW positions of the cursor, whose
    upstream tasks covering the same frames are all done."""
    upstream = conn.execute(
        sa.select(blocks).where(blocks.c.job_id == b.job_id, blocks.c.idx.in_(b.after_frames))
    ).all()
    pending = [u for u in upstream if u.n_succeeded + u.n_skipped < u.task_count]
    if not pending:
        return take_next(conn, b, layout, worker_id=worker_id, now=now)
    cursor = _cursor_past_taken(conn, b, layout)
    if cursor is None:
        return None
    window = [
        layout.task_at(p) for p in range(cursor, min(cursor + READY_WINDOW, layout.task_count))
    ]
    taken = set(
        conn.scalars(
            sa.select(tasks.c.idx).where(tasks.c.block_id == b.block_id, tasks.c.idx.in_(window))
        )
    )
    checks = [
        _upstream_done(
            conn, layout, window, u, upstream_layout(u.id, u.frames, u.chunk, u.priority_frames)
        )
        for u in pending
    ]
    for position, index in enumerate(window, start=cursor):
        if index in taken or not task_ready(layout, index, checks):
            continue
        values: dict[str, Any] = {"n_running": blocks.c.n_running + 1}
        query = blocks.update().where(blocks.c.id == b.block_id)
        if position == cursor:
            values["cursor"] = cursor + 1
            query = query.where(blocks.c.cursor == cursor)
        if not conn.execute(query.values(**values)).rowcount:
            return None  # another claim moved the cursor; the next poll looks again
        task_id = _insert_running(conn, b, [index], worker_id, now).get(index)
        if task_id is None:
            _UNCOUNT_RUNNING.run(conn, {"block_id": b.block_id, "k": 1})
            return None
        return task_id, index
    return None


def _insert_running(
    conn: sa.Connection, b: SnapBlock, indices: Sequence[int], worker_id: int, now: float
) -> dict[int, int]:
    """Insert the tasks' rows as running: task index -> row id of those inserted (a task that
    has a row already, skipped or retried before dispatch or taken out of order, is left out)."""
    dialect = "postgresql" if conn.dialect.name == "postgresql" else "sqlite"
    values = [
        {
            "block_id": b.block_id,
            "job_id": b.job_id,
            "idx": index,
            "status": TaskStatus.RUNNING.value,
            "failures": 0,
            "attempts": 1,
            "last_worker_id": worker_id,
            "updated_at": now,
        }
        for index in indices
    ]
    if len(values) == 1:
        rows = _INSERT_TASK[dialect].all(conn, values[0])
    else:
        rows = conn.execute(_INSERT_TASKS[dialect], values).all()
    return {int(r.idx): int(r.id) for r in rows}


def _cursor_past_taken(conn: sa.Connection, b: SnapBlock, layout: TaskLayout) -> int | None:
    """Move the cursor past tasks that already have rows (taken out of order); returns it,
    or None at the end of the block."""
    while True:
        cursor = conn.scalar(sa.select(blocks.c.cursor).where(blocks.c.id == b.block_id))
        if cursor is None or cursor >= layout.task_count:
            return None
        has_row = conn.scalar(
            sa.select(tasks.c.id).where(
                tasks.c.block_id == b.block_id, tasks.c.idx == layout.task_at(cursor)
            )
        )
        if has_row is None:
            return int(cursor)
        conn.execute(
            blocks.update()
            .where(blocks.c.id == b.block_id, blocks.c.cursor == cursor)
            .values(cursor=cursor + 1)
        )


def _upstream_done(
    conn: sa.Connection, layout: TaskLayout, window: list[int], up: Any, up_layout: TaskLayout
) -> tuple[TaskLayout, Any]:
    """An upstream block's layout and a "task is done" test over the tasks the window's
    frames need (one query for the whole window)."""
    bounds = [layout.task_bounds(i) for i in window]
    spans = up_layout.tasks_covering(min(b[0] for b in bounds), max(b[1] for b in bounds))
    if not spans:
        return up_layout, lambda _index: True
    done = set(
        conn.scalars(
            sa.select(tasks.c.idx).where(
                tasks.c.block_id == up.id,
                tasks.c.idx >= spans[0].start,
                tasks.c.idx < spans[-1].stop,
                tasks.c.status.in_(_DONE),
            )
        )
    )
    return up_layout, done.__contains__
