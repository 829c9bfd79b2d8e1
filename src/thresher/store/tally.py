"""A transaction's changes to its blocks' hot columns, written at its end (PostgreSQL).

PostgreSQL keeps every version of a row that a snapshot older than it may still see; while a
long transaction holds such a snapshot (a report, a backup), none can be pruned, a row written
per claim grows a chain by thousands a second, and every lookup of the row walks it
(docs/performance.md, "Vacuum held back"). So on PostgreSQL a transaction gathers what it
changes in a block's cursor and counters here, and at its commit:

- a block whose cursor it moved (a range reserved, `store.cursor`) gets one UPDATE with the
  cursor and the counts; the positions of the range it did not hand out are held by the
  process for its next claims (`store.ranges`);
- the counts of every other block go to the journal (`block_deltas`): one INSERT per block,
  no new version of the block's row.

The claim locks the block's row only to reserve a range (`SELECT … FOR NO KEY UPDATE` writes no
version). The finish adds its counts (`n_running` down, `n_succeeded` and the run time up).

The journal is folded into the blocks' rows (`fold`): by a committing transaction at most
every FOLD_EVERY_S, by the dispatch index's rebuild (`fold_now`, which folds what a controller
that died journaled too), and before a statement that may read the counters while this
process journaled rows that no committed fold of its own has seen. A fold locks the rows it
writes with `SKIP LOCKED`: it never waits on a claim holding a block's row, nor on another
fold; what it skips stays for the next (a read that follows folds again: a fold that skipped a
block does not count as having folded this process's journal).

Any other statement of the transaction that names the `blocks` table (a read of the counters,
deciding whether a job is final, a move of a task with its counters, a retry moving the cursor
back) first writes what is gathered to the rows, so it sees the block as it is; the
statements of the claim and finish that read only fixed columns of the block say so
(`Prepared(..., tally_safe=True)`, or the execution option `tally_safe`). A rollback forgets
what was gathered, with the rest of the transaction, and undoes what it did to the positions
the process holds, whether or not its tally was written before (`Given`, kept across the
writes): the positions its claims took from them are held again in their places, so the next
claims hand them out in order, and the rest of a range it reserved is held no more, its cursor
write being undone.

The lock and the UPDATE go straight to the row's live version when they can: each controller
keeps where it last wrote each block's row (its `ctid`) and asks for `id = … AND ctid = …` (a
TID scan: one tuple, however many dead versions the held snapshot keeps); when another
controller wrote the row since, that finds nothing and the lookup by id runs instead. The
`ctid` only says where to look: whatever it finds has the block's id, and it is the row's
current version or nothing.

SQLite has one writer and no row versions to keep: it gathers its own way (`store.local_tally`).
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from thresher.store import local_tally, per_transaction, ranges

_KEY = "thresher_tally"
_GIVEN_KEY = "thresher_tally_given"
_INSTALLED: weakref.WeakSet[sa.Engine] = weakref.WeakSet()
#: Where each block's row was last written or locked by this process (a hint, see above).
_WHERE: dict[int, str] = {}
_WHERE_MAX = 10_000


@dataclass
class BlockTally:
    """What one transaction changed in one block's hot columns (not written yet)."""

    cursor: int | None = None  # next position to hand out; None: the row is not read yet
    reserved: int | None = None  # the cursor to write: positions up to it are reserved
    task_count: int = 0  # as read under the lock
    ctid: str | None = None  # where its live version is (read under the lock)
    cursor_moved: bool = False
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    runtime_sum: float = 0.0
    runtime_n: int = 0
    # Positions this transaction took from those the process holds (`store.ranges`): held
    # again if it rolls back.
    from_held: list[int] = field(default_factory=list)

    def counts(self) -> bool:
        return bool(self.queued or self.running or self.succeeded or self.runtime_n)


@dataclass
class Given:
    """What one transaction did to the positions the process holds of one block, up to its
    last write of the tally (a write starts the tally over, this stays until the end): undone
    if it rolls back."""

    taken: list[int] = field(default_factory=list)  # taken from those held, handed out
    held: list[range] = field(default_factory=list)  # held at a write that moved the cursor


def enabled(conn: sa.Connection) -> bool:
    """Whether this connection gathers block changes (PostgreSQL, with the hooks installed)."""
    return conn.dialect.name == "postgresql" and conn.engine in _INSTALLED


