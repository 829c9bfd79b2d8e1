"""The store writes a task's status only through the transition table.

Every pair of statuses is tried at the one place that writes task statuses (`_move_task`,
with the block counters it moves): an allowed move changes the row and the counters, any other
raises IllegalTransition and, its transaction rolled back, changes nothing. Then the same rule
seen from a use case: skipping a task that succeeded is refused.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import sqlalchemy as sa

from tests.store.support import block
from thresher.core.errors import Conflict
from thresher.core.model import JobSpec
from thresher.core.states import TASK_TRANSITIONS, IllegalTransition, TaskStatus
from thresher.store.store import Store
from thresher.store.tables import blocks, tasks
from thresher.testing import FakeClock


def job_with_task(store: Store, status: TaskStatus) -> tuple[int, int, int]:
    """A one-task job whose task row is in `status` (counters to match): (job, block, task)."""
    spec = JobSpec(
        name="j", owner="alice", priority=50, kind="command", blocks=(block("main", "1", 1),)
    )
    job_id = store.jobs.create(spec, now=0.0)
    with store.transaction() as conn:
        row = conn.execute(sa.select(blocks).where(blocks.c.job_id == job_id)).one()
        task_id = store.db.insert_task(conn, row, 0, TaskStatus.WAITING, 0.0)
        if status is not TaskStatus.WAITING:
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(status=status.value))
            column = f"n_{status.value}"
            conn.execute(blocks.update().where(blocks.c.id == row.id).values({column: 1}))
    return job_id, row.id, task_id


def state(store: Store, block_id: int, task_id: int) -> tuple[Any, ...]:
    with store.engine.connect() as conn:
        status = conn.scalar(sa.select(tasks.c.status).where(tasks.c.id == task_id))
        counters = conn.execute(
            sa.select(*(c for c in blocks.c if c.name.startswith("n_"))).where(
                blocks.c.id == block_id
            )
        ).one()
    return (status, *counters)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (old, new)
        for old, new in itertools.product(TaskStatus, TaskStatus)
        if new is not TaskStatus.WAITING
    ],
)
def test_every_task_move_follows_the_table(store: Store, old: TaskStatus, new: TaskStatus) -> None:
    _, block_id, task_id = job_with_task(store, old)
    before = state(store, block_id, task_id)
    allowed = new in TASK_TRANSITIONS[old]
    try:
        with store.transaction() as conn:
            store.db.move_task(conn, task_id, block_id, old, new, 1.0)
    except IllegalTransition:
        assert not allowed, f"{old} -> {new} is in the table but was refused"
        assert state(store, block_id, task_id) == before
        return
    assert allowed, f"{old} -> {new} is not in the table but was written"
    after = state(store, block_id, task_id)
    assert after[0] == new.value
    assert sum(after[1:]) == sum(before[1:]) + (old is TaskStatus.WAITING)


def test_skipping_a_task_that_succeeded_is_refused(store: Store, clock: FakeClock) -> None:
    job_id, block_id, task_id = job_with_task(store, TaskStatus.SUCCEEDED)
    with pytest.raises(Conflict, match="from succeeded to skipped"):
        store.tasks.set_status(job_id, 0, 0, TaskStatus.SKIPPED, now=clock.now())
    assert state(store, block_id, task_id)[0] == TaskStatus.SUCCEEDED.value
