"""Farm statistics from the attempt history, computed by SQL on SQLite and PostgreSQL: frames
and render hours by engine, user, site, host and day; failure rates; queue waits."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from thresher.store.base import Repository
from thresher.store.tables import attempts, blocks, jobs, tasks, workers

DIMENSIONS = ("engine", "user", "site", "host", "day")
_FAILED = ("failed", "timed_out")
_ENDED = ("succeeded", "failed", "timed_out", "canceled", "lost", "preempted")


@dataclass
class StatRow:
    """One group's figures. `frames`: frames of succeeded attempts; `render_s`: the run time
    of every ended attempt; `cpu_s`: the CPU time its tasks reported; `failure_rate`: failed
    (or timed out) attempts over attempts that ran to an outcome of their own (succeeded,
    failed, timed out)."""

    key: str
    attempts: int = 0
    succeeded: int = 0
    failed: int = 0
    frames: int = 0
    render_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def failure_rate(self) -> float:
        judged = self.succeeded + self.failed
        return self.failed / judged if judged else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "attempts": self.attempts,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "failure_rate": round(self.failure_rate, 6),
            "frames": self.frames,
            "render_hours": round(self.render_s / 3600.0, 6),
            "cpu_hours": round(self.cpu_s / 3600.0, 6),
        }


@dataclass
class QueueWait:
    key: str
    jobs: int = 0
    total_s: float = 0.0
    max_s: float = 0.0
    waits: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "jobs": self.jobs,
            "mean_s": round(self.total_s / self.jobs, 3) if self.jobs else 0.0,
            "max_s": round(self.max_s, 3),
        }


class Statistics(Repository):
    def _day(self) -> sa.ColumnElement[Any]:
        """The UTC day an attempt ended, as days since 1970 (ISO dates are made by the
        caller): integer division differs between the two databases."""
        if self.db.engine.dialect.name == "postgresql":
            return sa.cast(sa.func.floor(attempts.c.ended_at / 86400), sa.BigInteger)
        return sa.cast(attempts.c.ended_at / 86400, sa.Integer)

    def _key(self, dimension: str) -> sa.ColumnElement[Any]:
        keys: dict[str, Any] = {
            "engine": sa.func.coalesce(blocks.c.engine, jobs.c.kind),
            "user": jobs.c.owner,
            "site": workers.c.site,
            "host": workers.c.name,
        }
        return keys[dimension] if dimension != "day" else self._day()

    def by(self, dimension: str, *, since: float, until: float) -> list[StatRow]:
        """Figures grouped by one of DIMENSIONS, of attempts ended in [since, until)."""
        key = self._key(dimension).label("key")
        is_last = sa.case((tasks.c.idx == blocks.c.task_count - 1, 1), else_=0).label("last")
        run_s = sa.func.coalesce(attempts.c.duration_s, attempts.c.ended_at - attempts.c.created_at)
        query = (
            sa.select(
                key,
                blocks.c.id.label("block_id"),
                is_last,
                attempts.c.status,
                sa.func.count().label("n"),
                sa.func.sum(run_s).label("run_s"),
                sa.func.sum(sa.func.coalesce(attempts.c.cpu_s, 0.0)).label("cpu_s"),
            )
            .select_from(
                attempts.join(tasks, tasks.c.id == attempts.c.task_id)
                .join(blocks, blocks.c.id == tasks.c.block_id)
                .join(jobs, jobs.c.id == attempts.c.job_id)
                .join(workers, workers.c.id == attempts.c.worker_id)
            )
            .where(
                attempts.c.status.in_(_ENDED),
                attempts.c.ended_at >= since,
                attempts.c.ended_at < until,
            )
            .group_by(key, blocks.c.id, is_last, attempts.c.status)
        )
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
            sizes = self._chunk_sizes(conn, {int(r.block_id) for r in rows})
        groups: dict[str, StatRow] = {}
        for r in rows:
            name = _day_name(r.key) if dimension == "day" else str(r.key)
            row = groups.setdefault(name, StatRow(name))
            row.attempts += r.n
            row.render_s += float(r.run_s or 0.0)
            row.cpu_s += float(r.cpu_s or 0.0)
            if r.status == "succeeded":
                row.succeeded += r.n
                row.frames += r.n * sizes[int(r.block_id)][int(r.last)]
            elif r.status in _FAILED:
                row.failed += r.n
        return sorted(groups.values(), key=lambda g: g.key)

    def _chunk_sizes(self, conn: sa.Connection, block_ids: set[int]) -> dict[int, tuple[int, int]]:
        """(frames of a task but the last, frames of the last task) of each block."""
        if not block_ids:
            return {}
        out: dict[int, tuple[int, int]] = {}
        for row in conn.execute(sa.select(blocks).where(blocks.c.id.in_(block_ids))).all():
            layout = self.db.block_layout(row)
            last = max(row.task_count - 1, 0)
            out[int(row.id)] = (len(layout.task_frames(0)), len(layout.task_frames(last)))
        return out

    def queue_waits(self, *, since: float, until: float) -> list[QueueWait]:
        """By owner: how long jobs submitted in [since, until) waited from submission to the
        start of their first attempt (jobs never started are left out)."""
        first = (
            sa.select(attempts.c.job_id, sa.func.min(attempts.c.created_at).label("started"))
            .group_by(attempts.c.job_id)
            .subquery()
        )
        with self.db.connect() as conn:
            rows = conn.execute(
                sa.select(jobs.c.owner, (first.c.started - jobs.c.created_at).label("wait"))
                .select_from(jobs.join(first, first.c.job_id == jobs.c.id))
                .where(jobs.c.created_at >= since, jobs.c.created_at < until)
            ).all()
        groups: dict[str, QueueWait] = defaultdict(lambda: QueueWait(""))
        for owner, wait in rows:
            group = groups[owner]
            group.key = owner
            group.jobs += 1
            group.total_s += max(float(wait), 0.0)
            group.max_s = max(group.max_s, float(wait))
        return sorted(groups.values(), key=lambda g: g.key)


def _day_name(days: Any) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=int(days))).isoformat()
