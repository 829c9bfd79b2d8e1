"""The atomic claim: one task of a block for one worker's lane, in one short transaction.

What the claim re-checks, whatever the caller's snapshot said (the snapshot only decides what to
try): the caps of the job and of its owner (their rows locked first), the limits its tasks hold
(see `store.limits`), and that the task is still there to take. Then it takes a requeued task
first, else the next task under the block cursor (see `store.cursor`), and starts an attempt
of each task taken.

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

from thresher.core.model import Assignment, JobRecord
from thresher.core.ordering import caps_allow
from thresher.core.states import AttemptStatus
from thresher.core.task_files import task_payload
from thresher.store import claims_later, pg_claim, tally
from thresher.store.base import Database, Repository
from thresher.store.cursor import (
    Taken,
    frames_ready,
    take_next,
    take_next_many,
    take_ready,
    take_requeued,
)
from thresher.store.engines import EngineStamp, stamp_engine
from thresher.store.limits import lock_and_check, take_holds
from thresher.store.prepared import Prepared
from thresher.store.snapshot import SnapBlock, forget_held
from thresher.store.tables import attempts, blocks, jobs, user_settings, workers

_RUNNING = AttemptStatus.RUNNING.value
# Built once: building a statement costs several times more than running it.
_INSERT_ATTEMPTS = attempts.insert().returning(attempts.c.id, sort_by_parameter_order=True)
# One attempt (a claim without tasks held ahead), on the cursor.
_INSERT_ATTEMPT = Prepared(
    attempts.insert()
    .values(
        {
            c: sa.bindparam(c)
            for c in (
                "task_id",
                "job_id",
                "worker_id",
                "token",
                "status",
                "created_at",
                "lane",
                "capacity",
            )
        }
    )
    .returning(attempts.c.id)
)


class Refused(StrEnum):
    """Why a claim took nothing."""

    NO_TASK = "no_task"  # nothing left to take (or, frame by frame, nothing ready yet)
    CAP = "cap"  # a maximum of running tasks is reached
    LIMIT = "limit"  # a limit has no unit free for this host


@dataclass(frozen=True)
class ClaimCandidate:
    """A block to take tasks of: its record in the dispatch snapshot, and what the claim adds,
    the cap of its owner (from the user settings), re-checked under lock with the job's caps.

    Only the block's identity, layout, caps and limits are read from `block`; its counters are
    the claimer's belief (`n_queued` > 0: look for a requeued task first)."""

    block: SnapBlock
    user_max_running: int | None = None

    @property
    def capped(self) -> bool:
        """Whether a maximum of running tasks (of the job, per host, or of the owner) is set."""
        b = self.block
        return (b.max_running, b.max_running_per_host, self.user_max_running) != (None,) * 3


@dataclass(frozen=True)
class ClaimOutcome:
    """What a claim took, or why it took nothing (`refused`, with a `detail` for people)."""

    assignment: Assignment | None
    refused: Refused | None = None
    detail: str | None = None
    more: tuple[Assignment, ...] = ()  # taken in the same transaction (`count` > 1)

    @property
    def assignments(self) -> list[Assignment]:
        return [] if self.assignment is None else [self.assignment, *self.more]


@dataclass(frozen=True)
class _JobStatic:
    """What an assignment repeats from its job and block; never changes after submission."""

    kind: str
    payload: Any
    env: Any
    cwd: str | None
    max_runtime_s: float | None
    engine: str | None


