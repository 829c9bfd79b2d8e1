"""What the store's repositories share: the database (engine, the open transaction, task
layouts, task moves with their counters) and the repository base class."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa

from thresher.core.chunk_plan import ADAPTIVE_CHUNK, ChunkPlan, PlannedLayout
from thresher.core.errors import Contended, NotFound, Unavailable
from thresher.core.frames import FrameSet, TaskLayout
from thresher.core.model import Counts
from thresher.core.states import AttemptStatus, TaskStatus, check_move
from thresher.store import claims_later as later
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


#: PostgreSQL's deadlock_detected and serialization_failure: the transaction may run again.
CONTENTION_STATES = frozenset({"40P01", "40001"})


@contextlib.contextmanager
def unavailable_translated() -> Iterator[None]:
    """The database's own errors of being away (the server down or restarting, a dropped
    connection, a full disk, a lock held too long) as `Unavailable`: the one place where
    SQLAlchemy's operational errors are translated. Errors of our own statements (integrity,
    programming errors) pass as they are."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        if getattr(exc.orig, "sqlstate", None) in CONTENTION_STATES:
            raise Contended(
                f"the database rolled back a conflict: {_first_line(exc.orig)}"
            ) from exc
        raise Unavailable(f"the database is unavailable: {_first_line(exc.orig)}") from exc
    except sa.exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        raise Unavailable(f"the database connection was lost: {_first_line(exc.orig)}") from exc


def _first_line(error: BaseException | None) -> str:
    return str(error).strip().splitlines()[0] if error is not None and str(error).strip() else "?"


