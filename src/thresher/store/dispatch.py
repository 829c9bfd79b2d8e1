"""The atomic claim: a requeued task first, else the next one under the block cursor."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import sqlalchemy as sa

from thresher.core.model import (
    Assignment,
)
from thresher.core.states import AttemptStatus, TaskStatus
from thresher.store.jobs import JobsStore
from thresher.store.records import (
    ClaimCandidate,
)
from thresher.store.tables import attempts, blocks, jobs, tasks


class DispatchStore(JobsStore):
    def claim_candidates(self) -> list[ClaimCandidate]:
        """Blocks with work left, of jobs neither paused nor canceled; best job first."""
        query = (
            sa.select(
                blocks.c.id,
                blocks.c.job_id,
                blocks.c.idx,
                blocks.c.frames,
                blocks.c.chunk,
                blocks.c.priority_frames,
                blocks.c.cursor,
                blocks.c.task_count,
                blocks.c.n_queued,
                blocks.c.runtime_sum,
                blocks.c.runtime_n,
                jobs.c.priority,
                jobs.c.created_at,
                jobs.c.after,
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
        return [
            ClaimCandidate(
                block_id=r.id,
                job_id=r.job_id,
                block_index=r.idx,
                priority=r.priority,
                created_at=r.created_at,
                after=tuple(r.after),
                frames=r.frames,
                chunk=r.chunk,
                priority_frames=r.priority_frames,
                cursor=r.cursor,
                task_count=r.task_count,
                n_queued=r.n_queued,
                mean_runtime_s=r.runtime_sum / r.runtime_n if r.runtime_n else None,
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
    ) -> Assignment | None:
        """Atomically take one task of the block for the worker: a requeued task first, else the
        next one under the cursor. None when another claimer got there first or none is left."""
        with self.engine.begin() as conn:
            task_id, index = self._take_requeued(conn, cand, worker_id, avoid_failed_since, now)
            if task_id is None:
                task_id, index = self._take_next(conn, cand, worker_id, now)
            if task_id is None or index is None:
                return None
            token = secrets.token_hex(16)
            attempt_id = conn.execute(
                attempts.insert().values(
                    task_id=task_id,
                    job_id=cand.job_id,
                    worker_id=worker_id,
                    token=token,
                    status=AttemptStatus.RUNNING.value,
                    created_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            job = conn.execute(
                sa.select(jobs.c.kind, jobs.c.payload, jobs.c.env, jobs.c.cwd).where(
                    jobs.c.id == cand.job_id
                )
            ).one()
            max_runtime = conn.scalar(
                sa.select(blocks.c.max_runtime_s).where(blocks.c.id == cand.block_id)
            )
        layout = self.layout(cand.block_id, cand.frames, cand.chunk, cand.priority_frames)
        return Assignment(
            attempt_id=int(attempt_id),
            token=token,
            job_id=cand.job_id,
            block_index=cand.block_index,
            task_index=index,
            frames=tuple(layout.task_frames(index)),
            kind=job.kind,
            payload=job.payload,
            env=job.env,
            cwd=job.cwd,
            max_runtime_s=max_runtime,
        )

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

    def _take_next(
        self, conn: sa.Connection, cand: ClaimCandidate, worker_id: int, now: float
    ) -> tuple[int | None, int | None]:
        layout = self.layout(cand.block_id, cand.frames, cand.chunk, cand.priority_frames)
        while True:
            cursor = conn.scalar(sa.select(blocks.c.cursor).where(blocks.c.id == cand.block_id))
            if cursor is None or cursor >= layout.task_count:
                return None, None
            moved = conn.execute(
                blocks.update()
                .where(blocks.c.id == cand.block_id, blocks.c.cursor == cursor)
                .values(cursor=cursor + 1)
            ).rowcount
            if moved != 1:
                continue  # another controller advanced the cursor; read it again
            index = layout.task_at(cursor)
            existing = conn.execute(
                sa.select(tasks.c.id, tasks.c.status).where(
                    tasks.c.block_id == cand.block_id, tasks.c.idx == index
                )
            ).first()
            if existing is not None:
                # Touched before dispatch (skipped, or queued by a retry): not the cursor's to run.
                continue
            task_id = conn.execute(
                tasks.insert().values(
                    block_id=cand.block_id,
                    job_id=cand.job_id,
                    idx=index,
                    status=TaskStatus.RUNNING.value,
                    failures=0,
                    attempts=1,
                    last_worker_id=worker_id,
                    updated_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                blocks.update()
                .where(blocks.c.id == cand.block_id)
                .values(n_running=blocks.c.n_running + 1)
            )
            return int(task_id), index
