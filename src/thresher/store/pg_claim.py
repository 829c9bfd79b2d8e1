"""The claim's writes in one round trip to PostgreSQL: the task rows and their attempts.

A claim on PostgreSQL that takes tasks under the block cursor (`store.cursor`) finds its
positions without the database most of the time (those the process holds, `store.ranges`),
then wrote the task rows (`INSERT … ON CONFLICT DO NOTHING RETURNING`) and, in a second
statement, their attempts. Here both go as one statement with data-modifying CTEs: the task
rows inserted feed the attempts' insert, and the statement returns each attempt with its task,
so a claim costs one round trip (two when it reserves a new range: the block row's lock).

A position whose task row is there already (touched before dispatch: skipped, queued by a
retry) inserts nothing, so no attempt either: not the cursor's to run, as in `store.cursor`.

Only for a block whose claim starts at the cursor: not when the snapshot says it has requeued
tasks (they go first, `cursor.take_requeued`), nor frame by frame (`cursor.take_ready`).

In a transaction that gathers its claims (a group of polls), the rows are not written here
but with the transaction's other claims, in one statement at its end (`store.claims_later`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from thresher.core.frames import TaskLayout
from thresher.core.states import AttemptStatus, TaskStatus
from thresher.store import claims_later, tally
from thresher.store.cursor import _positions, _spreads, deleted_elsewhere
from thresher.store.snapshot import SnapBlock

# The positions' task indexes and the attempts' tokens arrive as two arrays of one length
# (`p`); a task row inserted (`t`) gets the token of its index. The join back to `t` gives
# each attempt its task's index.
_CLAIM = (
    "WITH p AS (SELECT * FROM unnest(%(idxs)s::int[], %(tokens)s::text[]) AS p(idx, token)),"
    " t AS (INSERT INTO tasks (block_id, job_id, idx, status, failures, attempts,"
    " last_worker_id, updated_at) SELECT %(block_id)s, %(job_id)s, p.idx, %(task_status)s,"
    " 0, 1, %(worker_id)s, %(now)s FROM p"
    " ON CONFLICT (block_id, idx) DO NOTHING RETURNING id, idx),"
    " a AS (INSERT INTO attempts (task_id, job_id, worker_id, token, status, created_at,"
    " lane, capacity) SELECT t.id, %(job_id)s, %(worker_id)s, p.token, %(attempt_status)s,"
    " %(now)s, %(lane)s, %(capacity)s FROM t JOIN p ON p.idx = t.idx"
    " RETURNING id, task_id, token)"
    " SELECT a.id, a.task_id, t.idx, a.token FROM a JOIN t ON t.id = a.task_id"
)


@dataclass(frozen=True)
class Started:
    """Tasks taken and their attempts started, in the order of their positions."""

    indices: list[int]  # the tasks' indexes
    tokens: list[str]
    attempt_ids: list[int]


def applies(conn: sa.Connection, b: SnapBlock) -> bool:
    """Whether the claim of the block may take this path (PostgreSQL with the block tally;
    the block's tasks start at the cursor)."""
    return tally.enabled(conn) and not b.after_frames and b.n_queued <= 0


def claim(
    conn: sa.Connection,
    b: SnapBlock,
    layout: TaskLayout,
    *,
    worker_id: int,
    now: float,
    lane: int | None,
    count: int,
) -> Started:
    """Up to `count` tasks under the cursor, their rows and attempts written by one
    statement; nothing taken when the block has no position left."""
    spread = _spreads(b)
    while True:
        positions = _positions(conn, b.block_id, layout, count, spread=spread)
        if not positions:
            return Started([], [], [])
        indices = [layout.task_at(p) for p in positions]
        tokens = [secrets.token_hex(16) for _ in indices]
        if claims_later.gathering(conn):  # written with the transaction's other claims
            ids = claims_later.gather(
                conn,
                block_id=b.block_id,
                job_id=b.job_id,
                indices=indices,
                tokens=tokens,
                worker_id=worker_id,
                lane=lane,
                capacity=b.capacity,
                now=now,
            )
            tally.of(conn, b.block_id).running += len(ids)
            return Started(indices, tokens, ids)
        with deleted_elsewhere(conn, b.block_id):
            rows = tally._run(
                conn,
                _CLAIM,
                {
                    "idxs": indices,
                    "tokens": tokens,
                    "block_id": b.block_id,
                    "job_id": b.job_id,
                    "worker_id": worker_id,
                    "now": now,
                    "lane": lane,
                    "capacity": b.capacity,
                    "task_status": TaskStatus.RUNNING.value,
                    "attempt_status": AttemptStatus.RUNNING.value,
                },
                fetch="all",
            )
        if rows:
            tally.of(conn, b.block_id).running += len(rows)
            order = {index: i for i, index in enumerate(indices)}
            rows.sort(key=lambda r: order[int(r[2])])
            return Started(
                [int(r[2]) for r in rows],
                [str(r[3]) for r in rows],
                [int(r[0]) for r in rows],
            )
        # Every position was touched before dispatch: not the cursor's to run; the next.
