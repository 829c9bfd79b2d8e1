"""Taking tasks of one block, inside a claim's transaction (see `store.dispatch`).

A requeued task row goes first; else the next position under the block cursor, its task row
inserted as running. A block with frame-by-frame dependencies looks a little further than the
cursor for a task whose upstream frames are done.

On SQLite a transaction reads the block's cursor once, under the database's write lock, and
hands out the positions past it in memory; it writes the cursor at its end
(`store.local_tally`). On PostgreSQL the cursor moves by ranges: a claim
takes positions the process holds already (`store.ranges`); when it holds none, it locks the
block's row (`SELECT … FOR NO KEY UPDATE`, no new row version), reads the cursor and reserves
a range past it (up to `ranges.RANGE_MAX` positions), written once at the transaction's end
(`store.tally`), the positions it does not hand out held for the next claims. At the block's
end a claim looks for positions below the cursor without a task row (held by another
controller, or lost with one that died) and hands them out. The task row's unique key
(block, index) decides between two claimers of one position: `INSERT … ON CONFLICT DO
NOTHING` inserts it for one of them, and the other passes it over.

Every function counts what it takes in the block's counters, in the caller's transaction, and
returns (task row id, task index) pairs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from thresher.core.deps import task_ready
from thresher.core.errors import Contended
from thresher.core.frames import TaskLayout
from thresher.core.states import TaskStatus
from thresher.store import local_tally, ranges, tally
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


def _positions(
    conn: sa.Connection, block_id: int, layout: TaskLayout, k: int, *, spread: bool = True
) -> list[int]:
    """Up to `k` positions to hand out (PostgreSQL): those the transaction reserved, else
    those the process holds (`store.ranges`), else a new range past the cursor, its row
    locked (with `spread`, more than `k`: the rest is held for the next claims); at the
    block's end, positions below the cursor that nobody handed out (`_gaps`)."""
    t = tally.of(conn, block_id)
    out = _reserved(t, k)
    if len(out) < k:
        got = ranges.take(conn.engine, block_id, k - len(out))
        t.from_held += got
        out += got
    if len(out) < k and t.cursor is None and tally.lock(conn, block_id) is None:
        return out
    if len(out) < k and t.reserved is not None and t.reserved < t.task_count:
        need = k - len(out)
        size = ranges.range_size(need, t.task_count - t.reserved) if spread else need
        t.reserved = min(t.reserved + size, t.task_count)
        t.cursor_moved = True
        out += _reserved(t, need)
    at_end = t.reserved is not None and t.reserved >= t.task_count
    if len(out) < k and at_end and _may_sweep(conn.engine, block_id):
        ranges.hold(conn.engine, block_id, _gaps(conn, block_id, layout, t.task_count))
        got = ranges.take(conn.engine, block_id, k - len(out))
        t.from_held += got
        out += got
    return [p for p in out if p < layout.task_count]


def _may_sweep(engine: sa.Engine, block_id: int) -> bool:
    """Whether to look for the block's positions nobody handed out: when the process holds
    none of the block's, at most every few seconds."""
    return not ranges.held(engine, block_id) and ranges.may_sweep(engine, block_id)


def _spreads(b: SnapBlock) -> bool:
    """Whether the block's claims reserve ranges: not for a block that waits frame by frame
    (a ready task is looked for past the cursor) nor for one with adaptive chunks (a re-plan
    starts past the cursor: positions held below it would keep the old plan)."""
    return not b.after_frames and b.chunk != 0


def _reserved(t: tally.BlockTally, k: int) -> list[int]:
    """Up to `k` positions of those the transaction reserved, taken."""
    if t.cursor is None or t.reserved is None or t.cursor >= t.reserved:
        return []
    taken = range(t.cursor, min(t.cursor + k, t.reserved))
    t.cursor = taken.stop
    return list(taken)


def _gaps(conn: sa.Connection, block_id: int, layout: TaskLayout, task_count: int) -> list[int]:
    """The positions of the block's tasks without a row (the cursor passed them all): held by
    a controller, or lost with one, or with a rolled-back claim. A whole-block scan of the
    task rows' indexes, so it runs at a block's end only, at most every few seconds."""
    of_block = tasks.c.block_id == block_id
    if (conn.scalar(sa.select(sa.func.count()).where(of_block)) or 0) >= task_count:
        return []  # every task has a row: nothing to fetch
    have = set(conn.scalars(sa.select(tasks.c.idx).where(of_block)))
    return [p for p in range(task_count) if layout.task_at(p) not in have]


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
    gathered = tally if tally.enabled(conn) else local_tally if local_tally.enabled(conn) else None
    if gathered is not None:  # positions handed out from what the transaction gathers
        while True:
            positions: Sequence[int]
            if gathered is tally:
                positions = _positions(conn, b.block_id, layout, 1, spread=_spreads(b))
            else:
                positions = local_tally.take(conn, b.block_id, 1)
            if not positions:
                return None
            index = layout.task_at(positions[0])
            task_id = _insert_running(conn, b, [index], worker_id, now).get(index)
            if task_id is not None:
                gathered.of(conn, b.block_id).running += 1
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
        indices = [
            layout.task_at(p) for p in _positions(conn, b.block_id, layout, k, spread=_spreads(b))
        ]
        by_index = _insert_running(conn, b, indices, worker_id, now) if indices else {}
        tally.of(conn, b.block_id).running += len(by_index)
        return [(by_index[i], i) for i in indices if i in by_index]
    if local_tally.enabled(conn):
        positions = local_tally.take(conn, b.block_id, k)
        if positions:
            indices = [layout.task_at(p) for p in positions]
            by_index = _insert_running(conn, b, indices, worker_id, now)
            local_tally.of(conn, b.block_id).running += len(by_index)
            return [(by_index[i], i) for i in indices if i in by_index]
        moved = None
    else:
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
    with deleted_elsewhere(conn, b.block_id):
        if len(values) == 1:
            rows = _INSERT_TASK[dialect].all(conn, values[0])
        else:
            rows = conn.execute(_INSERT_TASKS[dialect], values).all()
    return {int(r.idx): int(r.id) for r in rows}


#: PostgreSQL's foreign_key_violation.
_FOREIGN_KEY_VIOLATION = "23503"


@contextlib.contextmanager
def deleted_elsewhere(conn: sa.Connection, block_id: int) -> Iterator[None]:
    """A task row inserted for a block that another controller deleted (its job), from
    positions this process held (`store.ranges`) or a candidate read before the deletion:
    PostgreSQL refuses it (the task's foreign key) and rolls the transaction back. The
    positions are forgotten and the claim is `Contended`: run again, it finds no block row,
    so no position, and claims elsewhere; no poll fails for it."""
    try:
        yield
    except sa.exc.IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) != _FOREIGN_KEY_VIOLATION:
            raise
        if tally.enabled(conn):  # not held again when the transaction rolls back
            tally.let_go(conn, block_id)
        ranges.forget(conn.engine, [block_id])
        raise Contended(f"block {block_id} was deleted by another controller") from exc


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
