"""The error log behind error hosts and sick hosts (decided by `core.error_hosts`).

A row is written, in the transaction that ends the attempt, for every failed or timed-out attempt
(a too-short success is recorded as failed). Resetting a block's error hosts deletes its rows;
clearing a sick worker only moves its `sick_cleared_at` mark, so the block lists stay intact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from thresher.core.errors import NotFound
from thresher.store.base import Repository
from thresher.store.tables import attempts, blocks, host_errors, tasks, workers


@dataclass(frozen=True)
class HostError:
    worker_id: int
    job_id: int
    block_id: int
    at: float


def record_host_error(
    conn: sa.Connection, *, worker_id: int, job_id: int, block_id: int, now: float
) -> None:
    conn.execute(
        host_errors.insert().values(worker_id=worker_id, job_id=job_id, block_id=block_id, at=now)
    )


def broken_definition(conn: sa.Connection, row: Any, values: dict[str, Any]) -> bool:
    """Whether a failed attempt (its `_ENDING` row, the values it ends with) shows its task's
    definition broken: its process never started, and another host's attempt at the same block
    failed before starting too (an executable missing everywhere, an engine that cannot prepare
    the task). Notes it in the attempt's message when so; the task then fails without retries."""
    if not values.get("before_start"):
        return False
    elsewhere = conn.scalar(
        sa.select(attempts.c.id)
        .join(tasks, tasks.c.id == attempts.c.task_id)
        .where(
            tasks.c.block_id == row.block_id,
            attempts.c.before_start.is_(True),
            attempts.c.worker_id != row.worker_id,
        )
        .limit(1)
    )
    if elsewhere is None:
        return False
    said = values.get("message") or "failed before its process started"
    values["message"] = (
        f"{said} [broken definition: it failed before starting on another host too; "
        "not retried, no host blamed]"
    )
    return True


class ErrorHosts(Repository):
    def errors(
        self,
        *,
        block_ids: Iterable[int] | None = None,
        job_id: int | None = None,
        since: float | None = None,
    ) -> list[HostError]:
        """Recorded errors, oldest first: of some blocks, of one job, or since a time."""
        query = sa.select(host_errors).order_by(host_errors.c.at, host_errors.c.id)
        if block_ids is not None:
            query = query.where(host_errors.c.block_id.in_(list(block_ids)))
        if job_id is not None:
            query = query.where(host_errors.c.job_id == job_id)
        if since is not None:
            query = query.where(host_errors.c.at > since)
        with self.db.connect() as conn:
            rows = conn.execute(query).all()
        return [HostError(r.worker_id, r.job_id, r.block_id, r.at) for r in rows]

    def reset(
        self, job_id: int, *, block_index: int | None = None, worker_id: int | None = None
    ) -> int:
        """Forgive hosts now: forget the job's errors (of one block, of one worker). Returns how
        many errors were forgotten."""
        with self.db.begin() as conn:
            query = host_errors.delete().where(host_errors.c.job_id == job_id)
            if block_index is not None:
                block_id = conn.scalar(
                    sa.select(blocks.c.id).where(
                        blocks.c.job_id == job_id, blocks.c.idx == block_index
                    )
                )
                if block_id is None:
                    raise NotFound(f"job {job_id} has no block {block_index}", field="block")
                query = query.where(host_errors.c.block_id == block_id)
            if worker_id is not None:
                query = query.where(host_errors.c.worker_id == worker_id)
            return int(conn.execute(query).rowcount)

    def clear_sick(self, worker_id: int, *, now: float) -> None:
        """A worker marked sick takes work again; only failures after now count towards it."""
        with self.db.begin() as conn:
            done = conn.execute(
                workers.update().where(workers.c.id == worker_id).values(sick_cleared_at=now)
            ).rowcount
            if done != 1:
                raise NotFound(f"worker {worker_id} does not exist", field="worker")
