"""A transaction's moves of its blocks' cursors and counters, written once at its end (SQLite).

On SQLite a claim moved the block's cursor with an UPDATE and a finish counted its success
with another, both on the same row, each poll; up to 32 polls share a transaction
(`farm_thread`), so that was two statements per poll for one row. Here a transaction gathers
them instead: the first claim of a block in the transaction reads the cursor with a write
(`UPDATE … SET cursor = cursor … RETURNING`: the transaction holds SQLite's one write lock
from then on, so no other connection moves the cursor until it commits), later claims hand
out the positions past it in memory, and a finish adds its counts; at the commit each block
gets one UPDATE with its cursor and counts.

Any other statement of the transaction that names the `blocks` table (a read of the counters,
a retry moving the cursor back, deciding whether a job is final) first writes what is
gathered, so it sees the block as it is; a later claim reads the cursor again. Statements
that read only fixed columns of a block say so (`tally_safe`, as in `store.tally`). A rollback
forgets what was gathered with the rest of the transaction: the cursor and counts stay as
they were, like the task rows of the positions handed out.

PostgreSQL gathers its own way (`store.tally`: ranges and a journal for several controllers).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from thresher.store import per_transaction

_KEY = "thresher_local_tally"
_INSTALLED: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


@dataclass
class Gathered:
    """What one transaction changed in one block's cursor and counters (not written yet)."""

    cursor: int | None = None  # the next position to hand out; None: not read
    task_count: int = 0
    moved: bool = False
    running: int = 0
    succeeded: int = 0
    runtime_sum: float = 0.0
    runtime_n: int = 0


def install(engine: sa.Engine) -> None:
    """Hook the engine's connections (once per engine, before its first transaction): write
    what a transaction gathered before its commit and before any statement that may read it;
    forget it at a rollback. Nothing on PostgreSQL."""
    if engine.dialect.name != "sqlite" or engine in _INSTALLED:
        return
    event.listen(engine, "before_cursor_execute", _before_statement)
    event.listen(engine, "commit", _before_commit)
    event.listen(engine, "rollback", _forget)
    _INSTALLED.add(engine)


def enabled(conn: sa.Connection) -> bool:
    """Whether this connection gathers block changes (SQLite, with the hooks installed)."""
    return conn.dialect.name == "sqlite" and conn.engine in _INSTALLED


def _gathered(conn: sa.Connection) -> dict[int, Gathered] | None:
    """The open transaction's changes."""
    return per_transaction.gathered(conn, _KEY)


def of(conn: sa.Connection, block_id: int) -> Gathered:
    """The open transaction's changes to a block (created empty)."""
    return per_transaction.of_block(conn, _KEY, block_id, Gathered)


def pending(conn: sa.Connection) -> bool:
    return _KEY in conn.info and bool(_gathered(conn))


_READ = "UPDATE blocks SET cursor = cursor WHERE id = ? RETURNING cursor, task_count"
_WRITE = (
    "UPDATE blocks SET cursor = coalesce(?, cursor), n_running = n_running + ?,"
    " n_succeeded = n_succeeded + ?, runtime_sum = runtime_sum + ?,"
    " runtime_n = runtime_n + ? WHERE id = ?"
)


def _run(conn: sa.Connection, sql: str, params: tuple[Any, ...]) -> Any:
    """The first row of a statement run on the transaction's DBAPI connection (no SQLAlchemy
    events; its error handling, as `Prepared`)."""
    dbapi_conn: Any = conn.connection.dbapi_connection
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    except Exception as exc:
        cursor.close()
        conn._handle_dbapi_exception(exc, sql, params, cursor, None)
        raise
    cursor.close()
    return row


def take(conn: sa.Connection, block_id: int, k: int) -> range:
    """Up to `k` positions past the block's cursor, taken (the cursor read at the first);
    empty when the block is gone or has fewer than `k` left (as the UPDATE it replaces)."""
    g = of(conn, block_id)
    if g.cursor is None:
        row = _run(conn, _READ, (block_id,))
        if row is None:
            return range(0)
        g.cursor, g.task_count = int(row[0]), int(row[1])
    if g.cursor + k > g.task_count:
        return range(0)
    taken = range(g.cursor, g.cursor + k)
    g.cursor = taken.stop
    g.moved = True
    return taken


def flush(conn: sa.Connection) -> None:
    """Write what the transaction gathered (one UPDATE per block) and start over."""
    gathered = _gathered(conn)
    conn.info.pop(_KEY, None)
    if not gathered:
        return
    for block_id, g in sorted(gathered.items()):
        if not (g.moved or g.running or g.succeeded or g.runtime_n or g.runtime_sum):
            continue
        _run(
            conn,
            _WRITE,
            (
                g.cursor if g.moved else None,
                g.running,
                g.succeeded,
                g.runtime_sum,
                g.runtime_n,
                block_id,
            ),
        )


def _before_statement(
    conn: sa.Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    if _KEY not in conn.info or "blocks" not in statement:
        return
    if context is not None and context.execution_options.get("tally_safe"):
        return
    flush(conn)


def _before_commit(conn: sa.Connection) -> None:
    if _KEY in conn.info:
        flush(conn)


def _forget(conn: sa.Connection) -> None:
    if not conn.invalidated:
        conn.info.pop(_KEY, None)
