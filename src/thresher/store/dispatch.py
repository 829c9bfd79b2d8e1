"""The atomic claim: one task of a block for one worker's lane, in one short transaction.

What the claim re-checks, whatever the caller's snapshot said (the snapshot only decides what to
try): the caps of the job and of its owner (their rows locked first), the limits its tasks hold
(see `store.limits`), and that the task is still there to take. Then it takes a requeued task
first, else the next task under the block cursor (`UPDATE … SET cursor = cursor + 1 … RETURNING`:
the row lock hands every claimer a different position). A block with frame-by-frame
dependencies looks a little further than the cursor for a task whose upstream frames are done.

Rows are locked in one order everywhere (user, job, limits by name, block, task), so two claims
never deadlock on PostgreSQL; on SQLite the first UPDATE takes the database's write lock.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from thresher.core.deps import task_ready
from thresher.core.frames import TaskLayout
from thresher.core.model import Assignment
from thresher.core.ordering import caps_allow
from thresher.core.states import AttemptStatus, TaskStatus
from thresher.store.engines import stamp_engine
from thresher.store.limits import lock_and_check, take_holds
from thresher.store.records import ClaimCandidate
from thresher.store.scheduling import SchedulingStore
from thresher.store.tables import attempts, blocks, jobs, tasks, user_settings, workers

#: How far past the cursor a frame-by-frame block looks for a task whose upstream is done.
READY_WINDOW = 64
_DONE = (TaskStatus.SUCCEEDED.value, TaskStatus.SKIPPED.value)

# The claim's statements, built once: building a statement costs several times more than
# running it (SQLAlchemy memoises its cache key on the object).
_BLOCK = blocks.c.id == sa.bindparam("block_id")
_MOVE_CURSOR = (
    blocks.update()
    .where(_BLOCK, blocks.c.cursor + sa.bindparam("k") <= blocks.c.task_count)
    .values(
        cursor=blocks.c.cursor + sa.bindparam("k"),
        n_running=blocks.c.n_running + sa.bindparam("k"),
    )
    .returning(blocks.c.cursor)
)
_UNCOUNT_RUNNING = (
    blocks.update().where(_BLOCK).values(n_running=blocks.c.n_running - sa.bindparam("k"))
)
_INSERT_ATTEMPTS = attempts.insert().returning(attempts.c.id, sort_by_parameter_order=True)


def _insert_tasks(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id, idx: rows already there are left alone."""
    insert = postgresql.insert(tasks) if dialect == "postgresql" else sqlite.insert(tasks)
    return insert.on_conflict_do_nothing(index_elements=["block_id", "idx"]).returning(
        tasks.c.id, tasks.c.idx
    )


_INSERT_TASKS = {name: _insert_tasks(name) for name in ("postgresql", "sqlite")}


class Refused(StrEnum):
    NO_TASK = "no_task"  # nothing left to take (or, frame by frame, nothing ready yet)
    CAP = "cap"  # a maximum of running tasks is reached
    LIMIT = "limit"  # a limit has no unit free for this host


@dataclass(frozen=True)
class ClaimOutcome:
    assignment: Assignment | None
    refused: Refused | None = None
    detail: str | None = None
    more: tuple[Assignment, ...] = ()  # taken in the same transaction (`count` > 1)

    @property
    def assignments(self) -> list[Assignment]:
        return [] if self.assignment is None else [self.assignment, *self.more]


def _capped(cand: ClaimCandidate) -> bool:
    return (cand.max_running, cand.max_running_per_host, cand.user_max_running) != (
        None,
        None,
        None,
    )


@dataclass(frozen=True)
class _JobStatic:
    """What an assignment repeats from its job and block; never changes after submission."""

    kind: str
    payload: Any
    env: Any
    cwd: str | None
    max_runtime_s: float | None
    engine: str | None


