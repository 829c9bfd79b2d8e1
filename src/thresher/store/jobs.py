"""Jobs and their blocks; statuses derived from the block counters; the tasks that can
never run (they wait on a task failed for good) marked as such."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from thresher.core.deps import BlockTasks, JobDeps, downstream, job_deps, never_run
from thresher.core.errors import NotFound
from thresher.core.model import (
    BlockRecord,
    BlockSpec,
    Counts,
    JobRecord,
    JobSpec,
    derive_job_status,
    failure_reason,
)
from thresher.core.states import AttemptStatus, JobStatus, TaskStatus, check_move
from thresher.store.base import _COUNTER, Database, Repository, _counts
from thresher.store.tables import attempts, blocks, jobs, log_lines, tasks

_BLOCK_FIELDS = tuple(f.name for f in dataclasses.fields(BlockSpec))
_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(JobSpec) if f.name != "blocks")
_BLOCK_STATE = {
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


def _column(value: Any) -> Any:
    """A spec's value as its column holds it (JSON columns hold lists and objects)."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _field(value: Any) -> Any:
    """A column's value as a spec holds it (frozen: lists become tuples)."""
    return tuple(value) if isinstance(value, list) else value


def block_spec_of(row: Any) -> BlockSpec:
    """The spec of a block row: every field of `BlockSpec` is a column of the same name."""
    return BlockSpec(**{name: _field(getattr(row, name)) for name in _BLOCK_FIELDS})


def job_spec_of(row: Any, blocks: tuple[BlockSpec, ...]) -> JobSpec:
    """The spec of a job row: every field of `JobSpec` but its blocks is a column."""
    return JobSpec(blocks=blocks, **{name: _field(getattr(row, name)) for name in _JOB_FIELDS})


#: Task indices per statement when many tasks move at once.
_BATCH = 2000
_STARTED = frozenset({TaskStatus.RUNNING, TaskStatus.SUCCEEDED, TaskStatus.SKIPPED})


def dependency_state(db: Database, conn: sa.Connection, after: Iterable[int]) -> JobDeps:
    """How the jobs in `after` hold a job back (`core.deps.job_deps`): read in `conn`."""
    ids = list(after)
    if not ids:
        return JobDeps()
    dep_jobs = conn.execute(
        sa.select(jobs.c.id, jobs.c.paused, jobs.c.canceled, jobs.c.after).where(jobs.c.id.in_(ids))
    ).all()
    dep_blocks = db.block_records(conn, [r.id for r in dep_jobs])
    # A job they wait on that was deleted makes them fail: one level down is all it takes.
    theirs = {i for r in dep_jobs for i in r.after or ()}
    existing = set(conn.scalars(sa.select(jobs.c.id).where(jobs.c.id.in_(theirs))))
    statuses = {
        r.id: derive_job_status(
            counts=sum((_counts(b) for b in dep_blocks.get(r.id, [])), Counts()),
            paused=r.paused,
            canceled=r.canceled,
            deps_pending=False,
            deps_broken=any(i not in existing for i in r.after or ()),
        )
        for r in dep_jobs
    }
    return job_deps(ids, statuses)


def _unstarted(row: Any) -> int:
    """Tasks of a block row that wait or are queued (by its counters)."""
    return int(
        row.task_count
        - (row.n_running + row.n_succeeded + row.n_skipped + row.n_failed + row.n_canceled)
    )


def _may_change(rows: list[Any], *, restore: bool) -> bool:
    """Whether marking (and with `restore`, unmarking) tasks as never run may change anything,
    by the block counters alone: some task failed for good and a block waiting on it has tasks
    not started yet (or, with `restore`, some task is marked)."""
    failing = {r.idx for r in rows if r.n_failed}
    if restore and any(r.n_canceled for r in rows):
        return True
    if not failing:
        return False
    below = downstream({r.idx: [*r.after, *r.after_frames] for r in rows}, failing)
    return any(_unstarted(r) > 0 for r in rows if r.idx in below)


