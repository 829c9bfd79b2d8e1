"""What a worker brings back after the controller gave it up as lost: a late success."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from thresher.core.states import AttemptStatus, TaskStatus, check_attempt_move
from thresher.store.base import Database
from thresher.store.records import FinishReport
from thresher.store.tables import attempts, blocks, tasks

_ADD_RUNTIME = (
    blocks.update()
    .where(blocks.c.id == sa.bindparam("block_id"))
    .values(
        runtime_sum=blocks.c.runtime_sum + sa.bindparam("duration"),
        runtime_n=blocks.c.runtime_n + 1,
    )
)


def accept_late_success(
    db: Database, conn: sa.Connection, row: Any, report: FinishReport, now: float
) -> bool:
    """A success reported for an attempt the controller gave up as lost (its worker went
    silent past the lease, and came back) is accepted when nobody took the task since:
    it is still queued. The work is done; running it again would run it twice."""
    if row.status != AttemptStatus.LOST.value or report.status is not AttemptStatus.SUCCEEDED:
        return False
    task = conn.execute(
        sa.select(tasks.c.id, tasks.c.block_id, tasks.c.status).where(tasks.c.id == row.task_id)
    ).first()
    if task is None or task.status != TaskStatus.QUEUED.value:
        return False
    check_attempt_move(AttemptStatus.LOST, AttemptStatus.SUCCEEDED)
    ended = {
        "status": AttemptStatus.SUCCEEDED.value,
        "ended_at": now,
        "exit_code": report.exit_code,
        "peak_rss_bytes": report.peak_rss_bytes,
        "duration_s": report.duration_s,
        "message": report.message,
    }
    conn.execute(attempts.update().where(attempts.c.id == row.id).values(**ended))
    if report.duration_s is not None:
        conn.execute(_ADD_RUNTIME, {"block_id": task.block_id, "duration": report.duration_s})
    db.move_task(conn, task.id, task.block_id, TaskStatus.QUEUED, TaskStatus.SUCCEEDED, now)
    return True