def install(engine: sa.Engine) -> None:
    """Hook the engine's connections (once per engine, before its first transaction): write
    what a transaction gathered before its commit and before any statement that may read it;
    forget it at a rollback. Nothing on SQLite."""
    local_tally.install(engine)  # SQLite's own way
    if engine.dialect.name != "postgresql" or engine in _INSTALLED:
        return
    event.listen(engine, "before_cursor_execute", _before_statement)
    event.listen(engine, "commit", _before_commit)
    event.listen(engine, "rollback", _forget)
    _INSTALLED.add(engine)


def _tallies(conn: sa.Connection) -> dict[int, BlockTally] | None:
    """The open transaction's tallies."""
    return per_transaction.gathered(conn, _KEY)


def of(conn: sa.Connection, block_id: int) -> BlockTally:
    """The open transaction's tally of a block (created empty)."""
    return per_transaction.of_block(conn, _KEY, block_id, BlockTally)


def pending(conn: sa.Connection) -> bool:
    return bool(_tallies(conn))


_SET = (
    "UPDATE blocks SET cursor = COALESCE(%(cursor)s, cursor),"
    " n_queued = n_queued + %(queued)s, n_running = n_running + %(running)s,"
    " n_succeeded = n_succeeded + %(succeeded)s, runtime_sum = runtime_sum + %(runtime_sum)s,"
    " runtime_n = runtime_n + %(runtime_n)s WHERE id = %(block_id)s"
)
_FLUSH_AT = _SET + " AND ctid = %(ctid)s::tid RETURNING ctid::text"
_FLUSH = _SET + " RETURNING ctid::text"
_LOCK = "SELECT cursor, task_count, ctid::text FROM blocks WHERE id = %(block_id)s"
# NO KEY UPDATE: the lock an UPDATE of non-key columns takes; it lets the inserts of task rows
# check their foreign key (FOR KEY SHARE) meanwhile.
_LOCK_AT = _LOCK + " AND ctid = %(ctid)s::tid FOR NO KEY UPDATE"
_LOCK_BY_ID = _LOCK + " FOR NO KEY UPDATE"
_JOURNAL = (
    "INSERT INTO block_deltas (block_id, n_queued, n_running, n_succeeded, runtime_sum,"
    " runtime_n) VALUES (%(block_id)s, %(queued)s, %(running)s, %(succeeded)s,"
    " %(runtime_sum)s, %(runtime_n)s)"
)
_PENDING = "SELECT DISTINCT block_id FROM block_deltas"
# Rows another transaction holds (a claim reserving a range, another fold) are left for a
# later fold: a fold never waits, so it never deadlocks with them.
_LOCK_SOME = (
    "SELECT id FROM blocks WHERE id = ANY(%(ids)s) ORDER BY id FOR NO KEY UPDATE SKIP LOCKED"
)
_EXISTING = "SELECT count(*) FROM blocks WHERE id = ANY(%(ids)s)"
_TAKE = (
    "WITH d AS (DELETE FROM block_deltas WHERE id IN (SELECT id FROM block_deltas"
    " WHERE block_id = ANY(%(ids)s) FOR UPDATE SKIP LOCKED) RETURNING *)"
    " SELECT block_id, sum(n_queued), sum(n_running), sum(n_succeeded), sum(runtime_sum),"
    " sum(runtime_n) FROM d GROUP BY block_id ORDER BY block_id"
)
#: Seconds between the folds of the journal that a committing claim or finish runs. A fold
#: writes a version of each block row it folds into; while a snapshot is held they pile up
#: and the foreign key check of every task row's insert walks them (docs/performance.md,
#: "h-pg"). Reads of this process fold first; another controller sees the counts this late.
FOLD_EVERY_S = 5.0
_FOLD_KEY = "thresher_tally_fold"
_fold_lock = threading.Lock()
_last_fold = 0.0
# Journal rows this process wrote, and those a committed fold of its own had seen: a read
# of the counters folds first while the first is ahead.
_journaled = 0
_folded = 0


def _run(conn: sa.Connection, sql: str, params: dict[str, Any], *, fetch: str = "one") -> Any:
    """One row (`fetch` "all": every row; "": none) of a statement run on the transaction's
    DBAPI connection (as `Prepared` runs them: no SQLAlchemy events, its error handling)."""
    dbapi_conn: Any = conn.connection.dbapi_connection
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(sql, params)
        rows = cursor.fetchone() if fetch == "one" else cursor.fetchall() if fetch else None
    except Exception as exc:
        cursor.close()
        # A lost connection invalidated, the error wrapped, so `unavailable_translated`
        # translates it.
        conn._handle_dbapi_exception(exc, sql, params, cursor, None)
        raise
    cursor.close()
    return rows


