"""Claims written at the end of their transaction: a group of polls' claims in one statement
(PostgreSQL).

A claim under the block cursor (`store.pg_claim`) writes its task rows and attempts with one
statement; a group of polls run together (`controller/agents.py`, `first_rounds`) made one
such statement per poll, and the farm thread waited on each (docs/performance.md). What the
claim needs from the database is the attempt's id, and only for the answer, after the commit.
So a transaction that asks for it (`Database.transaction(claims_later=True)`) gathers its
claims here, with attempt ids the process took from the attempts' sequence ahead
(`_IDS_AHEAD` at a time: unique, never reused; a transaction that rolls back leaves a gap),
and writes them all with one statement: before its commit, and before any statement of the
transaction that may read tasks or attempts (`write_before`; not the block row's lock, nor the
tally's own writes, which read neither).

An attempt so made may have a lower id than one another path started a moment before; it is
always its task's first (the claim under the cursor makes new task rows only), so a task's
later attempts still have higher ids.

A position whose task row is there already (touched before dispatch; a position two
controllers both found unassigned at the block's end, `store.ranges`) is passed over by a
claim that writes at once; here it is found only at the write, after the attempt was promised
to a poll. The write then raises `ClaimsLost`: the transaction rolls back (its positions held
again in their places, `store.tally`) and the caller runs its polls again each in a
transaction of its own, whose claims write at once.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from thresher.core.states import AttemptStatus, TaskStatus
from thresher.store import tally

_KEY = "thresher_claims_later"  # conn.info: (transaction, list of _Row or None)

#: Attempt ids taken from the sequence at a time (one round trip per this many claims).
_IDS_AHEAD = 256
_IDS = "SELECT nextval(pg_get_serial_sequence('attempts', 'id')) FROM generate_series(1, %(n)s)"

# Each attempt's values arrive as arrays of one length; a task row inserted (`t`) finds its
# attempt's values by its block and index. The count tells whether every position had its row
# made here.
_WRITE = (
    "WITH p AS (SELECT * FROM unnest(%(block_ids)s::bigint[], %(job_ids)s::bigint[],"
    " %(idxs)s::int[], %(tokens)s::text[], %(ids)s::bigint[], %(worker_ids)s::bigint[],"
    " %(lanes)s::int[], %(capacities)s::int[], %(created)s::float8[])"
    " AS p(block_id, job_id, idx, token, id, worker_id, lane, capacity, created_at)),"
    " t AS (INSERT INTO tasks (block_id, job_id, idx, status, failures, attempts,"
    " last_worker_id, updated_at) SELECT p.block_id, p.job_id, p.idx, %(task_status)s, 0, 1,"
    " p.worker_id, p.created_at FROM p"
    " ON CONFLICT (block_id, idx) DO NOTHING RETURNING id, block_id, idx),"
    " a AS (INSERT INTO attempts (id, task_id, job_id, worker_id, token, status, created_at,"
    " lane, capacity) SELECT p.id, t.id, p.job_id, p.worker_id, p.token, %(attempt_status)s,"
    " p.created_at, p.lane, p.capacity FROM t JOIN p ON p.block_id = t.block_id"
    " AND p.idx = t.idx RETURNING 1)"
    " SELECT count(*) FROM a"
)


class ClaimsLost(Exception):
    """Claims gathered in a transaction could not all be written as promised: run the polls
    again, each claiming at once."""


# One gathered attempt: its block, job, task index, token, id, worker, lane, capacity, start.
_Row = tuple[int, int, int, str, int, int, int | None, int, float]
# The `_WRITE` statement's array parameters, in the order of a `_Row`.
_COLUMNS = (
    "block_ids",
    "job_ids",
    "idxs",
    "tokens",
    "ids",
    "worker_ids",
    "lanes",
    "capacities",
    "created",
)


_ids_lock = threading.Lock()
_ids_ahead: weakref.WeakKeyDictionary[Any, list[int]] = weakref.WeakKeyDictionary()
_INSTALLED: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def install(engine: sa.Engine) -> None:
    """Write what a transaction gathered before any other SQLAlchemy statement of it (once
    per engine; nothing on SQLite). `Prepared` statements do the same (`write_before`)."""
    if engine.dialect.name != "postgresql" or engine in _INSTALLED:
        return
    event.listen(engine, "before_cursor_execute", _before_statement)
    _INSTALLED.add(engine)


def gather_in(conn: sa.Connection) -> None:
    """The open transaction's claims are gathered and written at its end (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.info[_KEY] = (conn.get_transaction(), None)


def gathering(conn: sa.Connection) -> bool:
    """Whether the open transaction's claims are gathered."""
    kept = conn.info.get(_KEY)
    return kept is not None and kept[0] is conn.get_transaction()


def gather(
    conn: sa.Connection,
    *,
    block_id: int,
    job_id: int,
    indices: list[int],
    tokens: list[str],
    worker_id: int,
    lane: int | None,
    capacity: int,
    now: float,
) -> list[int]:
    """Gather a claim of these task indices of the block (their rows and attempts written
    at the transaction's end); the attempts' ids."""
    transaction, kept = conn.info[_KEY]
    gathered: list[_Row] = [] if kept is None else kept
    if kept is None:
        conn.info[_KEY] = (transaction, gathered)
    ids = _take_ids(conn, len(indices))
    gathered += [
        (block_id, job_id, idx, token, id_, worker_id, lane, capacity, now)
        for idx, token, id_ in zip(indices, tokens, ids, strict=True)
    ]
    return ids


def _take_ids(conn: sa.Connection, n: int) -> list[int]:
    with _ids_lock:
        ahead = _ids_ahead.setdefault(conn.engine, [])
        if len(ahead) < n:
            rows = tally._run(conn, _IDS, {"n": max(n, _IDS_AHEAD)}, fetch="all")
            ahead += [int(r[0]) for r in rows]
        taken = ahead[:n]
        del ahead[:n]
    return taken


def write_before(conn: sa.Connection) -> None:
    """Write the claims the open transaction gathered (before a statement that may read
    them, or its commit); `ClaimsLost` when a task row was there already."""
    kept = conn.info.get(_KEY)
    if kept is None or kept[1] is None:
        return
    transaction, gathered = kept
    if transaction is not conn.get_transaction():  # left by a transaction that ended
        del conn.info[_KEY]
        return
    conn.info[_KEY] = (transaction, None)
    columns = [list(c) for c in zip(*gathered, strict=True)]
    values: dict[str, Any] = dict(zip(_COLUMNS, columns, strict=True))
    values["task_status"] = TaskStatus.RUNNING.value
    values["attempt_status"] = AttemptStatus.RUNNING.value
    try:
        (written,) = tally._run(conn, _WRITE, values)
    except sa.exc.IntegrityError as exc:  # a block deleted by another controller
        raise ClaimsLost(str(exc.orig)) from exc
    if int(written) != len(gathered):
        raise ClaimsLost(f"{len(gathered) - int(written)} claimed tasks were taken already")


def write_at_commit(conn: sa.Connection) -> None:
    """Write the claims the transaction gathered, before its commit; it gathers no more."""
    write_before(conn)
    conn.info.pop(_KEY, None)


def _before_statement(
    conn: sa.Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    if _KEY in conn.info:
        write_before(conn)
