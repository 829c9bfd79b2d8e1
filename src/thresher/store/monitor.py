"""What the web monitor reads and keeps: workers' resource samples (downsampled with age), a
block's task states as runs (never one row per task to the page), the changes an event
stream sends, run-time history for estimates, and stuck tasks."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from thresher.store.base import Repository
from thresher.store.tables import attempts, blocks, jobs, log_lines, tasks, workers
from thresher.store.tables_monitor import worker_samples

#: (step in seconds, how long samples of that step are kept): raw for an hour, one a minute
#: for a day, one each ten minutes for 31 days. A worker sampled every 5 s keeps at most
#: 720 + 1440 + 4464 rows.
TIERS: tuple[tuple[int, float], ...] = ((0, 3600.0), (60, 86400.0), (600, 31 * 86400.0))


@dataclass(frozen=True)
class Run:
    """Tasks `first`..`last` (indices) of a block, all in `status`."""

    status: str
    first: int
    last: int


@dataclass(frozen=True)
class Changes:
    """What changed since a `Mark`: job digests, workers, new log lines, new samples."""

    jobs: dict[int, tuple[Any, ...]]
    workers: dict[int, tuple[Any, ...]]
    logs: list[tuple[int, int, int, int, int]]  # (job, block, index, attempt, last line id)
    samples: dict[int, dict[str, float]]  # worker id -> its newest sample


@dataclass(frozen=True)
class Mark:
    """Where the last look at changes stopped."""

    at: float = 0.0
    log_id: int = 0
    sample_id: int = 0


def _average(rows: Sequence[Any]) -> dict[str, float]:
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        for key, value in row.sample.items():
            if isinstance(value, int | float):
                sums[key] += value
                counts[key] += 1
    return {k: sums[k] / counts[k] for k in sums}


class Monitor(Repository):
    # -- resource samples -----------------------------------------------------------------------

    def add_sample(self, worker_id: int, at: float, sample: Mapping[str, float]) -> None:
        with self.db.begin() as conn:
            conn.execute(
                worker_samples.insert().values(
                    worker_id=worker_id, step_s=0, at=at, sample=dict(sample)
                )
            )

    def compact(self, worker_id: int, now: float) -> None:
        """Fold each tier's samples past its age into the next tier's averages; drop the last
        tier's past its age. Bounds what a worker keeps (see TIERS)."""
        with self.db.begin() as conn:
            for (step, keep), (next_step, _) in itertools.pairwise(TIERS):
                self._fold(conn, worker_id, step, next_step, before=now - keep)
            last_step, last_keep = TIERS[-1]
            conn.execute(
                worker_samples.delete().where(
                    worker_samples.c.worker_id == worker_id,
                    worker_samples.c.step_s == last_step,
                    worker_samples.c.at < now - last_keep,
                )
            )

    def _fold(
        self, conn: sa.Connection, worker_id: int, step: int, into: int, *, before: float
    ) -> None:
        where = (
            worker_samples.c.worker_id == worker_id,
            worker_samples.c.step_s == step,
            worker_samples.c.at < before,
        )
        rows = conn.execute(sa.select(worker_samples).where(*where)).all()
        if not rows:
            return
        buckets: dict[float, list[Any]] = defaultdict(list)
        for row in rows:
            buckets[row.at - row.at % into].append(row)
        conn.execute(
            worker_samples.insert(),
            [
                {"worker_id": worker_id, "step_s": into, "at": at, "sample": _average(group)}
                for at, group in sorted(buckets.items())
            ],
        )
        conn.execute(worker_samples.delete().where(*where))

    def history(
        self, worker_id: int, *, since: float, until: float, limit: int = 5000
    ) -> list[tuple[float, int, dict[str, float]]]:
        """(at, step, sample) of a worker between `since` and `until`, oldest first, every
        tier together (older times come from the coarser tiers)."""
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(worker_samples.c.at, worker_samples.c.step_s, worker_samples.c.sample)
                .where(
                    worker_samples.c.worker_id == worker_id,
                    worker_samples.c.at >= since,
                    worker_samples.c.at <= until,
                )
                .order_by(worker_samples.c.at.desc())
                .limit(limit)
            ).all()
        return [(r.at, r.step_s, dict(r.sample)) for r in reversed(rows)]

    def count_samples(self, worker_id: int) -> dict[int, int]:
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(worker_samples.c.step_s, sa.func.count())
                .where(worker_samples.c.worker_id == worker_id)
                .group_by(worker_samples.c.step_s)
            ).all()
        return {int(step): int(n) for step, n in rows}

    def latest_samples(self, *, since: float) -> dict[int, dict[str, float]]:
        """Each worker's newest raw sample taken after `since`."""
        newest = (
            sa.select(sa.func.max(worker_samples.c.id))
            .where(worker_samples.c.step_s == 0, worker_samples.c.at >= since)
            .group_by(worker_samples.c.worker_id)
        )
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(worker_samples.c.worker_id, worker_samples.c.sample).where(
                    worker_samples.c.id.in_(newest)
                )
            ).all()
        return {int(r.worker_id): dict(r.sample) for r in rows}

    # -- a block's task states ------------------------------------------------------------------

    def runs(self, job_id: int, block_index: int) -> tuple[int, list[Run]]:
        """(task count, runs): the block's task states as runs of equal state in index order,
        `waiting` filling what has no row. Grouped in SQL (gaps and islands), so a block of
        100,000 tasks costs the page a few runs, not 100,000 rows."""
        with self.db.connect() as conn:
            block = self.db.block_row(conn, job_id, block_index)
            numbered = sa.select(
                tasks.c.idx,
                tasks.c.status,
                (
                    tasks.c.idx
                    - sa.func.row_number().over(partition_by=tasks.c.status, order_by=tasks.c.idx)
                ).label("grp"),
            ).where(tasks.c.block_id == block.id)
            sub = numbered.subquery()
            rows = conn.execute(
                sa.select(sub.c.status, sa.func.min(sub.c.idx), sa.func.max(sub.c.idx))
                .group_by(sub.c.status, sub.c.grp)
                .order_by(sa.func.min(sub.c.idx))
            ).all()
        return block.task_count, _with_waiting(block.task_count, rows)

    def task_frames(
        self, job_id: int, block_index: int, indices: Sequence[int]
    ) -> dict[int, list[int]]:
        """The frames of some tasks of a block, from its layout."""
        with self.db.connect() as conn:
            layout = self.db.block_layout(self.db.block_row(conn, job_id, block_index))
        return {i: list(layout.task_frames(i)) for i in indices if 0 <= i < layout.task_count}

    # -- run times ------------------------------------------------------------------------------

    def usual_runtimes(self, *, since: float) -> dict[str, float]:
        """The mean run time of successes since `since`, by engine (or job kind)."""
        key = sa.func.coalesce(blocks.c.engine, jobs.c.kind)
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(key, sa.func.avg(attempts.c.duration_s))
                .select_from(_attempt_join())
                .where(attempts.c.status == "succeeded", attempts.c.ended_at >= since)
                .group_by(key)
            ).all()
        return {str(k): float(v) for k, v in rows if v is not None}

    def running_elapsed(self, job_id: int, now: float) -> dict[int, list[float]]:
        """By block index, how long each running attempt of the job has run."""
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(blocks.c.idx, attempts.c.created_at)
                .select_from(_attempt_join())
                .where(attempts.c.job_id == job_id, attempts.c.status == "running")
            ).all()
        out: dict[int, list[float]] = defaultdict(list)
        for idx, created in rows:
            out[int(idx)].append(max(now - created, 0.0))
        return dict(out)

    def stuck(
        self, now: float, *, factor: float, silent_s: float, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Running attempts past `factor` times their block's mean run time, or whose task
        was not heard of (output, progress) for `silent_s`."""
        mean = blocks.c.runtime_sum / sa.func.nullif(blocks.c.runtime_n, 0)
        running_for = now - attempts.c.created_at
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(
                    attempts.c.id,
                    attempts.c.job_id,
                    jobs.c.name.label("job_name"),
                    blocks.c.idx.label("block"),
                    tasks.c.idx.label("index"),
                    workers.c.name.label("worker"),
                    running_for.label("running_s"),
                    mean.label("mean_s"),
                    (now - tasks.c.updated_at).label("silent_s"),
                )
                .select_from(_attempt_join().join(workers, workers.c.id == attempts.c.worker_id))
                .where(
                    attempts.c.status == "running",
                    sa.or_(
                        running_for > mean * factor,
                        tasks.c.updated_at < now - silent_s,
                    ),
                )
                .order_by(running_for.desc())
                .limit(limit)
            ).all()
        return [dict(r._mapping) for r in rows]

    def running_lanes(self) -> list[dict[str, Any]]:
        """What each lane runs now: worker, lane, job, block, task, engine, since when."""
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(
                    workers.c.name.label("worker"),
                    attempts.c.lane,
                    attempts.c.job_id,
                    jobs.c.name.label("job_name"),
                    blocks.c.idx.label("block"),
                    tasks.c.idx.label("index"),
                    sa.func.coalesce(blocks.c.engine, jobs.c.kind).label("engine"),
                    attempts.c.created_at.label("since"),
                    attempts.c.progress,
                )
                .select_from(_attempt_join().join(workers, workers.c.id == attempts.c.worker_id))
                .where(attempts.c.status == "running")
                .order_by(workers.c.name, attempts.c.lane)
            ).all()
        return [dict(r._mapping) for r in rows]

    # -- changes, for the event stream ----------------------------------------------------------

    def changes(self, mark: Mark, *, now: float, recent_s: float = 600.0) -> tuple[Changes, Mark]:
        """Digests of the jobs still going (or ended within `recent_s`), every worker's state,
        new log lines grouped by attempt, and new samples. The caller diffs the digests
        against the last ones, and asks `moved` for the tasks of the jobs that changed."""
        with self.db.connect() as conn:
            jobs_now = _job_digests(conn, since=now - recent_s)
            workers_now = {
                int(r[0]): tuple(r[1:])
                for r in conn.execute(
                    sa.select(
                        workers.c.id,
                        workers.c.status,
                        workers.c.enabled,
                        workers.c.nimby,
                        workers.c.local_nimby,
                        workers.c.sick_cleared_at,
                        workers.c.lane_engines,
                        workers.c.pools,
                    )
                ).all()
            }
            logs = _new_logs(conn, mark.log_id)
            samples = conn.execute(
                sa.select(worker_samples.c.id, worker_samples.c.worker_id, worker_samples.c.sample)
                .where(worker_samples.c.id > mark.sample_id, worker_samples.c.step_s == 0)
                .order_by(worker_samples.c.id)
            ).all()
        newest = {int(r.worker_id): dict(r.sample) for r in samples}
        next_mark = Mark(
            at=now,
            log_id=max([mark.log_id, *(row[4] for row in logs)]),
            sample_id=max([mark.sample_id, *(int(r.id) for r in samples)]),
        )
        changes = Changes(
            jobs=jobs_now,
            workers=workers_now,
            logs=logs,
            samples=newest,
        )
        return changes, next_mark

    def moved(self, job_ids: Sequence[int], since: float) -> list[tuple[int, int, int, str]]:
        """(job, block, index, status) of the tasks of `job_ids` that moved after `since`
        (at most 1000, oldest first): found through the tasks' job index, not a scan."""
        if not job_ids:
            return []
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(tasks.c.job_id, blocks.c.idx, tasks.c.idx, tasks.c.status)
                .select_from(tasks.join(blocks, blocks.c.id == tasks.c.block_id))
                .where(tasks.c.job_id.in_(job_ids), tasks.c.updated_at > since)
                .order_by(tasks.c.updated_at)
                .limit(1000)
            ).all()
        return [(int(a), int(b), int(c), str(d)) for a, b, c, d in rows]

    def last_ids(self) -> tuple[int, int]:
        """(newest log line id, newest sample id): where a first look starts."""
        with self.db.connect() as conn:
            log_id = conn.scalar(sa.select(sa.func.max(log_lines.c.id)))
            sample_id = conn.scalar(sa.select(sa.func.max(worker_samples.c.id)))
        return int(log_id or 0), int(sample_id or 0)