def _move_many(
    conn: sa.Connection,
    block_id: int,
    indices: Iterable[int],
    old: TaskStatus,
    new: TaskStatus,
    now: float,
) -> int:
    """Move the block's tasks at `indices` that are in `old` to `new`, with the counters, in
    a few statements (a block may hold many thousand tasks); the transition table holds."""
    check_move(old, new)
    wanted, moved = sorted(indices), 0
    for start in range(0, len(wanted), _BATCH):
        moved += conn.execute(
            tasks.update()
            .where(
                tasks.c.block_id == block_id,
                tasks.c.status == old.value,
                tasks.c.idx.in_(wanted[start : start + _BATCH]),
            )
            .values(status=new.value, updated_at=now)
        ).rowcount
    _count(conn, block_id, old, new, moved)
    return moved


def _insert_many(
    conn: sa.Connection, block: Any, indices: Iterable[int], new: TaskStatus, now: float
) -> int:
    """Give rows in `new` to tasks of `block` that had none (they were waiting)."""
    check_move(TaskStatus.WAITING, new)
    rows = [
        {
            "block_id": block.id,
            "job_id": block.job_id,
            "idx": index,
            "status": new.value,
            "failures": 0,
            "attempts": 0,
            "updated_at": now,
        }
        for index in sorted(indices)
    ]
    for start in range(0, len(rows), _BATCH):
        conn.execute(tasks.insert(), rows[start : start + _BATCH])
    _count(conn, block.id, TaskStatus.WAITING, new, len(rows))
    return len(rows)


def _count(conn: sa.Connection, block_id: int, old: TaskStatus, new: TaskStatus, n: int) -> None:
    changes: dict[str, Any] = {}
    if old in _COUNTER:
        changes[_COUNTER[old]] = blocks.c[_COUNTER[old]] - n
    if new in _COUNTER:
        changes[_COUNTER[new]] = blocks.c[_COUNTER[new]] + n
    if n and changes:
        conn.execute(blocks.update().where(blocks.c.id == block_id).values(**changes))


