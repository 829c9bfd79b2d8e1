"""What the submitters' interfaces read and change beyond the job use cases: the farm's queue
environments, a job's extras (its failed-task cap and description), its start time, the
attempts of a job as Deadline Cloud's sessions, an attempt's log, and the job fields people
change after submitting (name, retries, running cap, filters)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import Conflict, NotFound
from thresher.core.model import AttemptRecord
from thresher.store.attempts import Attempts
from thresher.store.base import Repository
from thresher.store.tables import (
    attempts,
    blocks,
    job_extras,
    jobs,
    log_lines,
    queue_environments,
    tasks,
)


@dataclass(frozen=True)
class QueueEnvironment:
    id: int
    name: str
    priority: int
    template_type: str  # JSON | YAML
    template: str
    created_at: float
    created_by: str
    updated_at: float | None


@dataclass(frozen=True)
class JobExtras:
    max_failed_tasks: int | None = None
    description: str | None = None
    updated_at: float | None = None
    updated_by: str | None = None


@dataclass(frozen=True)
class TaskRuns:
    """A task's attempts summed up: the latest, when the first started and the last ended."""

    latest_attempt: int
    started_at: float
    ended_at: float | None


def _environment(row: Any) -> QueueEnvironment:
    return QueueEnvironment(
        id=row.id,
        name=row.name,
        priority=row.priority,
        template_type=row.template_type,
        template=row.template,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
    )