def _attempt_join() -> sa.Join:
    return (
        attempts.join(tasks, tasks.c.id == attempts.c.task_id)
        .join(blocks, blocks.c.id == tasks.c.block_id)
        .join(jobs, jobs.c.id == attempts.c.job_id)
    )


def _with_waiting(total: int, rows: Sequence[Any]) -> list[Run]:
    out: list[Run] = []
    at = 0
    for status, first, last in rows:
        if first > at:
            out.append(Run("waiting", at, first - 1))
        if out and out[-1].status == status and out[-1].last == first - 1:
            out[-1] = Run(status, out[-1].first, last)
        else:
            out.append(Run(str(status), int(first), int(last)))
        at = last + 1
    if at < total:
        out.append(Run("waiting", at, total - 1))
    return out


def _job_digests(conn: sa.Connection, *, since: float) -> dict[int, tuple[Any, ...]]:
    counters = [
        sa.func.sum(getattr(blocks.c, name))
        for name in (
            "n_queued",
            "n_running",
            "n_succeeded",
            "n_failed",
            "n_skipped",
            "n_canceled",
        )
    ]
    rows = conn.execute(
        sa.select(jobs.c.id, jobs.c.paused, jobs.c.canceled, jobs.c.priority, *counters)
        .select_from(jobs.join(blocks, blocks.c.job_id == jobs.c.id))
        .where(sa.or_(jobs.c.finished_at.is_(None), jobs.c.finished_at >= since))
        .group_by(jobs.c.id, jobs.c.paused, jobs.c.canceled, jobs.c.priority)
    ).all()
    return {int(r[0]): tuple(r[1:]) for r in rows}


def _new_logs(conn: sa.Connection, after: int) -> list[tuple[int, int, int, int, int]]:
    newest = (
        sa.select(log_lines.c.attempt_id, sa.func.max(log_lines.c.id).label("last"))
        .where(log_lines.c.id > after)
        .group_by(log_lines.c.attempt_id)
        .subquery()
    )
    rows = conn.execute(
        sa.select(attempts.c.job_id, blocks.c.idx, tasks.c.idx, attempts.c.id, newest.c.last)
        .select_from(
            newest.join(attempts, attempts.c.id == newest.c.attempt_id)
            .join(tasks, tasks.c.id == attempts.c.task_id)
            .join(blocks, blocks.c.id == tasks.c.block_id)
        )
        .limit(1000)
    ).all()
    return [(int(a), int(b), int(c), int(d), int(e)) for a, b, c, d, e in rows]