def _note_where(block_id: int, ctid: str) -> None:
    if len(_WHERE) >= _WHERE_MAX:
        _WHERE.clear()
    _WHERE[block_id] = ctid


def lock(conn: sa.Connection, block_id: int) -> BlockTally | None:
    """Lock the block's row (`SELECT … FOR NO KEY UPDATE`: no new version) and read its cursor into
    the transaction's tally of it; None when the block is gone."""
    t = of(conn, block_id)
    row = None
    hint = _WHERE.get(block_id)
    if hint is not None:
        row = _run(conn, _LOCK_AT, {"block_id": block_id, "ctid": hint})
    if row is None:
        row = _run(conn, _LOCK_BY_ID, {"block_id": block_id})
    if row is None:
        return None
    t.cursor, t.task_count, t.ctid = int(row[0]), int(row[1]), str(row[2])
    t.reserved = t.cursor
    return t


def inserted(conn: sa.Connection, block_id: int, task_count: int) -> None:
    """A block the open transaction inserted: no other sees its row before the commit, and
    its cursor is 0, so a claim in the same transaction (a held poll's, in the submission's)
    reserves from it with neither the row's lock nor its read (`lock`). PostgreSQL only
    (`enabled`)."""
    t = of(conn, block_id)
    t.cursor = t.reserved = 0
    t.task_count = task_count
    _WHERE.pop(block_id, None)  # another database's block of that id: its row is not here


def _update(conn: sa.Connection, block_id: int, t: BlockTally, cursor: int | None) -> None:
    params = {
        "block_id": block_id,
        "cursor": cursor,
        **_counts(t),
        "ctid": t.ctid or _WHERE.get(block_id),
    }
    row = _run(conn, _FLUSH_AT, params) if params["ctid"] is not None else None
    if row is None:
        row = _run(conn, _FLUSH, params)
    if row is not None:
        _note_where(block_id, str(row[0]))


def flush(conn: sa.Connection, *, journal: bool = False) -> None:
    """Write what the transaction gathered and start over: a later claim locks and reads the
    row again. A block whose cursor moved gets one UPDATE with its counts; the counts of the
    others go to the journal with `journal` (the commit), else (a statement about to read
    them) to the blocks' rows. Positions reserved and not handed out are held by the process
    (`store.ranges`)."""
    global _journaled
    tallies = _tallies(conn)
    conn.info.pop(_KEY, None)
    if not tallies:
        return
    for block_id, t in sorted(tallies.items()):
        # Kept for a rollback, unless this is the commit's write.
        given = _given(conn, block_id) if not journal and (t.from_held or t.cursor_moved) else None
        if given is not None:
            given.taken += t.from_held
        if t.cursor_moved:
            _update(conn, block_id, t, t.reserved if t.reserved is not None else t.cursor)
            if t.cursor is not None and t.reserved is not None and t.cursor < t.reserved:
                ranges.hold(conn.engine, block_id, range(t.cursor, t.reserved))
                if given is not None:
                    given.held.append(range(t.cursor, t.reserved))
        elif t.counts() and journal:
            _run(conn, _JOURNAL, {"block_id": block_id, **_counts(t)}, fetch="")
            _journaled += 1
        elif t.counts():
            _update(conn, block_id, t, None)


def _given(conn: sa.Connection, block_id: int) -> Given:
    return per_transaction.of_block(conn, _GIVEN_KEY, block_id, Given)


def let_go(conn: sa.Connection, block_id: int) -> None:
    """Nothing of the block's positions is held again if the transaction rolls back (the block
    is gone: `cursor.deleted_elsewhere`)."""
    of(conn, block_id).from_held.clear()
    given = per_transaction.gathered(conn, _GIVEN_KEY)
    if given is not None:
        given.pop(block_id, None)


def _counts(t: BlockTally) -> dict[str, Any]:
    return {
        "queued": t.queued,
        "running": t.running,
        "succeeded": t.succeeded,
        "runtime_sum": t.runtime_sum,
        "runtime_n": t.runtime_n,
    }