class Jobs(Repository):
    def create(self, spec: JobSpec, *, now: float) -> int:
        """Insert a compiled job and its blocks. No task rows: tasks are computed from the
        blocks. The spec was checked when it was compiled; the store only keeps it."""
        with self.db.begin() as conn:
            if spec.after:
                found = conn.scalars(sa.select(jobs.c.id).where(jobs.c.id.in_(spec.after))).all()
                missing = sorted(set(spec.after) - set(found))
                if missing:
                    raise NotFound(f"job {missing[0]} does not exist", field="after")
            job_id = conn.execute(
                jobs.insert().values(
                    canceled=False,
                    created_at=now,
                    finished_at=None,
                    **{name: _column(getattr(spec, name)) for name in _JOB_FIELDS},
                )
            ).inserted_primary_key[0]  # type: ignore[index]
            conn.execute(
                blocks.insert(),
                [
                    {
                        "job_id": int(job_id),
                        "idx": index,
                        **_BLOCK_STATE,
                        **{name: _column(getattr(block, name)) for name in _BLOCK_FIELDS},
                    }
                    for index, block in enumerate(spec.blocks)
                ],
            )
        return int(job_id)

    def _job_record(self, conn: sa.Connection, row: Any, block_rows: list[Any]) -> JobRecord:
        block_recs = tuple(
            BlockRecord(
                id=b.id,
                job_id=b.job_id,
                index=b.idx,
                spec=block_spec_of(b),
                cursor=b.cursor,
                counts=_counts(b),
                mean_runtime_s=(b.runtime_sum / b.runtime_n) if b.runtime_n else None,
            )
            for b in block_rows
        )
        counts = sum((b.counts for b in block_recs), Counts())
        deps = JobDeps()
        if row.after and counts.done != counts.total:
            deps = dependency_state(self.db, conn, row.after)
        status = derive_job_status(
            counts=counts,
            paused=row.paused,
            canceled=row.canceled,
            deps_pending=deps.waiting is not None,
            deps_broken=deps.broken is not None,
        )
        reason = None
        if status is JobStatus.WAITING:
            reason = deps.waiting
        elif status is JobStatus.FAILED:
            reason = deps.broken or failure_reason([(b.spec.name, b.counts) for b in block_recs])
        return JobRecord(
            id=row.id,
            spec=job_spec_of(row, tuple(b.spec for b in block_recs)),
            canceled=row.canceled,
            created_at=row.created_at,
            finished_at=row.finished_at,
            counts=counts,
            status=status,
            status_reason=reason,
            blocks=block_recs,
        )

    def missing(self, ids: Iterable[int]) -> list[int]:
        """Which of these job ids do not exist, sorted."""
        wanted = set(ids)
        if not wanted:
            return []
        with self.db.connect() as conn:
            found = set(conn.scalars(sa.select(jobs.c.id).where(jobs.c.id.in_(wanted))))
        return sorted(wanted - found)

    def get(self, job_id: int) -> JobRecord:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
            if row is None:
                raise NotFound(f"job {job_id} does not exist", field="job_id")
            return self._job_record(
                conn, row, self.db.block_records(conn, [job_id]).get(job_id, [])
            )

    def page(
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
        with self.db.connect() as conn:
            page = 500
            start = 0
            while len(out) < limit:
                rows = conn.execute(query.limit(page).offset(start)).all()
                if not rows:
                    break
                start += page
                by_job = self.db.block_records(conn, [r.id for r in rows])
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

    def set_flags(
        self, job_id: int, *, paused: bool | None = None, canceled: bool | None = None
    ) -> None:
        values: dict[str, Any] = {}
        if paused is not None:
            values["paused"] = paused
        if canceled is not None:
            values["canceled"] = canceled
        with self.db.begin() as conn:
            if (
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(**values)).rowcount
                != 1
            ):
                raise NotFound(f"job {job_id} does not exist", field="job_id")

    def set_priority(self, job_id: int, priority: int) -> None:
        with self.db.begin() as conn:
            result = conn.execute(
                jobs.update().where(jobs.c.id == job_id).values(priority=priority)
            )
            if result.rowcount != 1:
                raise NotFound(f"job {job_id} does not exist", field="job_id")

    def request_stop_running(self, job_id: int, reason: str) -> int:
        """Mark the job's running attempts to be stopped at their worker's next poll."""
        with self.db.begin() as conn:
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

    def withdraw_stop_requests(self, job_id: int, reason: str) -> int:
        """Running attempts asked to stop for `reason` (a pause, a cancel) may go on after all;
        a worker that already stopped one reports it, and the task is requeued."""
        with self.db.begin() as conn:
            return int(
                conn.execute(
                    attempts.update()
                    .where(
                        attempts.c.job_id == job_id,
                        attempts.c.status == AttemptStatus.RUNNING.value,
                        attempts.c.cancel_reason == reason,
                    )
                    .values(cancel_reason=None)
                ).rowcount
            )

    def requeue_tasks(self, job_id: int, statuses: Iterable[TaskStatus], *, now: float) -> int:
        """Put the job's tasks in `statuses` back in the queue, with their failures forgiven."""
        moved = 0
        with self.db.begin() as conn:
            rows = conn.execute(
                sa.select(tasks.c.block_id, tasks.c.idx, tasks.c.status).where(
                    tasks.c.job_id == job_id, tasks.c.status.in_([s.value for s in statuses])
                )
            ).all()
            groups: dict[tuple[int, str], list[int]] = {}
            for row in rows:
                groups.setdefault((row.block_id, row.status), []).append(row.idx)
            for (block_id, status), indices in groups.items():
                moved += _move_many(
                    conn, block_id, indices, TaskStatus(status), TaskStatus.QUEUED, now
                )
            conn.execute(
                tasks.update()
                .where(tasks.c.job_id == job_id, tasks.c.status == TaskStatus.QUEUED.value)
                .values(failures=0)
            )
            conn.execute(jobs.update().where(jobs.c.id == job_id).values(finished_at=None))
        return moved

    def mark_never_run(self, job_id: int, *, now: float, restore: bool = False) -> int:
        """Mark as never run (canceled) the tasks of the job that can never run: they wait,
        whole or frame by frame, on a task failed for good (`core.deps.never_run`). With
        `restore` (after a retry or a skip), put the marked tasks that may run again back in
        the queue. A canceled job is left alone. Returns how many tasks moved.

        Cheap when nothing can change (the job's block counters tell); else it reads the job's
        task rows."""
        with self.db.begin() as conn:
            canceled = conn.scalar(sa.select(jobs.c.canceled).where(jobs.c.id == job_id))
            rows = self.db.block_records(conn, [job_id]).get(job_id, [])
            if canceled is None or canceled or not _may_change(rows, restore=restore):
                return 0
            found: dict[int, dict[TaskStatus, set[int]]] = {r.id: {} for r in rows}
            for t in conn.execute(
                sa.select(tasks.c.block_id, tasks.c.idx, tasks.c.status).where(
                    tasks.c.job_id == job_id
                )
            ):
                found[t.block_id].setdefault(TaskStatus(t.status), set()).add(t.idx)
            lost = never_run([self._block_tasks(r, found[r.id]) for r in rows])
            moved = 0
            for row in rows:
                by_status = found[row.id]
                marked = by_status.get(TaskStatus.CANCELED, set())
                wanted = lost[row.idx].tasks if row.idx in lost else frozenset()
                moved += self._mark(conn, row, wanted - marked, by_status, now)
                if restore and marked - wanted:
                    back = marked - wanted
                    moved += _move_many(
                        conn, row.id, back, TaskStatus.CANCELED, TaskStatus.QUEUED, now
                    )
                    conn.execute(jobs.update().where(jobs.c.id == job_id).values(finished_at=None))
            return moved

    def _block_tasks(self, row: Any, by_status: Mapping[TaskStatus, set[int]]) -> BlockTasks:
        started: set[int] = set()
        for status in _STARTED:
            started |= by_status.get(status, set())
        return BlockTasks(
            index=row.idx,
            name=row.name,
            layout=self.db.block_layout(row),
            after=tuple(row.after or ()),
            after_frames=tuple(row.after_frames or ()),
            failed=frozenset(by_status.get(TaskStatus.FAILED, ())),
            started=frozenset(started),
        )

    @staticmethod
    def _mark(
        conn: sa.Connection,
        row: Any,
        tasks_: Iterable[int],
        by_status: Mapping[TaskStatus, set[int]],
        now: float,
    ) -> int:
        """Mark `tasks_` of the block `row` (waiting or queued ones) as never run."""
        left, moved = set(tasks_), 0
        for old in (TaskStatus.QUEUED, TaskStatus.WAITING):  # those with a row
            rowed = left & by_status.get(old, set())
            moved += _move_many(conn, row.id, rowed, old, TaskStatus.CANCELED, now)
            left -= rowed
        return moved + _insert_many(conn, row, left, TaskStatus.CANCELED, now)

    def waiting_on(self, job_id: int) -> list[int]:
        """The unfinished jobs that wait on job `job_id` (`after`), oldest first."""
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.id, jobs.c.after)
                .where(jobs.c.finished_at.is_(None), jobs.c.id != job_id)
                .order_by(jobs.c.id)
            ).all()
        return [r.id for r in rows if job_id in (r.after or ())]

    def delete(self, job_id: int) -> None:
        with self.db.begin() as conn:
            attempt_ids = sa.select(attempts.c.id).where(attempts.c.job_id == job_id)
            conn.execute(log_lines.delete().where(log_lines.c.attempt_id.in_(attempt_ids)))
            conn.execute(attempts.delete().where(attempts.c.job_id == job_id))
            conn.execute(tasks.delete().where(tasks.c.job_id == job_id))
            conn.execute(blocks.delete().where(blocks.c.job_id == job_id))
            if conn.execute(jobs.delete().where(jobs.c.id == job_id)).rowcount != 1:
                raise NotFound(f"job {job_id} does not exist", field="job_id")
        self.db.forget_layouts()

    def mark_finished(self, job_id: int, now: float) -> None:
        with self.db.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.finished_at.is_(None))
                .values(finished_at=now)
            )
