"""The Store: every read and write of farm state, in short transactions with intent-named methods.

Every state change of a task or attempt is one transaction, committed before the caller answers
anyone. Counters on the block move in the same transaction as the task row they describe, so the
derived job and block statuses can never disagree with the rows.

Errors raised: `thresher.core.errors.NotFound`, `StaleAttempt`, `Conflict`, `InvalidInput`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import Conflict, NotFound, StaleAttempt
from thresher.core.frames import FrameSet, TaskLayout
from thresher.core.model import (
    Assignment,
    AttemptRecord,
    BlockRecord,
    Counts,
    JobRecord,
    TaskRecord,
    WorkerRecord,
    derive_job_status,
)
from thresher.core.states import AttemptStatus, JobStatus, TaskStatus, WorkerStatus
from thresher.store.db import create_engine, migrate
from thresher.store.tables import attempts, blocks, jobs, log_lines, tasks, tokens, workers

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


@dataclass(frozen=True)
class BlockSpec:
    name: str
    frames: str
    chunk: int
    priority_frames: str | None = None
    retries: int = 3
    max_runtime_s: float | None = None


@dataclass(frozen=True)
class JobSpec:
    name: str
    owner: str
    priority: int
    kind: str
    blocks: tuple[BlockSpec, ...]
    after: tuple[int, ...] = ()
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    payload: Mapping[str, Any] | None = None
    paused: bool = False


@dataclass(frozen=True)
class WorkerFacts:
    name: str
    hostname: str
    os: str
    cores: int
    ram_bytes: int
    site: str
    pools: tuple[str, ...]
    attributes: Mapping[str, str]
    lanes: int


@dataclass(frozen=True)
class FinishReport:
    attempt_id: int
    token: str
    status: AttemptStatus
    exit_code: int | None = None
    peak_rss_bytes: int | None = None
    duration_s: float | None = None
    message: str | None = None


@dataclass(frozen=True)
class TokenRecord:
    id: int
    name: str
    role: str


@dataclass(frozen=True)
class ClaimCandidate:
    """A block that has work and whose job may run now (dependencies are checked by the caller)."""

    block_id: int
    job_id: int
    block_index: int
    priority: int
    created_at: float
    after: tuple[int, ...]
    frames: str
    chunk: int
    priority_frames: str | None
    cursor: int
    task_count: int
    n_queued: int
    mean_runtime_s: float | None


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


class Store:
    """All farm state. Methods are short transactions; values returned are frozen records."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._layouts: dict[int, TaskLayout] = {}

    @classmethod
    def open(cls, url: str) -> Store:
        engine = create_engine(url)
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # -- tokens ---------------------------------------------------------------------------------

    def add_token(self, *, name: str, role: str, token_hash: str, now: float) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                tokens.insert().values(
                    name=name, role=role, token_hash=token_hash, created_at=now, revoked=False
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def find_token(self, token_hash: str) -> TokenRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(tokens.c.id, tokens.c.name, tokens.c.role).where(
                    tokens.c.token_hash == token_hash, tokens.c.revoked.is_(False)
                )
            ).first()
        return TokenRecord(row.id, row.name, row.role) if row else None

    def count_tokens(self, role: str) -> int:
        with self.engine.connect() as conn:
            n = conn.scalar(sa.select(sa.func.count()).where(tokens.c.role == role))
        return int(n or 0)

    # -- jobs -----------------------------------------------------------------------------------

    def create_job(self, spec: JobSpec, *, now: float) -> int:
        """Insert a job and its blocks. No task rows: tasks are computed from the blocks."""
        with self.engine.begin() as conn:
            if spec.after:
                found = conn.scalars(sa.select(jobs.c.id).where(jobs.c.id.in_(spec.after))).all()
                missing = sorted(set(spec.after) - set(found))
                if missing:
                    raise NotFound(f"job {missing[0]} does not exist", field="after")
            job_id = conn.execute(
                jobs.insert().values(
                    name=spec.name,
                    owner=spec.owner,
                    priority=spec.priority,
                    kind=spec.kind,
                    paused=spec.paused,
                    canceled=False,
                    after=list(spec.after),
                    env=dict(spec.env or {}),
                    cwd=spec.cwd,
                    payload=dict(spec.payload or {}),
                    created_at=now,
                    finished_at=None,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                blocks.insert(),
                [self._block_values(int(job_id), i, b) for i, b in enumerate(spec.blocks)],
            )
        return int(job_id)

    @staticmethod
    def _block_values(job_id: int, index: int, spec: BlockSpec) -> dict[str, Any]:
        layout = TaskLayout(
            FrameSet.parse(spec.frames),
            spec.chunk,
            priority_frames=FrameSet.parse(spec.priority_frames, field="priority_frames")
            if spec.priority_frames
            else None,
        )
        return {
            "job_id": job_id,
            "idx": index,
            "name": spec.name,
            "frames": spec.frames,
            "chunk": spec.chunk,
            "priority_frames": spec.priority_frames,
            "task_count": layout.task_count,
            "retries": spec.retries,
            "max_runtime_s": spec.max_runtime_s,
            "cursor": 0,
            "n_queued": 0,
            "n_running": 0,
            "n_succeeded": 0,
            "n_failed": 0,
            "n_skipped": 0,
            "n_canceled": 0,
            "runtime_sum": 0.0,
            "runtime_n": 0,
        }

    def layout(self, block_id: int, frames: str, chunk: int, priority: str | None) -> TaskLayout:
        """The block's task layout, parsed once per block and kept (blocks never change it)."""
        layout = self._layouts.get(block_id)
        if layout is None:
            layout = TaskLayout(
                FrameSet.parse(frames),
                chunk,
                priority_frames=FrameSet.parse(priority) if priority else None,
            )
            if len(self._layouts) > 10_000:
                self._layouts.clear()
            self._layouts[block_id] = layout
        return layout

    def _block_records(self, conn: sa.Connection, job_ids: Sequence[int]) -> dict[int, list[Any]]:
        rows = conn.execute(
            sa.select(blocks).where(blocks.c.job_id.in_(job_ids)).order_by(blocks.c.idx)
        ).all()
        by_job: dict[int, list[Any]] = {}
        for row in rows:
            by_job.setdefault(row.job_id, []).append(row)
        return by_job

    def _deps_state(self, conn: sa.Connection, after: Iterable[int]) -> tuple[bool, str | None]:
        """(pending, reason): whether some job in `after` has not succeeded, and why."""
        ids = list(after)
        if not ids:
            return False, None
        dep_jobs = {r.id: r for r in conn.execute(sa.select(jobs).where(jobs.c.id.in_(ids))).all()}
        dep_blocks = self._block_records(conn, ids)
        for dep_id in ids:
            job = dep_jobs.get(dep_id)
            if job is None:
                continue  # a deleted dependency no longer holds anyone back
            counts = sum((_counts(b) for b in dep_blocks.get(dep_id, [])), Counts())
            if counts.total and counts.done == counts.total:
                continue
            status = derive_job_status(
                counts=counts, paused=job.paused, canceled=job.canceled, deps_pending=False
            )
            if status in (JobStatus.FAILED, JobStatus.CANCELED):
                return True, f"waiting on job {dep_id}, which {status.value}"
            return True, f"waiting on job {dep_id}"
        return False, None

    def _job_record(self, conn: sa.Connection, row: Any, block_rows: list[Any]) -> JobRecord:
        block_recs = tuple(
            BlockRecord(
                id=b.id,
                job_id=b.job_id,
                index=b.idx,
                name=b.name,
                frames=b.frames,
                chunk=b.chunk,
                priority_frames=b.priority_frames,
                retries=b.retries,
                max_runtime_s=b.max_runtime_s,
                cursor=b.cursor,
                counts=_counts(b),
                mean_runtime_s=(b.runtime_sum / b.runtime_n) if b.runtime_n else None,
            )
            for b in block_rows
        )
        counts = sum((b.counts for b in block_recs), Counts())
        pending, reason = (False, None)
        if row.after and counts.done != counts.total:
            pending, reason = self._deps_state(conn, row.after)
        status = derive_job_status(
            counts=counts, paused=row.paused, canceled=row.canceled, deps_pending=pending
        )
        return JobRecord(
            id=row.id,
            name=row.name,
            owner=row.owner,
            priority=row.priority,
            kind=row.kind,
            paused=row.paused,
            canceled=row.canceled,
            after=tuple(row.after),
            env=row.env,
            cwd=row.cwd,
            payload=row.payload,
            created_at=row.created_at,
            finished_at=row.finished_at,
            counts=counts,
            status=status,
            status_reason=reason if status is JobStatus.WAITING else None,
            blocks=block_recs,
        )

    def get_job(self, job_id: int) -> JobRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
            if row is None:
                raise NotFound(f"job {job_id} does not exist", field="job_id")
            return self._job_record(conn, row, self._block_records(conn, [job_id]).get(job_id, []))

    def list_jobs(
        self,
        *,
        owner: str | None = None,
        statuses: Iterable[JobStatus] = (),
        limit: int = 100,
        offset: int = 0,
    ) -> list[JobRecord]:
        """Newest first. Status is derived, so a status filter is applied after the counts."""
        wanted = set(statuses)
        query = sa.select(jobs).order_by(jobs.c.id.desc())
        if owner:
            query = query.where(jobs.c.owner == owner)
        out: list[JobRecord] = []
        skipped = 0
        with self.engine.connect() as conn:
            page = 500
            start = 0
            while len(out) < limit:
                rows = conn.execute(query.limit(page).offset(start)).all()
                if not rows:
                    break
                start += page
                by_job = self._block_records(conn, [r.id for r in rows])
                for row in rows:
                    record = self._job_record(conn, row, by_job.get(row.id, []))
                    if wanted and record.status not in wanted:
                        continue
                    if skipped < offset:
                        skipped += 1
                        continue
                    out.append(record)
                    if len(out) >= limit:
                        break
        return out

    def set_job_flags(
        self, job_id: int, *, paused: bool | None = None, canceled: bool | None = None
    ) -> None:
        values: dict[str, Any] = {}
        if paused is not None:
            values["paused"] = paused
        if canceled is not None:
            values["canceled"] = canceled
        with self.engine.begin() as conn:
            if (
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values)).rowcount
                != 1
            ):
                raise NotFound(f"job {job_id} does not exist", field="job_id")

    def set_priority(self, job_id: int, priority: int) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(
                jobs.update().where(jobs.c.id == job_id).values(priority=priority)
            )
            if result.rowcount != 1:
                raise NotFound(f"job {job_id} does not exist", field="job_id")

    def request_cancel_running(self, job_id: int, reason: str) -> int:
        """Mark the job's running attempts to be stopped at their worker's next poll."""
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    attempts.update()
                    .where(
                        attempts.c.job_id == job_id,
                        attempts.c.status == AttemptStatus.RUNNING.value,
                        attempts.c.cancel_reason.is_(None),
                    )
                    .values(cancel_reason=reason)
                ).rowcount
            )

    def requeue_tasks(self, job_id: int, statuses: Iterable[TaskStatus], *, now: float) -> int:
        """Put the job's tasks in `statuses` back in the queue, with their failures forgiven."""
        names = [s.value for s in statuses]
        moved = 0
        with self.engine.begin() as conn:
            rows = conn.execute(
                sa.select(tasks.c.id, tasks.c.block_id, tasks.c.status).where(
                    tasks.c.job_id == job_id, tasks.c.status.in_(names)
                )
            ).all()
            for row in rows:
                self._move_task(
                    conn, row.id, row.block_id, TaskStatus(row.status), TaskStatus.QUEUED, now
                )
                conn.execute(tasks.update().where(tasks.c.id == row.id).values(failures=0))
                moved += 1
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(finished_at=None))
        return moved

    def delete_job(self, job_id: int) -> None:
        with self.engine.begin() as conn:
            attempt_ids = sa.select(attempts.c.id).where(attempts.c.job_id == job_id)
            conn.execute(log_lines.delete().where(log_lines.c.attempt_id.in_(attempt_ids)))
            conn.execute(attempts.delete().where(attempts.c.job_id == job_id))
            conn.execute(tasks.delete().where(tasks.c.job_id == job_id))
            conn.execute(blocks.delete().where(blocks.c.job_id == job_id))
            if conn.execute(jobs.delete().where(jobs.c.id == job_id)).rowcount != 1:
                raise NotFound(f"job {job_id} does not exist", field="job_id")
        self._layouts.clear()

    def mark_finished(self, job_id: int, now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.finished_at.is_(None))
                .values(finished_at=now)
            )

    # -- tasks ----------------------------------------------------------------------------------

    def _block_row(self, conn: sa.Connection, job_id: int, block_index: int) -> Any:
        row = conn.execute(
            sa.select(blocks).where(blocks.c.job_id == job_id, blocks.c.idx == block_index)
        ).first()
        if row is None:
            raise NotFound(f"job {job_id} has no block {block_index}", field="block")
        return row

    def list_tasks(
        self, job_id: int, *, block_index: int = 0, offset: int = 0, limit: int = 100
    ) -> tuple[int, list[TaskRecord]]:
        """(total, page): one page of a block's tasks by index, waiting ones synthesised."""
        with self.engine.connect() as conn:
            block = self._block_row(conn, job_id, block_index)
            layout = self.layout(block.id, block.frames, block.chunk, block.priority_frames)
            stop = min(offset + limit, layout.task_count)
            rows = conn.execute(
                sa.select(tasks, workers.c.name.label("worker_name"))
                .select_from(tasks.outerjoin(workers, workers.c.id == tasks.c.last_worker_id))
                .where(tasks.c.block_id == block.id, tasks.c.idx >= offset, tasks.c.idx < stop)
            ).all()
        by_index = {r.idx: r for r in rows}
        page = [
            self._task_record(job_id, block_index, i, layout, by_index.get(i))
            for i in range(offset, stop)
        ]
        return layout.task_count, page

    @staticmethod
    def _task_record(
        job_id: int, block_index: int, index: int, layout: TaskLayout, row: Any
    ) -> TaskRecord:
        frames = tuple(layout.task_frames(index))
        if row is None:
            return TaskRecord(
                job_id, block_index, index, frames, TaskStatus.WAITING, 0, 0, None, None, None
            )
        return TaskRecord(
            job_id=job_id,
            block_index=block_index,
            index=index,
            frames=frames,
            status=TaskStatus(row.status),
            failures=row.failures,
            attempts=row.attempts,
            last_worker=row.worker_name,
            progress=row.progress,
            updated_at=row.updated_at,
        )

    def get_task(self, job_id: int, block_index: int, index: int) -> TaskRecord:
        _, page = self.list_tasks(job_id, block_index=block_index, offset=index, limit=1)
        if not page or index < 0:
            raise NotFound(f"job {job_id} block {block_index} has no task {index}", field="task")
        return page[0]

    def task_attempts(self, job_id: int, block_index: int, index: int) -> list[AttemptRecord]:
        with self.engine.connect() as conn:
            block = self._block_row(conn, job_id, block_index)
            rows = conn.execute(
                self._attempt_query().where(tasks.c.block_id == block.id, tasks.c.idx == index)
            ).all()
        return [self._attempt_record(r) for r in rows]

    def job_attempts(self, job_id: int) -> list[AttemptRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(self._attempt_query().where(attempts.c.job_id == job_id)).all()
        return [self._attempt_record(r) for r in rows]

    @staticmethod
    def _attempt_query() -> sa.Select[Any]:
        return (
            sa.select(
                attempts,
                tasks.c.idx.label("task_index"),
                blocks.c.idx.label("block_index"),
                workers.c.name.label("worker_name"),
            )
            .select_from(
                attempts.join(tasks, tasks.c.id == attempts.c.task_id)
                .join(blocks, blocks.c.id == tasks.c.block_id)
                .join(workers, workers.c.id == attempts.c.worker_id)
            )
            .order_by(attempts.c.id)
        )

    @staticmethod
    def _attempt_record(r: Any) -> AttemptRecord:
        return AttemptRecord(
            id=r.id,
            job_id=r.job_id,
            block_index=r.block_index,
            task_index=r.task_index,
            worker_id=r.worker_id,
            worker=r.worker_name,
            status=AttemptStatus(r.status),
            cancel_reason=r.cancel_reason,
            created_at=r.created_at,
            ended_at=r.ended_at,
            exit_code=r.exit_code,
            peak_rss_bytes=r.peak_rss_bytes,
            duration_s=r.duration_s,
            message=r.message,
            progress=r.progress,
        )

    def task_log(
        self, job_id: int, block_index: int, index: int, *, after_id: int = 0, limit: int = 10_000
    ) -> list[tuple[int, int, str, str]]:
        """(line id, attempt id, stream, text) of every attempt of the task, oldest first."""
        with self.engine.connect() as conn:
            block = self._block_row(conn, job_id, block_index)
            rows = conn.execute(
                sa.select(
                    log_lines.c.id, log_lines.c.attempt_id, log_lines.c.stream, log_lines.c.text
                )
                .select_from(
                    log_lines.join(attempts, attempts.c.id == log_lines.c.attempt_id).join(
                        tasks, tasks.c.id == attempts.c.task_id
                    )
                )
                .where(
                    tasks.c.block_id == block.id, tasks.c.idx == index, log_lines.c.id > after_id
                )
                .order_by(log_lines.c.id)
                .limit(limit)
            ).all()
        return [(r.id, r.attempt_id, r.stream, r.text) for r in rows]

    def set_task_status(
        self, job_id: int, block_index: int, index: int, new: TaskStatus, *, now: float
    ) -> TaskStatus:
        """Retry (QUEUED) or skip (SKIPPED) one task; returns its old status."""
        with self.engine.begin() as conn:
            block = self._block_row(conn, job_id, block_index)
            layout = self.layout(block.id, block.frames, block.chunk, block.priority_frames)
            if not 0 <= index < layout.task_count:
                raise NotFound(
                    f"job {job_id} block {block_index} has no task {index}", field="task"
                )
            row = conn.execute(
                sa.select(tasks.c.id, tasks.c.status).where(
                    tasks.c.block_id == block.id, tasks.c.idx == index
                )
            ).first()
            if row is None:
                task_id = self._insert_task(conn, block, index, TaskStatus.WAITING, now)
                old = TaskStatus.WAITING
            else:
                task_id, old = row.id, TaskStatus(row.status)
            if old is TaskStatus.RUNNING:
                raise Conflict(f"task {index} is running; cancel it first", field="task")
            if old is new or (old is TaskStatus.WAITING and new is TaskStatus.QUEUED):
                return old
            self._move_task(conn, task_id, block.id, old, new, now)
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(failures=0))
            return old

    def _insert_task(
        self, conn: sa.Connection, block: Any, index: int, status: TaskStatus, now: float
    ) -> int:
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

    def _move_task(
        self,
        conn: sa.Connection,
        task_id: int,
        block_id: int,
        old: TaskStatus,
        new: TaskStatus,
        now: float,
        **extra: Any,
    ) -> None:
        """Change one task's status and the block counters with it, in the caller's transaction."""
        conn.execute(
            tasks.update()
            .where(tasks.c.id == task_id)
            .values(status=new.value, updated_at=now, **extra)
        )
        changes: dict[str, Any] = {}
        if old in _COUNTER:
            changes[_COUNTER[old]] = blocks.c[_COUNTER[old]] - 1
        if new in _COUNTER:
            changes[_COUNTER[new]] = blocks.c[_COUNTER[new]] + 1
        if changes:
            conn.execute(blocks.update().where(blocks.c.id == block_id).values(**changes))

    # -- workers --------------------------------------------------------------------------------

    def register_worker(self, facts: WorkerFacts, *, token_id: int | None, now: float) -> int:
        """Create or refresh a worker by name. A re-registering worker is a new process: what
        the old one ran is lost and goes back to the queue."""
        values = {
            "hostname": facts.hostname,
            "os": facts.os,
            "cores": facts.cores,
            "ram_bytes": facts.ram_bytes,
            "site": facts.site,
            "pools": list(facts.pools),
            "attributes": dict(facts.attributes),
            "lanes": facts.lanes,
            "status": WorkerStatus.ONLINE.value,
            "last_seen": now,
        }
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(workers.c.id).where(workers.c.name == facts.name)).first()
            if row is None:
                result = conn.execute(
                    workers.insert().values(
                        name=facts.name,
                        token_id=token_id,
                        enabled=True,
                        registered_at=now,
                        **values,
                    )
                )
                return int(result.inserted_primary_key[0])  # type: ignore[index]
            conn.execute(
                workers.update().where(workers.c.id == row.id).values(token_id=token_id, **values)
            )
            self._lose_attempts(conn, row.id, now, "the worker restarted")
            return int(row.id)

    def worker_for_token(self, token_id: int) -> int | None:
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(workers.c.id).where(workers.c.token_id == token_id))

    def touch_worker(self, worker_id: int, now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                workers.update()
                .where(workers.c.id == worker_id)
                .values(last_seen=now, status=WorkerStatus.ONLINE.value)
            )

    def refresh_all_workers(self, now: float) -> None:
        """After a controller restart, every online worker gets a fresh lease to re-attach."""
        with self.engine.begin() as conn:
            conn.execute(
                workers.update()
                .where(workers.c.status == WorkerStatus.ONLINE.value)
                .values(last_seen=now)
            )

    def set_worker_enabled(self, worker_id: int, enabled: bool) -> None:
        with self.engine.begin() as conn:
            result = conn.execute(
                workers.update().where(workers.c.id == worker_id).values(enabled=enabled)
            )
            if result.rowcount != 1:
                raise NotFound(f"worker {worker_id} does not exist", field="worker")

    def list_workers(self) -> list[WorkerRecord]:
        with self.engine.connect() as conn:
            running: dict[int, int] = {
                row[0]: row[1]
                for row in conn.execute(
                    sa.select(attempts.c.worker_id, sa.func.count())
                    .where(attempts.c.status == AttemptStatus.RUNNING.value)
                    .group_by(attempts.c.worker_id)
                ).all()
            }
            rows = conn.execute(sa.select(workers).order_by(workers.c.name)).all()
        return [self._worker_record(r, running.get(r.id, 0)) for r in rows]

    def get_worker(self, worker_id: int) -> WorkerRecord:
        for worker in self.list_workers():
            if worker.id == worker_id:
                return worker
        raise NotFound(f"worker {worker_id} does not exist", field="worker")

    def find_worker(self, name_or_id: str) -> WorkerRecord:
        for worker in self.list_workers():
            if worker.name == name_or_id or str(worker.id) == name_or_id:
                return worker
        raise NotFound(f"worker {name_or_id!r} does not exist", field="worker")

    @staticmethod
    def _worker_record(r: Any, running: int) -> WorkerRecord:
        return WorkerRecord(
            id=r.id,
            name=r.name,
            hostname=r.hostname,
            os=r.os,
            cores=r.cores,
            ram_bytes=r.ram_bytes,
            site=r.site,
            pools=tuple(r.pools),
            attributes=r.attributes,
            lanes=r.lanes,
            enabled=r.enabled,
            status=WorkerStatus(r.status),
            last_seen=r.last_seen,
            running=running,
        )

    def online_worker_count(self) -> int:
        with self.engine.connect() as conn:
            n = conn.scalar(
                sa.select(sa.func.count()).where(
                    workers.c.status == WorkerStatus.ONLINE.value, workers.c.enabled.is_(True)
                )
            )
        return int(n or 0)

    def expire_workers(self, *, now: float, lease_s: float) -> list[int]:
        """Workers silent past their lease go offline; their attempts are lost and requeued."""
        with self.engine.begin() as conn:
            ids = conn.scalars(
                sa.select(workers.c.id).where(
                    workers.c.status == WorkerStatus.ONLINE.value,
                    workers.c.last_seen < now - lease_s,
                )
            ).all()
            for worker_id in ids:
                conn.execute(
                    workers.update()
                    .where(workers.c.id == worker_id)
                    .values(status=WorkerStatus.OFFLINE.value)
                )
                self._lose_attempts(conn, worker_id, now, "the worker stopped answering")
        return list(ids)

    def _lose_attempts(
        self, conn: sa.Connection, worker_id: int, now: float, why: str, keep: Iterable[int] = ()
    ) -> int:
        query = sa.select(attempts.c.id).where(
            attempts.c.worker_id == worker_id, attempts.c.status == AttemptStatus.RUNNING.value
        )
        kept = list(keep)
        if kept:
            query = query.where(attempts.c.id.not_in(kept))
        lost = conn.scalars(query).all()
        for attempt_id in lost:
            self._end_attempt(conn, attempt_id, AttemptStatus.LOST, now, message=why)
        return len(lost)

    def lose_unreported(
        self, worker_id: int, reported: Iterable[int], *, before: float, now: float
    ) -> int:
        """Attempts the controller thinks run on the worker, that the worker does not report
        (and that were handed out before this poll began), are lost."""
        with self.engine.begin() as conn:
            query = sa.select(attempts.c.id).where(
                attempts.c.worker_id == worker_id,
                attempts.c.status == AttemptStatus.RUNNING.value,
                attempts.c.created_at < before,
            )
            held = set(conn.scalars(query).all())
            missing = held - set(reported)
            for attempt_id in sorted(missing):
                self._end_attempt(
                    conn,
                    attempt_id,
                    AttemptStatus.LOST,
                    now,
                    message="the worker no longer runs it",
                )
        return len(missing)

    def attempts_to_stop(self, worker_id: int) -> list[int]:
        with self.engine.connect() as conn:
            return list(
                conn.scalars(
                    sa.select(attempts.c.id).where(
                        attempts.c.worker_id == worker_id,
                        attempts.c.status == AttemptStatus.RUNNING.value,
                        attempts.c.cancel_reason.is_not(None),
                    )
                ).all()
            )

    # -- dispatch -------------------------------------------------------------------------------

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

    # -- attempts -------------------------------------------------------------------------------

    def _live_attempt(self, conn: sa.Connection, attempt_id: int, token: str) -> Any:
        row = conn.execute(sa.select(attempts).where(attempts.c.id == attempt_id)).first()
        if row is None or not secrets.compare_digest(row.token, token):
            raise StaleAttempt(f"attempt {attempt_id} is not current", field="token")
        return row

    def record_output(
        self,
        attempt_id: int,
        token: str,
        *,
        lines: Sequence[tuple[str, str]],
        progress: float | None,
    ) -> None:
        """Append log lines and progress of a running attempt. Stale token: StaleAttempt."""
        with self.engine.begin() as conn:
            row = self._live_attempt(conn, attempt_id, token)
            # Lines that arrive after the end (buffered by a worker) are still kept; a fenced-off
            # attempt that was lost or preempted gets 409 so its process dies.
            if row.status in (AttemptStatus.LOST.value, AttemptStatus.PREEMPTED.value):
                raise StaleAttempt(f"attempt {attempt_id} was {row.status}", field="token")
            if lines:
                conn.execute(
                    log_lines.insert(),
                    [{"attempt_id": attempt_id, "stream": s, "text": t} for s, t in lines],
                )
            if progress is not None and row.status == AttemptStatus.RUNNING.value:
                conn.execute(
                    attempts.update().where(attempts.c.id == attempt_id).values(progress=progress)
                )
                conn.execute(
                    tasks.update().where(tasks.c.id == row.task_id).values(progress=progress)
                )

    def finish_attempt(self, report: FinishReport, *, now: float) -> int | None:
        """Record how an attempt ended and move its task on. Returns the job id when the job
        may have changed status. A repeated identical report is accepted once more (the worker
        may not have seen our first answer); any other report on an ended attempt is stale."""
        with self.engine.begin() as conn:
            row = self._live_attempt(conn, report.attempt_id, report.token)
            if row.status != AttemptStatus.RUNNING.value:
                if row.status == report.status.value or row.cancel_reason is not None:
                    return None
                raise StaleAttempt(f"attempt {report.attempt_id} was {row.status}", field="token")
            self._end_attempt(
                conn,
                report.attempt_id,
                report.status,
                now,
                exit_code=report.exit_code,
                peak_rss_bytes=report.peak_rss_bytes,
                duration_s=report.duration_s,
                message=report.message,
            )
            return int(row.job_id)

    def _end_attempt(
        self,
        conn: sa.Connection,
        attempt_id: int,
        status: AttemptStatus,
        now: float,
        **values: Any,
    ) -> None:
        """End a running attempt and decide what its task does next, in one transaction."""
        row = conn.execute(
            sa.select(
                attempts.c.task_id,
                attempts.c.worker_id,
                attempts.c.cancel_reason,
                tasks.c.block_id,
                tasks.c.failures,
                blocks.c.retries,
                jobs.c.canceled,
            )
            .select_from(
                attempts.join(tasks, tasks.c.id == attempts.c.task_id)
                .join(blocks, blocks.c.id == tasks.c.block_id)
                .join(jobs, jobs.c.id == blocks.c.job_id)
            )
            .where(attempts.c.id == attempt_id)
        ).one()
        if row.cancel_reason is not None and status is not AttemptStatus.SUCCEEDED:
            status = (
                AttemptStatus.PREEMPTED
                if row.cancel_reason == "preempted"
                else AttemptStatus.CANCELED
            )
        conn.execute(
            attempts.update()
            .where(attempts.c.id == attempt_id)
            .values(status=status.value, ended_at=now, **values)
        )
        extra: dict[str, Any] = {}
        if status is AttemptStatus.SUCCEEDED:
            new = TaskStatus.SUCCEEDED
            if values.get("duration_s") is not None:
                conn.execute(
                    blocks.update()
                    .where(blocks.c.id == row.block_id)
                    .values(
                        runtime_sum=blocks.c.runtime_sum + values["duration_s"],
                        runtime_n=blocks.c.runtime_n + 1,
                    )
                )
        elif status in (AttemptStatus.FAILED, AttemptStatus.TIMED_OUT):
            failures = row.failures + 1
            extra = {"failures": failures, "failed_worker_id": row.worker_id}
            new = TaskStatus.QUEUED if failures <= row.retries else TaskStatus.FAILED
        elif row.canceled or row.cancel_reason == "canceled":
            new = TaskStatus.CANCELED
        elif row.cancel_reason == "skipped":
            new = TaskStatus.SKIPPED
        else:  # lost, preempted, paused: not the task's fault, so no failure is counted
            new = TaskStatus.QUEUED
        if new is TaskStatus.QUEUED and row.canceled:
            new = TaskStatus.CANCELED
        self._move_task(conn, row.task_id, row.block_id, TaskStatus.RUNNING, new, now, **extra)

    def cancel_task_attempt(self, job_id: int, block_index: int, index: int, reason: str) -> bool:
        """Ask the worker running this task to stop it (for skip or retry of a running task)."""
        with self.engine.begin() as conn:
            block = self._block_row(conn, job_id, block_index)
            task_id = conn.scalar(
                sa.select(tasks.c.id).where(tasks.c.block_id == block.id, tasks.c.idx == index)
            )
            if task_id is None:
                return False
            return (
                conn.execute(
                    attempts.update()
                    .where(
                        attempts.c.task_id == task_id,
                        attempts.c.status == AttemptStatus.RUNNING.value,
                    )
                    .values(cancel_reason=reason)
                ).rowcount
                > 0
            )