class DispatchClaims(Repository):
    """The atomic claim, and the stop requests of preemption."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._statics: dict[tuple[int, int, float], _JobStatic] = {}
        tally.install(db.engine)
        claims_later.install(db.engine)

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
        b = cand.block
        checked = bool(b.limits) or cand.capped  # caps or limits to check under their locks
        if checked or b.after_frames:
            count = 1
        with self.db.begin() as conn:
            if b.limits and hostname is None:
                hostname = conn.scalar(
                    sa.select(workers.c.hostname).where(workers.c.id == worker_id)
                )
            if checked:
                refused = self._refusal(conn, cand, worker_id, str(hostname))
                if refused is not None:
                    return refused
            # PostgreSQL: the task rows and their attempts in one round trip (`store.pg_claim`).
            fused = self._fused(conn, b, worker_id, now, lane, count)
            if fused is not None:
                indices, tokens, attempt_ids = fused.indices, fused.tokens, fused.attempt_ids
            else:
                taken = self._take(conn, b, worker_id, now, avoid_failed_since, count)
                tokens = [secrets.token_hex(16) for _ in taken]
                indices = [index for _, index in taken]
                if taken:
                    attempt_ids = self._start(conn, b, taken, tokens, worker_id, now, lane)
            if not indices:
                return ClaimOutcome(None, Refused.NO_TASK)
            if b.limits:
                take_holds(conn, b.limits, attempt_id=attempt_ids[0], hostname=str(hostname))
            static = self._job_static(conn, b)
            engines: list[EngineStamp | None] = (  # the revision each attempt runs (engine jobs)
                [stamp_engine(conn, b.block_id, a) for a in attempt_ids]
                if static.engine
                else [None] * len(attempt_ids)
            )
        started = list(zip(attempt_ids, tokens, indices, engines, strict=True))
        made = self._assignments(b, static, lane, started)
        return ClaimOutcome(made[0], more=tuple(made[1:]))

    def _assignments(
        self,
        b: SnapBlock,
        static: _JobStatic,
        lane: int | None,
        started: list[tuple[int, str, int, EngineStamp | None]],
    ) -> list[Assignment]:
        """What the worker is handed for each attempt started: (attempt id, token, task index,
        engine revision)."""
        # Read after the claim: a block with adaptive chunks may have re-planned since the
        # snapshot, and the tasks taken are those of the plan as it is now.
        layout = self.db.current_layout(
            b.block_id, b.frames, b.chunk, b.priority_frames, b.preview_every
        )
        return [
            Assignment(
                attempt_id=attempt_id,
                token=token,
                job_id=b.job_id,
                block_index=b.index,
                task_index=index,
                frames=tuple(layout.task_frames(index)),
                kind=static.kind,
                payload=task_payload(static.payload, b.index, index),  # task-file jobs
                env=static.env,
                cwd=static.cwd,
                max_runtime_s=static.max_runtime_s,
                lane=lane,
                engine=engine.name if engine else None,
                engine_revision=engine.revision if engine else None,
                engine_hash=engine.source_hash if engine else None,
            )
            for attempt_id, token, index, engine in started
        ]

    def _refusal(
        self, conn: sa.Connection, cand: ClaimCandidate, worker_id: int, hostname: str
    ) -> ClaimOutcome | None:
        """Why nothing may be taken (a cap or a limit is full, checked under their locks)."""
        full = self._check_caps(conn, cand, worker_id)
        if full is not None:
            return ClaimOutcome(None, Refused.CAP, full)
        full = lock_and_check(conn, cand.block.limits, hostname) if cand.block.limits else None
        if full is not None:
            return ClaimOutcome(None, Refused.LIMIT, full)
        return None

    def _start(
        self,
        conn: sa.Connection,
        b: SnapBlock,
        taken: list[Taken],
        tokens: list[str],
        worker_id: int,
        now: float,
        lane: int | None,
    ) -> list[int]:
        """Insert an attempt of each task taken; their ids."""
        values = [
            {
                "task_id": task_id,
                "job_id": b.job_id,
                "worker_id": worker_id,
                "token": token,
                "status": _RUNNING,
                "created_at": now,
                "lane": lane,
                "capacity": b.capacity,
            }
            for (task_id, _), token in zip(taken, tokens, strict=True)
        ]
        if len(values) == 1:  # the common claim: one statement, compiled once
            return [int(_INSERT_ATTEMPT.first(conn, values[0]).id)]
        return [int(r.id) for r in conn.execute(_INSERT_ATTEMPTS, values).all()]

    def _fused(
        self,
        conn: sa.Connection,
        b: SnapBlock,
        worker_id: int,
        now: float,
        lane: int | None,
        count: int,
    ) -> pg_claim.Started | None:
        """The claim's tasks and attempts in one statement, where it applies (`store.pg_claim`)."""
        if not pg_claim.applies(conn, b):
            return None
        layout = self.db.layout(b.block_id, b.frames, b.chunk, b.priority_frames, b.preview_every)
        return pg_claim.claim(conn, b, layout, worker_id=worker_id, now=now, lane=lane, count=count)

    def _take(
        self,
        conn: sa.Connection,
        b: SnapBlock,
        worker_id: int,
        now: float,
        avoid_failed_since: float | None,
        count: int,
    ) -> list[Taken]:
        """The tasks taken (`store.cursor`): a requeued task first, else the next under the
        cursor (frame by frame: the next ready); then up to `count` - 1 more."""
        layout = self.db.layout(b.block_id, b.frames, b.chunk, b.priority_frames, b.preview_every)
        ready = None
        if b.after_frames:

            def ready(indexes: list[int]) -> set[int]:
                return frames_ready(conn, b, layout, indexes, upstream_layout=self.db.layout)

        first = take_requeued(
            conn,
            b,
            worker_id=worker_id,
            now=now,
            avoid_failed_since=avoid_failed_since,
            ready=ready,
        )
        if first is None and b.after_frames:
            first = take_ready(
                conn, b, layout, worker_id=worker_id, now=now, upstream_layout=self.db.layout
            )
        elif first is None:
            first = take_next(conn, b, layout, worker_id=worker_id, now=now)
        if first is None:
            return []
        if count <= 1:
            return [first]
        return [first, *take_next_many(conn, b, layout, worker_id=worker_id, now=now, k=count - 1)]

    def request_stop(self, attempt_ids: Sequence[int], reason: str) -> list[int]:
        """Ask for running attempts to be stopped at their worker's next poll (the attempts not
        already being stopped). Returns those marked now."""
        marked: list[int] = []
        with self.db.begin() as conn:
            forget_held(conn)
            for attempt_id in attempt_ids:
                done = conn.execute(
                    attempts.update()
                    .where(
                        attempts.c.id == attempt_id,
                        attempts.c.status == AttemptStatus.RUNNING.value,
                        attempts.c.cancel_reason.is_(None),
                    )
                    .values(cancel_reason=reason)
                ).rowcount
                if done:
                    marked.append(attempt_id)
        return marked

    def know_job(self, job: JobRecord) -> None:
        """A job just written (`Jobs.add`, values as they read back): what its assignments
        repeat is kept as its first claim would read it, so that claim (often a held poll's, in
        the submission's own transaction: `controller.hand_out`) does not read it again."""
        s = job.spec
        if len(self._statics) > 10_000:
            self._statics.clear()
        for b in job.blocks:
            static = _JobStatic(
                s.kind, s.payload, s.env, s.cwd, b.spec.max_runtime_s, b.spec.engine
            )
            self._statics[(b.id, job.id, job.created_at)] = static

    def _job_static(self, conn: sa.Connection, b: SnapBlock) -> _JobStatic:
        # Keyed with the job's submit time too: SQLite may reuse the id of a deleted row.
        key = (b.block_id, b.job_id, b.created_at)
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
                .where(blocks.c.id == b.block_id)
                .execution_options(tally_safe=True)  # fixed columns only
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
        if not cand.capped:
            return None
        b = cand.block
        user_running = job_running = on_host = 0
        running = attempts.c.status == AttemptStatus.RUNNING.value
        if cand.user_max_running is not None:
            conn.execute(
                user_settings.update()
                .where(user_settings.c.name == b.owner)
                .values(priority=user_settings.c.priority)
            )
            user_running = int(
                conn.scalar(
                    sa.select(sa.func.count())
                    .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
                    .where(running, jobs.c.owner == b.owner)
                )
                or 0
            )
        if b.max_running is not None or b.max_running_per_host is not None:
            conn.execute(jobs.update().where(jobs.c.id == b.job_id).values(preempt=jobs.c.preempt))
            of_job = sa.select(sa.func.count()).where(running, attempts.c.job_id == b.job_id)
            job_running = int(conn.scalar(of_job) or 0)
            on_host = int(conn.scalar(of_job.where(attempts.c.worker_id == worker_id)) or 0)
        if caps_allow(
            job_running=job_running,
            job_max=b.max_running,
            user_running=user_running,
            user_max=cand.user_max_running,
            job_running_on_host=on_host,
            job_max_per_host=b.max_running_per_host,
        ):
            return None
        return f"job {b.job_id} or its owner {b.owner} runs its maximum of tasks"
