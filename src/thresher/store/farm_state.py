"""How many jobs, tasks and workers the farm holds in each state (for `/metrics`).

Three grouped reads: the jobs with their blocks' counters summed per job, and the workers by
status. A job's status is derived as the API derives it (`derive_job_status`), its
dependencies on other jobs by id included (a dependency by name glob is not looked at here:
such a job counts as queued until it runs)."""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from thresher.core.deps import job_deps
from thresher.core.model import Counts, derive_job_status
from thresher.core.states import JobStatus, TaskStatus, WorkerStatus
from thresher.store.base import Repository
from thresher.store.tables import blocks, jobs, workers

_SUMS = (
    "task_count",
    "n_queued",
    "n_running",
    "n_succeeded",
    "n_failed",
    "n_skipped",
    "n_canceled",
)


@dataclass(frozen=True)
class StateCounts:
    jobs: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    workers: dict[str, int] = field(default_factory=dict)


class FarmState(Repository):
    def counts(self) -> StateCounts:
        with self.db.connect() as conn:
            sums = {
                row.job_id: Counts(*(int(v or 0) for v in row[1:]))
                for row in conn.execute(
                    sa.select(blocks.c.job_id, *(sa.func.sum(blocks.c[c]) for c in _SUMS)).group_by(
                        blocks.c.job_id
                    )
                )
            }
            job_rows = conn.execute(
                sa.select(jobs.c.id, jobs.c.paused, jobs.c.canceled, jobs.c.after)
            ).all()
            by_worker = conn.execute(
                sa.select(workers.c.status, sa.func.count()).group_by(workers.c.status)
            ).all()
        return StateCounts(
            jobs=_job_states(job_rows, sums),
            tasks=_task_states(sums.values()),
            workers={
                **{s.value: 0 for s in WorkerStatus},
                **{str(status): int(n) for status, n in by_worker},
            },
        )


def _job_states(rows: Sequence[Any], sums: dict[int, Counts]) -> dict[str, int]:
    """Each job's status; a job waiting on others by id is derived from theirs (derived
    without dependencies, as `dependency_state` does)."""

    def status(row: Any, deps: dict[int, JobStatus] | None) -> JobStatus:
        found = job_deps(row.after, deps) if deps is not None and row.after else None
        return derive_job_status(
            counts=sums.get(row.id, Counts()),
            paused=row.paused,
            canceled=row.canceled,
            deps_pending=found is not None and found.waiting is not None,
            deps_broken=found is not None and found.broken is not None,
        )

    plain = {row.id: status(row, None) for row in rows}
    final = Tally(status(row, plain).value for row in rows)
    return {s.value: final.get(s.value, 0) for s in JobStatus}


def _task_states(all_counts: Iterable[Counts]) -> dict[str, int]:
    total = Tally[str]()
    for c in all_counts:
        total.update(
            {
                TaskStatus.WAITING.value: c.waiting,
                TaskStatus.QUEUED.value: c.queued,
                TaskStatus.RUNNING.value: c.running,
                TaskStatus.SUCCEEDED.value: c.succeeded,
                TaskStatus.FAILED.value: c.failed,
                TaskStatus.SKIPPED.value: c.skipped,
                TaskStatus.CANCELED.value: c.canceled,
            }
        )
    return {s.value: total.get(s.value, 0) for s in TaskStatus}