class Database:
    """The engine and what every repository of the store shares over it."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._layouts: dict[tuple[int, int | None], TaskLayout] = {}
        self._planned: dict[int, tuple[Any, PlannedLayout]] = {}
        # What a finish reads of a block that never changes after submission, by block id
        # (ids are never reused; PostgreSQL's finishes, `plain_finish`).
        self.block_fixed: dict[int, Any] = {}
        # The open `transaction()` of the running thread or asyncio task, if any: a context
        # variable, so that two requests served on one event loop never share a transaction.
        self._open: ContextVar[sa.Connection | None] = ContextVar(
            f"thresher-store-{id(self)}", default=None
        )
        # Called with each transaction's seconds from BEGIN to its end (the metrics).
        self.observe_transaction: Callable[[float], None] | None = None

    @contextlib.contextmanager
    def transaction(self, *, claims_later: bool = False) -> Iterator[sa.Connection]:
        with unavailable_translated(), self._transaction(claims_later) as conn:
            yield conn

    @contextlib.contextmanager
    def _transaction(self, claims_later: bool) -> Iterator[sa.Connection]:
        """One transaction for every store call made inside the block (by this thread or this
        asyncio task): they all commit together at its end, or (on an exception) none of them
        does. A poll stores its worker's finishes and claims its tasks this way, in one round
        of BEGIN ... COMMIT. Nested, it joins the open transaction. With `claims_later` (a
        new transaction only), its claims are written together before its commit
        (`store.claims_later`; `ClaimsLost` if they cannot all be)."""
        open_conn = self._open.get()
        if open_conn is not None:
            yield open_conn
            return
        started = time.perf_counter()
        try:
            with self.engine.begin() as conn:
                token = self._open.set(conn)
                try:
                    if claims_later:
                        later.gather_in(conn)
                    yield conn
                    later.write_at_commit(conn)
                finally:
                    self._open.reset(token)
        finally:
            if self.observe_transaction is not None:
                self.observe_transaction(time.perf_counter() - started)

    def in_transaction(self) -> bool:
        """Whether this thread or task has a `transaction()` open."""
        return self._open.get() is not None

    @contextlib.contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A write transaction: the caller's open `transaction()`, else a new one."""
        open_conn = self._open.get()
        if open_conn is not None:
            yield open_conn
            return
        with unavailable_translated(), self.engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def connect(self, engine: sa.Engine | None = None) -> Iterator[sa.Connection]:
        """A connection to read from: the caller's open `transaction()` (so a read sees what
        the transaction wrote), else one of `engine` (default: the store's)."""
        open_conn = self._open.get()
        if open_conn is not None:
            yield open_conn
            return
        with unavailable_translated(), (engine or self.engine).connect() as conn:
            yield conn

    def forget_layouts(self) -> None:
        """Drop the kept layouts (a deleted job's blocks must not be found again)."""
        self._layouts.clear()
        self._planned.clear()

    def layout(
        self,
        block_id: int,
        frames: str,
        chunk: int,
        priority: str | None,
        preview_every: int | None = None,
    ) -> TaskLayout:
        """The block's task layout, parsed once per block and kept (blocks never change it).
        `preview_every` changes only the dispatch order, never which frames a task holds.

        A block with adaptive chunks (`chunk` ADAPTIVE_CHUNK) changes its plan as it runs: this
        gives only its dispatch order (task `i` at position `i`, frames `(i,)`); its tasks'
        frames come from `current_layout` or `block_layout`."""
        key = (block_id, preview_every)
        layout = self._layouts.get(key)
        if layout is None:
            layout = TaskLayout(
                FrameSet.parse(frames),
                max(chunk, 1),
                priority_frames=FrameSet.parse(priority) if priority else None,
                preview_every=preview_every,
            )
            if len(self._layouts) > 10_000:
                self._layouts.clear()
            self._layouts[key] = layout
        return layout

    def current_layout(
        self,
        block_id: int,
        frames: str,
        chunk: int,
        priority: str | None,
        preview_every: int | None = None,
    ) -> TaskLayout:
        """The block's layout as it is now: for a block with adaptive chunks, its chunk plan
        read from the database, in the caller's open `transaction()` if any. Read after a
        claim, it holds the claimed tasks as they were claimed: a later plan starts past them.
        Other blocks: `layout`."""
        if chunk != ADAPTIVE_CHUNK:
            return self.layout(block_id, frames, chunk, priority, preview_every)
        with self.connect() as conn:
            stored = conn.scalar(sa.select(blocks.c.chunking).where(blocks.c.id == block_id))
        if stored is None:
            raise NotFound(f"block {block_id} does not exist", field="block")
        return self._planned_layout(block_id, stored)

    def block_layout(self, row: Any) -> TaskLayout:
        """The layout of a block row just read (with its chunk plan, if it has one)."""
        if row.chunk == ADAPTIVE_CHUNK and row.chunking is not None:
            return self._planned_layout(row.id, row.chunking)
        return self.layout(row.id, row.frames, row.chunk, row.priority_frames)

    def _planned_layout(self, block_id: int, stored: Any) -> PlannedLayout:
        # Plans only ever gain entries (or change their last, before any of its tasks went
        # out), so the entries identify one; what was measured does not change the layout.
        key = (len(stored["plans"]), tuple(stored["plans"][-1]))
        cached = self._planned.get(block_id)
        if cached is not None and cached[0] == key:
            return cached[1]
        layout = PlannedLayout.of(ChunkPlan.from_json(stored))
        if len(self._planned) > 10_000:
            self._planned.clear()
        self._planned[block_id] = (key, layout)
        return layout

    def block_row(self, conn: sa.Connection, job_id: int, block_index: int) -> Any:
        row = conn.execute(
            sa.select(blocks).where(blocks.c.job_id == job_id, blocks.c.idx == block_index)
        ).first()
        if row is None:
            raise NotFound(f"job {job_id} has no block {block_index}", field="block")
        return row

    def block_records(self, conn: sa.Connection, job_ids: Sequence[int]) -> dict[int, list[Any]]:
        rows = conn.execute(
            sa.select(blocks).where(blocks.c.job_id.in_(job_ids)).order_by(blocks.c.idx)
        ).all()
        by_job: dict[int, list[Any]] = {}
        for row in rows:
            by_job.setdefault(row.job_id, []).append(row)
        return by_job

    def insert_task(
        self, conn: sa.Connection, block: Any, index: int, status: TaskStatus, now: float
    ) -> int:
        if status is not TaskStatus.WAITING:  # a row for a task that stays waiting is no move
            check_move(TaskStatus.WAITING, status)
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

    def move_task(
        self,
        conn: sa.Connection,
        task_id: int,
        block_id: int,
        old: TaskStatus,
        new: TaskStatus,
        now: float,
        **extra: Any,
    ) -> None:
        """Change one task's status and the block counters with it, in the caller's transaction.
        Every task status write goes through here, `insert_task`, or the bulk moves of
        `store/tasks.py` (never-run marks), each checking the transition table
        (`core.states.TASK_TRANSITIONS`)."""
        check_move(old, new)
        values = {"status": new.value, "updated_at": now, **extra}
        conn.execute(
            _task_update(frozenset(values)),
            {"task_id": task_id, **{f"v_{k}": v for k, v in values.items()}},
        )
        counters = _counter_update(old, new)
        if counters is not None:
            conn.execute(counters, {"block_id": block_id})


class Repository:
    """One concept's reads and writes (jobs, tasks, workers...), over the shared database."""

    def __init__(self, db: Database) -> None:
        self.db = db