class Submitters(Repository):
    # -- queue environments -------------------------------------------------------------------

    def environments(self) -> list[QueueEnvironment]:
        """Every queue environment, in the order they are entered (priority, then id)."""
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(queue_environments).order_by(
                    queue_environments.c.priority, queue_environments.c.id
                )
            ).all()
        return [_environment(r) for r in rows]

    def environment(self, env_id: int) -> QueueEnvironment:
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(queue_environments).where(queue_environments.c.id == env_id)
            ).first()
        if row is None:
            raise NotFound(f"queue environment {env_id} does not exist", field="environment")
        return _environment(row)

    def add_environment(
        self, *, name: str, priority: int, template_type: str, template: str, by: str, now: float
    ) -> int:
        with self.db.begin() as conn:
            taken = conn.execute(
                sa.select(queue_environments.c.id).where(queue_environments.c.name == name)
            ).first()
            if taken is not None:
                raise Conflict(f"a queue environment named {name!r} exists", field="name")
            inserted = conn.execute(
                queue_environments.insert().values(
                    name=name,
                    priority=priority,
                    template_type=template_type,
                    template=template,
                    created_at=now,
                    created_by=by,
                )
            ).inserted_primary_key
            assert inserted is not None
            return int(inserted[0])

    def delete_environment(self, env_id: int) -> None:
        with self.db.begin() as conn:
            done = conn.execute(
                queue_environments.delete().where(queue_environments.c.id == env_id)
            ).rowcount
        if done != 1:
            raise NotFound(f"queue environment {env_id} does not exist", field="environment")

    # -- a job's extras and the fields people change -------------------------------------------

    def extras(self, job_ids: Iterable[int]) -> dict[int, JobExtras]:
        ids = list(job_ids)
        if not ids:
            return {}
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(job_extras).where(job_extras.c.job_id.in_(ids))).all()
        return {
            r.job_id: JobExtras(r.max_failed_tasks, r.description, r.updated_at, r.updated_by)
            for r in rows
        }

    def set_extras(self, job_id: int, extras: JobExtras) -> None:
        values = {
            "max_failed_tasks": extras.max_failed_tasks,
            "description": extras.description,
            "updated_at": extras.updated_at,
            "updated_by": extras.updated_by,
        }
        with self.db.begin() as conn:
            done = conn.execute(
                job_extras.update().where(job_extras.c.job_id == job_id).values(**values)
            ).rowcount
            if not done:
                conn.execute(job_extras.insert().values(job_id=job_id, **values))

    def update_job(self, job_id: int, **values: Any) -> None:
        """Set the job's own columns (`name`, `filters`, `max_running`,
        `max_running_per_host`) given."""
        allowed = {"name", "filters", "max_running", "max_running_per_host"}
        assert set(values) <= allowed, values
        if not values:
            return
        with self.db.begin() as conn:
            if (
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values)).rowcount
                != 1
            ):
                raise NotFound(f"job {job_id} does not exist", field="job_id")

    def set_block_frames(
        self,
        job_id: int,
        block_index: int,
        *,
        frames: str,
        priority_frames: str | None,
        task_count: int,
        payload: Any | None,
    ) -> None:
        """A block's frames, before any of its tasks went out (else Conflict naming `range`);
        `payload`, when given, replaces the job's (an engine job's range lives there too)."""
        with self.db.begin() as conn:
            block = self.db.block_row(conn, job_id, block_index)
            started = conn.execute(
                sa.select(sa.func.count()).select_from(tasks).where(tasks.c.block_id == block.id)
            ).scalar_one()
            if block.cursor or started:
                raise Conflict(
                    "the block's tasks have started: its range can no longer change",
                    field="range",
                )
            conn.execute(
                blocks.update()
                .where(blocks.c.id == block.id)
                .values(frames=frames, priority_frames=priority_frames, task_count=task_count)
            )
            if payload is not None:
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(payload=payload))
        self.db.forget_layouts()  # layouts are kept per block, as if blocks never changed

    def set_retries(self, job_id: int, retries: int) -> None:
        """Every block of the job retries a failed task `retries` times."""
        with self.db.begin() as conn:
            conn.execute(blocks.update().where(blocks.c.job_id == job_id).values(retries=retries))

    def job_starts(self, job_ids: Iterable[int]) -> dict[int, float]:
        """When each job's first attempt started (jobs that never ran are absent)."""
        ids = list(job_ids)
        if not ids:
            return {}
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(attempts.c.job_id, sa.func.min(attempts.c.created_at))
                .where(attempts.c.job_id.in_(ids))
                .group_by(attempts.c.job_id)
            ).all()
        return {int(r[0]): float(r[1]) for r in rows}

    # -- attempts as sessions -----------------------------------------------------------------

    def task_runs(
        self, job_id: int, block_index: int, indexes: Sequence[int]
    ) -> dict[int, TaskRuns]:
        """For each of the block's tasks that ran: its latest attempt, first start, last end."""
        if not indexes:
            return {}
        with self.db.connect() as conn:
            block = self.db.block_row(conn, job_id, block_index)
            rows = conn.execute(
                sa.select(
                    tasks.c.idx,
                    sa.func.max(attempts.c.id),
                    sa.func.min(attempts.c.created_at),
                    sa.func.max(attempts.c.ended_at),
                )
                .select_from(attempts.join(tasks, tasks.c.id == attempts.c.task_id))
                .where(tasks.c.block_id == block.id, tasks.c.idx.in_(list(indexes)))
                .group_by(tasks.c.idx)
            ).all()
        return {int(r[0]): TaskRuns(int(r[1]), float(r[2]), r[3]) for r in rows}

    def job_attempts(self, job_id: int, *, offset: int, limit: int) -> list[AttemptRecord]:
        """A page of the job's attempts, oldest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                Attempts._attempt_query()
                .where(attempts.c.job_id == job_id)
                .offset(offset)
                .limit(limit)
            ).all()
        return [Attempts._attempt_record(r) for r in rows]

    def attempt(self, job_id: int | None, attempt_id: int) -> AttemptRecord:
        """An attempt (of job `job_id`, unless None)."""
        query = Attempts._attempt_query().where(attempts.c.id == attempt_id)
        if job_id is not None:
            query = query.where(attempts.c.job_id == job_id)
        with self.db.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"attempt {attempt_id} does not exist", field="session")
        return Attempts._attempt_record(row)

    def attempt_log(
        self, attempt_id: int, *, before_id: int | None, limit: int
    ) -> list[tuple[int, str, str]]:
        """(line id, stream, text) of the attempt's last `limit` lines before `before_id`,
        oldest first."""
        query = sa.select(log_lines.c.id, log_lines.c.stream, log_lines.c.text).where(
            log_lines.c.attempt_id == attempt_id
        )
        if before_id is not None:
            query = query.where(log_lines.c.id < before_id)
        with self.db.connect() as conn:
            rows = conn.execute(query.order_by(log_lines.c.id.desc()).limit(limit)).all()
        return [(r.id, r.stream, r.text) for r in reversed(rows)]

    def runtimes(
        self, start: float, end: float
    ) -> list[tuple[int, str, str, int, float, float, float]]:
        """(job id, name, owner, count, min, max, sum of run seconds) of the attempts that
        ended with a run time and started in [start, end), by job."""
        duration = attempts.c.duration_s
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(
                    jobs.c.id,
                    jobs.c.name,
                    jobs.c.owner,
                    sa.func.count(),
                    sa.func.min(duration),
                    sa.func.max(duration),
                    sa.func.sum(duration),
                )
                .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
                .where(
                    attempts.c.created_at >= start,
                    attempts.c.created_at < end,
                    duration.is_not(None),
                )
                .group_by(jobs.c.id, jobs.c.name, jobs.c.owner)
            ).all()
        return [(r[0], r[1], r[2], int(r[3]), float(r[4]), float(r[5]), float(r[6])) for r in rows]