class DispatchStore(SchedulingStore):
    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        self._statics: dict[tuple[int, int, float], _JobStatic] = {}

    def claim_candidates(self) -> list[ClaimCandidate]:
        """Blocks with work left, of jobs neither paused nor canceled; best job first."""
        query = (
            sa.select(
                blocks,
                jobs.c.priority,
                jobs.c.created_at,
                jobs.c.after.label("job_after"),
                jobs.c.owner,
                jobs.c.max_running.label("job_max_running"),
                jobs.c.max_running_per_host,
            )
            .select_from(blocks.join(jobs, jobs.c.id == blocks.c.job_id))
            .where(
                jobs.c.paused.is_(False),
                jobs.c.canceled.is_(False),
                sa.or_(blocks.c.n_queued > 0, blocks.c.cursor < blocks.c.task_count),
            )
            .order_by(jobs.c.priority.desc(), jobs.c.created_at, jobs.c.id, blocks.c.idx)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            users = {r.name: r.max_running for r in conn.execute(sa.select(user_settings))}
        return [
            ClaimCandidate(
                block_id=r.id,
                job_id=r.job_id,
                block_index=r.idx,
                priority=r.priority,
                created_at=r.created_at,
                after=tuple(r.job_after),
                frames=r.frames,
                chunk=r.chunk,
                priority_frames=r.priority_frames,
                cursor=r.cursor,
                task_count=r.task_count,
                n_queued=r.n_queued,
                mean_runtime_s=r.runtime_sum / r.runtime_n if r.runtime_n else None,
                owner=r.owner,
                capacity=r.capacity,
                limits=tuple(r.limits or ()),
                max_running=r.job_max_running,
                max_running_per_host=r.max_running_per_host,
                user_max_running=users.get(r.owner),
                preview_every=r.preview_every,
                after_frames=tuple(r.after_frames or ()),
            )
            for r in rows
        ]

    def deps_pending(self, after: Sequence[int]) -> bool:
        with self.engine.connect() as conn:
            return self._deps_state(conn, after)[0]

    def claim_task(
        self,
        cand: ClaimCandidate,
        *,
        worker_id: int,
        now: float,
        avoid_failed_since: float | None,
        lane: int | None = None,
        hostname: str | None = None,
    ) -> Assignment | None:
        """Atomically take one task of the block for the worker (see `claim`); None when none
        may be taken."""
        return self.claim(
            cand,
            worker_id=worker_id,
            now=now,
            avoid_failed_since=avoid_failed_since,
            lane=lane,
            hostname=hostname,
        ).assignment

    def claim(
        self,
        cand: ClaimCandidate,
        *,
        worker_id: int,
        now: float,
        avoid_failed_since: float | None = None,
        lane: int | None = None,
        hostname: str | None = None,
        count: int = 1,
    ) -> ClaimOutcome:
        """Atomically take a task of the block for the worker's `lane`: caps and limits are
        checked under their row locks, a requeued task goes first, else the next under the
        cursor. The outcome says why nothing was taken.

        With `count` > 1 (short tasks held ahead on the lane), up to that many are taken in the
        same transaction, for a block without limits, caps or frame-by-frame dependencies."""
        if cand.limits or cand.after_frames or _capped(cand):
            count = 1
        with self._begin() as conn:
            refused = self._check_caps(conn, cand, worker_id)
            if refused is not None:
                return ClaimOutcome(None, Refused.CAP, refused)
            if cand.limits:
                if hostname is None:
                    hostname = conn.scalar(
                        sa.select(workers.c.hostname).where(workers.c.id == worker_id)
                    )
                full = lock_and_check(conn, cand.limits, str(hostname))
                if full is not None:
                    return ClaimOutcome(None, Refused.LIMIT, full)
            taken = self._take_requeued(conn, cand, worker_id, avoid_failed_since, now)
            if taken[0] is None:
                take = self._take_ready if cand.after_frames else self._take_next
                taken = take(conn, cand, worker_id, now)
            task_id, index = taken
            if task_id is None or index is None:
                return ClaimOutcome(None, Refused.NO_TASK)
            tasks_taken = [(task_id, index)]
            if count > 1:
                tasks_taken += self._take_next_many(conn, cand, worker_id, now, count - 1)
            tokens = [secrets.token_hex(16) for _ in tasks_taken]
            rows = conn.execute(
                _INSERT_ATTEMPTS,
                [
                    {
                        "task_id": t,
                        "job_id": cand.job_id,
                        "worker_id": worker_id,
                        "token": token,
                        "status": AttemptStatus.RUNNING.value,
                        "created_at": now,
                        "lane": lane,
                        "capacity": cand.capacity,
                    }
                    for (t, _), token in zip(tasks_taken, tokens, strict=True)
                ],
            ).all()
            attempt_ids = [int(r.id) for r in rows]
            take_holds(conn, cand.limits, attempt_id=attempt_ids[0], hostname=str(hostname))
            static = self._job_static(conn, cand)
            engines = [  # engine jobs (issue 4)
                stamp_engine(conn, cand.block_id, a) if static.engine else None for a in attempt_ids
            ]
        layout = self.current_layout(  # read after the claim: adaptive chunks (issue 5)
            cand.block_id, cand.frames, cand.chunk, cand.priority_frames, cand.preview_every
        )
        made = [
            Assignment(
                attempt_id=attempt_id,
                token=token,
                job_id=cand.job_id,
                block_index=cand.block_index,
                task_index=index,
                frames=tuple(layout.task_frames(index)),
                kind=static.kind,
                payload=static.payload,
                env=static.env,
                cwd=static.cwd,
                max_runtime_s=static.max_runtime_s,
                lane=lane,
                engine=engine.name if engine else None,
                engine_revision=engine.revision if engine else None,
                engine_hash=engine.source_hash if engine else None,
            )
            for attempt_id, token, (_, index), engine in zip(
                attempt_ids, tokens, tasks_taken, engines, strict=True
            )
        ]
        return ClaimOutcome(made[0], more=tuple(made[1:]))

    def _layout_of(self, cand: ClaimCandidate) -> TaskLayout:
        return self.layout(
            cand.block_id, cand.frames, cand.chunk, cand.priority_frames, cand.preview_every
        )

    def _job_static(self, conn: sa.Connection, cand: ClaimCandidate) -> _JobStatic:
        # Keyed with the job's submit time too: SQLite may reuse the id of a deleted row.
        key = (cand.block_id, cand.job_id, cand.created_at)
        cache = self._statics
        found = cache.get(key)
        if found is None:
            row = conn.execute(
                sa.select(
                    jobs.c.kind,
                    jobs.c.payload,
                    jobs.c.env,
                    jobs.c.cwd,
                    blocks.c.max_runtime_s,
                    blocks.c.engine,
                )
                .select_from(blocks.join(jobs, jobs.c.id == blocks.c.job_id))
                .where(blocks.c.id == cand.block_id)
            ).one()
            found = _JobStatic(
                row.kind, row.payload, row.env, row.cwd, row.max_runtime_s, row.engine
            )
            if len(cache) > 10_000:
                cache.clear()
            cache[key] = found
        return found

    def _check_caps(self, conn: sa.Connection, cand: ClaimCandidate, worker_id: int) -> str | None:
        """Lock the owner's and the job's rows (in that order) and count their running tasks."""
        if not _capped(cand):
            return None
        user_running = job_running = on_host = 0
        running = attempts.c.status == AttemptStatus.RUNNING.value
        if cand.user_max_running is not None:
            conn.execute(
                user_settings.update()
                .where(user_settings.c.name == cand.owner)
                .values(priority=user_settings.c.priority)
            )
            user_running = int(
                conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
                    .where(running, jobs.c.owner == cand.owner)
                )
                or 0
            )
        if cand.max_running is not None or cand.max_running_per_host is not None:
            conn.execute(
                jobs.update().where(jobs.c.id == cand.job_id).values(preempt=jobs.c.preempt)
            )
            of_job = sa.select(sa.func.count()).where(running, attempts.c.job_id == cand.job_id)
            job_running = int(conn.scalar(of_job) or 0)
            on_host = int(conn.scalar(of_job.where(attempts.c.worker_id == worker_id)) or 0)
        if caps_allow(
            job_running=job_running,
            job_max=cand.max_running,
            user_running=user_running,
            user_max=cand.user_max_running,
            job_running_on_host=on_host,
            job_max_per_host=cand.max_running_per_host,
        ):
            return None
        return f"job {cand.job_id} or its owner {cand.owner} runs its maximum of tasks"

    def _take_requeued(
        self,
        conn: sa.Connection,
        cand: ClaimCandidate,
        worker_id: int,
        avoid_failed_since: float | None,
        now: float,
    ) -> tuple[int | None, int | None]:
        if cand.n_queued <= 0:
            return None, None
        query = (
            sa.select(tasks.c.id, tasks.c.idx)
            .where(tasks.c.block_id == cand.block_id, tasks.c.status == TaskStatus.QUEUED.value)
            .order_by(tasks.c.idx)
            .limit(8)
        )
        if avoid_failed_since is not None:
            # A task that just failed here waits a while for another host before coming back.
            query = query.where(
                sa.or_(
                    tasks.c.failed_worker_id.is_(None),
                    tasks.c.failed_worker_id != worker_id,
                    tasks.c.updated_at < avoid_failed_since,
                )
            )
        for row in conn.execute(query).all():
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
            if taken == 1:
                conn.execute(
                    blocks.update()
                    .where(blocks.c.id == cand.block_id)
                    .values(n_queued=blocks.c.n_queued - 1, n_running=blocks.c.n_running + 1)
                )
                return int(row.id), int(row.idx)
        return None, None

    def _insert_running(
        self, conn: sa.Connection, cand: ClaimCandidate, index: int, worker_id: int, now: float
    ) -> int | None:
        """Insert the task's row as running; None if it already has one (skipped or retried
        before dispatch, or taken out of order)."""
        inserted = self._insert_running_many(conn, cand, [index], worker_id, now)
        return inserted.get(index)

    def _insert_running_many(
        self,
        conn: sa.Connection,
        cand: ClaimCandidate,
        indices: Sequence[int],
        worker_id: int,
        now: float,
    ) -> dict[int, int]:
        """Insert the tasks' rows as running: task index -> row id of those inserted."""
        rows = conn.execute(
            _INSERT_TASKS["postgresql" if self.dialect == "postgresql" else "sqlite"],
            [
                {
                    "block_id": cand.block_id,
                    "job_id": cand.job_id,
                    "idx": index,
                    "status": TaskStatus.RUNNING.value,
                    "failures": 0,
                    "attempts": 1,
                    "last_worker_id": worker_id,
                    "updated_at": now,
                }
                for index in indices
            ],
        ).all()
        return {int(r.idx): int(r.id) for r in rows}

    def _take_next(
        self, conn: sa.Connection, cand: ClaimCandidate, worker_id: int, now: float
    ) -> tuple[int | None, int | None]:
        layout = self._layout_of(cand)
        while True:
            # Moving the cursor and counting the task as running in one UPDATE: the row lock
            # serialises claimers of the block, and each sees the position it moved past.
            moved = conn.execute(_MOVE_CURSOR, {"block_id": cand.block_id, "k": 1}).first()
            if moved is None:
                return None, None
            index = layout.task_at(moved.cursor - 1)
            task_id = self._insert_running(conn, cand, index, worker_id, now)
            if task_id is not None:
                return task_id, index
            # Touched before dispatch (skipped, queued by a retry, or taken out of order by a
            # frame-by-frame claim): not the cursor's to run.
            conn.execute(_UNCOUNT_RUNNING, {"block_id": cand.block_id, "k": 1})

    def _take_next_many(
        self, conn: sa.Connection, cand: ClaimCandidate, worker_id: int, now: float, k: int
    ) -> list[tuple[int, int]]:
        """Up to `k` more tasks under the cursor with one cursor move and one insert."""
        moved = conn.execute(_MOVE_CURSOR, {"block_id": cand.block_id, "k": k}).first()
        if moved is None:  # fewer than k left: one at a time
            out = []
            for _ in range(k):
                task_id, index = self._take_next(conn, cand, worker_id, now)
                if task_id is None or index is None:
                    break
                out.append((task_id, index))
            return out
        layout = self._layout_of(cand)
        indices = [layout.task_at(p) for p in range(moved.cursor - k, moved.cursor)]
        by_index = self._insert_running_many(conn, cand, indices, worker_id, now)
        if len(by_index) < k:  # some were touched before dispatch: not the cursor's to run
            conn.execute(_UNCOUNT_RUNNING, {"block_id": cand.block_id, "k": k - len(by_index)})
        return [(by_index[i], i) for i in indices if i in by_index]

    def _take_ready(
        self, conn: sa.Connection, cand: ClaimCandidate, worker_id: int, now: float
    ) -> tuple[int | None, int | None]:
        """Frame by frame: the first task, within READY_WINDOW positions of the cursor, whose
        upstream tasks covering the same frames are all done."""
        layout = self._layout_of(cand)
        upstream = conn.execute(
            sa.select(blocks).where(
                blocks.c.job_id == cand.job_id, blocks.c.idx.in_(list(cand.after_frames))
            )
        ).all()
        pending = [u for u in upstream if u.n_succeeded + u.n_skipped < u.task_count]
        if not pending:
            return self._take_next(conn, cand, worker_id, now)
        cursor = self._cursor_past_taken(conn, cand, layout)
        if cursor is None:
            return None, None
        window = [
            layout.task_at(p) for p in range(cursor, min(cursor + READY_WINDOW, layout.task_count))
        ]
        taken = set(
            conn.scalars(
                sa.select(tasks.c.idx).where(
                    tasks.c.block_id == cand.block_id, tasks.c.idx.in_(window)
                )
            )
        )
        checks = [self._upstream_done(conn, layout, window, u) for u in pending]
        for position, index in enumerate(window, start=cursor):
            if index in taken or not task_ready(layout, index, checks):
                continue
            values: dict[str, Any] = {"n_running": blocks.c.n_running + 1}
            query = blocks.update().where(blocks.c.id == cand.block_id)
            if position == cursor:
                values["cursor"] = cursor + 1
                query = query.where(blocks.c.cursor == cursor)
            if not conn.execute(query.values(**values)).rowcount:
                return None, None  # another claim moved the cursor; the next poll looks again
            task_id = self._insert_running(conn, cand, index, worker_id, now)
            if task_id is None:
                conn.execute(
                    blocks.update()
                    .where(blocks.c.id == cand.block_id)
                    .values(n_running=blocks.c.n_running - 1)
                )
                return None, None
            return task_id, index
        return None, None

    def _cursor_past_taken(
        self, conn: sa.Connection, cand: ClaimCandidate, layout: TaskLayout
    ) -> int | None:
        """Move the cursor past tasks that already have rows (taken out of order); returns it,
        or None at the end of the block."""
        while True:
            cursor = conn.scalar(sa.select(blocks.c.cursor).where(blocks.c.id == cand.block_id))
            if cursor is None or cursor >= layout.task_count:
                return None
            has_row = conn.scalar(
                sa.select(tasks.c.id).where(
                    tasks.c.block_id == cand.block_id, tasks.c.idx == layout.task_at(cursor)
                )
            )
            if has_row is None:
                return int(cursor)
            conn.execute(
                blocks.update()
                .where(blocks.c.id == cand.block_id, blocks.c.cursor == cursor)
                .values(cursor=cursor + 1)
            )

    def _upstream_done(
        self, conn: sa.Connection, layout: TaskLayout, window: list[int], up: Any
    ) -> tuple[TaskLayout, Any]:
        """An upstream block's layout and a "task is done" test over the tasks the window's
        frames need (one query for the whole window)."""
        up_layout = self.layout(up.id, up.frames, up.chunk, up.priority_frames)
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