def fold(conn: sa.Connection) -> int:
    """Fold the journal's rows into their blocks' rows, in the caller's transaction: one
    UPDATE per block. Rows of a block whose row another transaction holds stay for a later
    fold. Returns the blocks written."""
    seen = _journaled
    pending = [int(r[0]) for r in _run(conn, _PENDING, {}, fetch="all")]
    locked = (
        [int(r[0]) for r in _run(conn, _LOCK_SOME, {"ids": pending}, fetch="all")]
        if pending
        else []
    )
    # What this process journaled counts as folded once this commits, unless a block was
    # skipped (its row held elsewhere): then the next statement that reads the counters folds
    # again; without it, they would be read short until the process journals more. Journal
    # rows of a block that is gone are not a skip (they would make every read fold).
    skipped = len(locked) < len(pending) and _existing(conn, pending) > len(locked)
    conn.info[_FOLD_KEY] = (conn.get_transaction(), _folded if skipped else seen)
    if not locked:
        return 0
    sums = _run(conn, _TAKE, {"ids": locked}, fetch="all")
    for block_id, queued, running, succeeded, runtime_sum, runtime_n in sums:
        t = BlockTally(
            queued=int(queued),
            running=int(running),
            succeeded=int(succeeded),
            runtime_sum=float(runtime_sum),
            runtime_n=int(runtime_n),
        )
        if t.counts() or t.runtime_sum:
            _update(conn, int(block_id), t, None)
    return len(sums)


def _existing(conn: sa.Connection, block_ids: list[int]) -> int:
    """How many of these blocks' rows exist (a read that waits on no lock)."""
    row = _run(conn, _EXISTING, {"ids": block_ids})
    return int(row[0]) if row is not None else 0


def fold_now(engine: sa.Engine) -> None:
    """Fold the journal in a transaction of its own (the dispatch index's rebuild: what a
    controller that died left there is folded too). Nothing on SQLite."""
    if engine.dialect.name != "postgresql" or engine not in _INSTALLED:
        return
    with engine.begin() as conn:
        fold(conn)


def names_blocks(sql: str) -> bool:
    """Whether a statement's SQL names the blocks table (it may read what is gathered)."""
    return "blocks" in sql


def _before_statement(
    conn: sa.Connection,
    cursor: Any,
    statement: str,
    parameters: Any,
    context: Any,
    executemany: bool,
) -> None:
    if not names_blocks(statement):
        return
    if context is not None and context.execution_options.get("tally_safe"):
        return
    if _KEY in conn.info and pending(conn):
        flush(conn)
    if _journaled > _folded and not _folded_here(conn):
        fold(conn)  # this process's journal, so that the statement reads the counts as they are


def _before_commit(conn: sa.Connection) -> None:
    flush(conn, journal=True)
    conn.info.pop(_GIVEN_KEY, None)
    if _journaled > _folded and _fold_due():
        fold(conn)
    kept = conn.info.pop(_FOLD_KEY, None)
    if kept is not None and kept[0] is conn.get_transaction():
        _note_folded(kept[1])


def _folded_here(conn: sa.Connection) -> bool:
    """Whether the open transaction folded the journal already."""
    kept = conn.info.get(_FOLD_KEY)
    return kept is not None and kept[0] is conn.get_transaction()


def _fold_due() -> bool:
    """Whether this process's periodic fold is due (then it counts as done)."""
    global _last_fold
    now = time.monotonic()
    with _fold_lock:
        if now - _last_fold < FOLD_EVERY_S:
            return False
        _last_fold = now
        return True


def _note_folded(seen: int) -> None:
    global _folded
    with _fold_lock:
        _folded = max(_folded, seen)


def _forget(conn: sa.Connection) -> None:
    if conn.invalidated:  # a lost connection: its `info` may not be reached (and the
        return  # transaction's identity keeps a stale tally from reuse)
    conn.info.pop(_FOLD_KEY, None)
    tallies: dict[int, BlockTally] = _tallies(conn) or {}
    given: dict[int, Given] = per_transaction.gathered(conn, _GIVEN_KEY) or {}
    conn.info.pop(_KEY, None)
    conn.info.pop(_GIVEN_KEY, None)
    for block_id in sorted(tallies.keys() | given.keys()):  # not handed out after all
        g = given.get(block_id, Given())
        t = tallies.get(block_id)
        taken = g.taken + (t.from_held if t is not None else [])
        ranges.give_back(conn.engine, block_id, taken, unless=g.held)
